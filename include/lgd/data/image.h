#pragma once
// Decoded images as the data pipeline sees them: 8-bit RGB, rows of width * 3 bytes, no
// padding. Kept free of OpenCV and LibTorch so that every data header stays light.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace lgd::data {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> pixels;  // height * width * 3, RGB

  Image() = default;
  Image(int w, int h) : width(w), height(h), pixels(static_cast<std::size_t>(w) * h * 3) {}
  std::uint8_t* row(int y) { return pixels.data() + static_cast<std::size_t>(y) * width * 3; }
  const std::uint8_t* row(int y) const {
    return pixels.data() + static_cast<std::size_t>(y) * width * 3;
  }
  bool empty() const { return width == 0 || height == 0; }
  // Resizes in place, keeping the allocation when it is large enough.
  void reshape(int w, int h) {
    width = w;
    height = h;
    pixels.resize(static_cast<std::size_t>(w) * h * 3);
  }
};

// One sample that could not be read: missing, truncated or not an image. The loader
// replaces such samples and counts them; `what()` is "path: reason".
class BadSample : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An image whose size is known before its pixels are decoded, so that a transform can
// choose its crop first and let a JPEG decoder skip resolution it will not need.
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual int width() const = 0;
  virtual int height() const = 0;
  // The pixels, reduced by a factor 2^reduce_log2 in each direction where the decoder can do
  // that cheaply (JPEG: in the DCT domain); other sources ignore the request. The returned
  // size says what was applied. Throws BadSample when the data turns out to be corrupt.
  virtual void decode_into(int reduce_log2, Image& out) = 0;
  // decode_into with a new image; decode_into reuses `out`'s memory, which matters at
  // hundreds of images per second per thread.
  Image decode(int reduce_log2) {
    Image out;
    decode_into(reduce_log2, out);
    return out;
  }
};

// A source over pixels already in memory (IDX, CIFAR, tests).
std::unique_ptr<ImageSource> memory_source(Image image);

}  // namespace lgd::data
