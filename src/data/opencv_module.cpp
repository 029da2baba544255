// A loadable module around OpenCV's image decoders with a C interface. lgd opens it with
// dlopen at its first image that is neither JPEG nor PNG, after putting its pixel limit
// (data.max_pixels) into OPENCV_IO_MAX_IMAGE_PIXELS: OpenCV's imgcodecs library reads that
// variable once, while it is being loaded, so a library linked into lgd itself would have
// read it before lgd's main() could set it, and decoded a BMP or TIFF whose header claims
// a billion pixels (found by fuzz/targets/image.cpp).
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstdint>
#include <cstring>
#include <string>

namespace {

void set_error(char* error, std::size_t size, const std::string& message) {
  if (!error || size == 0) return;
  std::strncpy(error, message.c_str(), size - 1);
  error[size - 1] = '\0';
}

}  // namespace

extern "C" {

// Decodes `bytes` to 8-bit RGB. `allocate(ctx, width, height)` returns width x height x 3
// bytes for the pixels, or null to refuse the size. Returns 0 on success, 1 when OpenCV reads
// no image from the bytes, 2 when `allocate` refused, 3 on an OpenCV error (in `error`).
__attribute__((visibility("default"))) int lgd_cv_decode(
    const std::uint8_t* bytes, std::size_t size,
    std::uint8_t* (*allocate)(void* ctx, int width, int height), void* ctx, char* error,
    std::size_t error_size) {
  cv::Mat bgr;
  try {
    const cv::Mat raw(1, static_cast<int>(size), CV_8UC1, const_cast<std::uint8_t*>(bytes));
    bgr = cv::imdecode(raw, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    set_error(error, error_size, e.msg);
    return 3;
  }
  if (bgr.empty() || bgr.type() != CV_8UC3) return 1;
  std::uint8_t* out = allocate(ctx, bgr.cols, bgr.rows);
  if (!out) return 2;
  for (int y = 0; y < bgr.rows; ++y) {
    const std::uint8_t* src = bgr.ptr<std::uint8_t>(y);
    std::uint8_t* dst = out + static_cast<std::size_t>(y) * bgr.cols * 3;
    for (int x = 0; x < bgr.cols; ++x) {
      dst[x * 3 + 0] = src[x * 3 + 2];
      dst[x * 3 + 1] = src[x * 3 + 1];
      dst[x * 3 + 2] = src[x * 3 + 0];
    }
  }
  return 0;
}

}  // extern "C"
