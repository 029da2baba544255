#pragma once
// Image decoding: libjpeg-turbo for JPEG (grey, YCbCr and CMYK, with DCT-domain reduction),
// libpng for PNG, and OpenCV, when lgd was built with it, for BMP, WebP, TIFF and PNM (only
// those: other signatures are refused before OpenCV sees them).
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

// Decompression-bomb guard: an image whose header claims more pixels than this is a
// BadSample, refused before any pixel buffer is allocated. The default is Pillow's
// MAX_IMAGE_PIXELS (89,478,485: a quarter GiB of 24-bit RGB). Process-wide; data.max_pixels
// sets it for a run. JPEG and PNG headers are read by lgd. The other formats are OpenCV's,
// which refuses images above OPENCV_IO_MAX_IMAGE_PIXELS, read once when its imgcodecs library
// loads: lgd loads it (src/data/opencv_module.cpp) at the first such image, with this limit in
// that variable unless the environment sets it. Where LibTorch itself links OpenCV (Debian's
// 1.13 does), imgcodecs is loaded before lgd starts, and OpenCV's own default (2^30 pixels) or
// the environment's value bounds its allocation; this limit then applies to the decoded size.
inline constexpr std::int64_t kDefaultMaxImagePixels = 89478485;
void set_max_image_pixels(std::int64_t pixels);
std::int64_t max_image_pixels();

// Whether formats other than JPEG and PNG are read (lgd built with OpenCV).
bool decodes_other_formats();

}  // namespace lgd::data
