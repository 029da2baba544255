#pragma once
// Image decoding: libjpeg-turbo for JPEG (grey, YCbCr and CMYK, with DCT-domain reduction),
// libpng for PNG, and OpenCV, when lgd was built with it, for BMP, WebP, TIFF and the rest.
// EXIF orientation is ignored, as torchvision's PIL loader does; the result equals PIL's
// Image.open(path).convert("RGB") (for PNG, unless a gAMA chunk far from sRGB's asks libpng
// to convert, which PIL ignores).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lgd/data/image.h"

namespace lgd::data {

// A source over encoded bytes. Reads the header at once (BadSample when it is not an image
// lgd can decode); pixels are decoded on ImageSource::decode. `name` appears in errors.
std::unique_ptr<ImageSource> encoded_source(std::vector<std::uint8_t> bytes, std::string name);

// Reads the file and wraps it (BadSample naming the path when it is missing or empty).
std::unique_ptr<ImageSource> file_source(const std::string& path);

// Full-resolution decode of a file, for tools and tests.
Image decode_file(const std::string& path);

// Whether formats other than JPEG and PNG are read (lgd built with OpenCV).
bool decodes_other_formats();

}  // namespace lgd::data
