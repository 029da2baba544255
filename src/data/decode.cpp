#include "lgd/data/decode.h"

#include <png.h>
#include <turbojpeg.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>
#ifdef LGD_WITH_OPENCV
#include <dlfcn.h>

#include <mutex>
#include <string>

#include "lgd/core/errors.h"
#endif

namespace lgd::data {
namespace {

std::atomic<std::int64_t> g_max_pixels{kDefaultMaxImagePixels};

// Throws BadSample when a header's size is empty or above the pixel limit.
void check_size(const std::string& name, const char* format, std::int64_t width, std::int64_t height) {
  if (width <= 0 || height <= 0) throw BadSample(name + ": " + format + " with an empty image");
  const std::int64_t limit = g_max_pixels.load();
  if (width * height > limit)
    throw BadSample(name + ": " + format + " of " + std::to_string(width) + "x" +
                    std::to_string(height) + " = " + std::to_string(width * height) +
                    " pixels exceeds the limit of " + std::to_string(limit) +
                    " (data.max_pixels; a possible decompression bomb)");
}

class MemorySource final : public ImageSource {
 public:
  explicit MemorySource(Image image) : image_(std::move(image)) {}
  int width() const override { return image_.width; }
  int height() const override { return image_.height; }
  void decode_into(int, Image& out) override {
    if (used_) throw std::logic_error("memory image source decoded twice");
    used_ = true;
    std::swap(out, image_);
  }

 private:
  Image image_;
  bool used_ = false;
};

// One TurboJPEG decompressor per thread, created on first use and replaced after a failure
// (a handle that failed part-way keeps state that breaks the next header it reads).
struct Decompressor {
  tjhandle h = nullptr;
  ~Decompressor() { reset(); }
  void reset() {
    if (h != nullptr) tjDestroy(h);
    h = nullptr;
  }
  tjhandle get() {
    if (h == nullptr) h = tjInitDecompress();
    if (h == nullptr) throw std::runtime_error("libjpeg-turbo: cannot create a decompressor");
    return h;
  }
};

Decompressor& thread_decompressor() {
  thread_local Decompressor d;
  return d;
}

// PIL's CMYK -> RGB for JPEGs, which it reads as Adobe-inverted CMYK: with c, k the stored
// values, PIL's C = 255 - c and K = 255 - k, and R = (255 - K) - (C * (255 - K) / 255).
inline std::uint8_t cmyk_channel(int stored_c, int stored_k) {
  const int nk = stored_k;
  const int tmp = (255 - stored_c) * nk + 128;
  const int v = nk - (((tmp >> 8) + tmp) >> 8);
  return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

class JpegSource final : public ImageSource {
 public:
  JpegSource(std::vector<std::uint8_t> bytes, std::string name)
      : bytes_(std::move(bytes)), name_(std::move(name)) {
    int subsamp = 0;
    Decompressor& d = thread_decompressor();
    if (tjDecompressHeader3(d.get(), bytes_.data(), static_cast<unsigned long>(bytes_.size()),
                            &width_, &height_, &subsamp, &colorspace_) != 0) {
      const std::string message = tjGetErrorStr2(d.get());
      d.reset();
      throw BadSample(name_ + ": not a readable JPEG (" + message + ")");
    }
    check_size(name_, "JPEG", width_, height_);
  }
  int width() const override { return width_; }
  int height() const override { return height_; }

  void decode_into(int reduce_log2, Image& out) override {
    Decompressor& d = thread_decompressor();
    tjhandle tj = d.get();
    const tjscalingfactor factor{1, 1 << std::max(0, std::min(reduce_log2, 3))};
    const int w = TJSCALED(width_, factor);
    const int h = TJSCALED(height_, factor);
    out.reshape(w, h);
    const bool cmyk = colorspace_ == TJCS_CMYK || colorspace_ == TJCS_YCCK;
    thread_local std::vector<std::uint8_t> cmyk_buffer;
    std::uint8_t* target = out.pixels.data();
    if (cmyk) {
      cmyk_buffer.resize(static_cast<std::size_t>(w) * h * 4);
      target = cmyk_buffer.data();
    }
    const int rc = tjDecompress2(tj, bytes_.data(), static_cast<unsigned long>(bytes_.size()),
                                 target, w, 0, h, cmyk ? TJPF_CMYK : TJPF_RGB, 0);
    if (rc != 0) {
      const std::string message = tjGetErrorStr2(tj);
      const bool warning = tjGetErrorCode(tj) == TJERR_WARNING;
      d.reset();
      // Recoverable warnings (stray bytes between markers) leave a complete image, as PIL
      // accepts them; a premature end does not, and PIL refuses those files too.
      if (!warning || message.find("Premature end") != std::string::npos) {
        throw BadSample(name_ + ": corrupt or truncated JPEG (" + message + ")");
      }
    }
    if (cmyk) {
      const std::size_t n = static_cast<std::size_t>(w) * h;
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint8_t* p = &cmyk_buffer[i * 4];
        out.pixels[i * 3 + 0] = cmyk_channel(p[0], p[3]);
        out.pixels[i * 3 + 1] = cmyk_channel(p[1], p[3]);
        out.pixels[i * 3 + 2] = cmyk_channel(p[2], p[3]);
      }
    }
  }

 private:
  std::vector<std::uint8_t> bytes_;
  std::string name_;
  int width_ = 0;
  int height_ = 0;
  int colorspace_ = 0;
};

// PNG through libpng's simplified API: any bit depth, palette or grey level to 8-bit RGB;
// an alpha channel is dropped (as PIL's convert("RGB") and OpenCV's IMREAD_COLOR do).
Image decode_png(const std::vector<std::uint8_t>& bytes, const std::string& name) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size()))
    throw BadSample(name + ": corrupt PNG (" + png.message + ")");
  try {
    check_size(name, "PNG", png.width, png.height);
  } catch (...) {
    png_image_free(&png);
    throw;
  }
  png.format = PNG_FORMAT_RGBA;
  const int w = static_cast<int>(png.width), h = static_cast<int>(png.height);
  std::vector<std::uint8_t> rgba(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, rgba.data(), 0, nullptr)) {
    const std::string message = png.message;
    png_image_free(&png);
    throw BadSample(name + ": corrupt or truncated PNG (" + message + ")");
  }
  Image out(w, h);
  const std::size_t n = static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
  for (std::size_t i = 0; i < n; ++i) std::memcpy(&out.pixels[i * 3], &rgba[i * 4], 3);
  return out;
}

#ifdef LGD_WITH_OPENCV
// OpenCV's decoders live in the lgd_opencv module (src/data/opencv_module.cpp), opened at the
// first image that needs them. OpenCV refuses images above OPENCV_IO_MAX_IMAGE_PIXELS, which
// it reads once, as that module loads: lgd puts its limit there first, unless the user's
// environment sets it. A later, different data.max_pixels still applies to the decoded size
// (check_size), not to OpenCV's allocation.
using CvDecode = int (*)(const std::uint8_t*, std::size_t, std::uint8_t* (*)(void*, int, int), void*,
                         char*, std::size_t);

CvDecode opencv_decoder() {
  static CvDecode decode = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    if (std::getenv("OPENCV_IO_MAX_IMAGE_PIXELS") == nullptr)
      ::setenv("OPENCV_IO_MAX_IMAGE_PIXELS", std::to_string(g_max_pixels.load()).c_str(), 1);
    const char* env = std::getenv("LGD_OPENCV_MODULE");
    const std::string path = env && *env ? env : LGD_OPENCV_MODULE_PATH;
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      throw IoError(path + ": cannot load lgd's OpenCV module (" + dlerror() +
                    "); set LGD_OPENCV_MODULE to its path");
    decode = reinterpret_cast<CvDecode>(dlsym(handle, "lgd_cv_decode"));
    if (!decode) throw IoError(path + ": not lgd's OpenCV module (lgd_cv_decode missing)");
  });
  return decode;
}

// The signatures of the formats lgd reads through OpenCV: BMP, WebP, TIFF and PNM (P1-P6).
bool other_format_signature(const std::vector<std::uint8_t>& b) {
  auto at = [&](std::size_t i, const char* text) {
    const std::size_t n = std::strlen(text);
    return b.size() >= i + n && std::memcmp(b.data() + i, text, n) == 0;
  };
  return at(0, "BM") || (at(0, "RIFF") && at(8, "WEBP")) || (at(0, "II*") && b.size() >= 4 && b[3] == 0) ||
         (at(0, "MM") && b.size() >= 4 && b[2] == 0 && b[3] == '*') ||
         (b.size() >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6');
}

struct CvTarget {
  const std::string* name;
  Image image;
  std::string refused;
};

Image decode_with_opencv(const std::vector<std::uint8_t>& bytes, const std::string& name) {
  CvTarget target{&name, Image(), ""};
  auto allocate = [](void* ctx, int width, int height) -> std::uint8_t* {
    auto* t = static_cast<CvTarget*>(ctx);
    try {
      check_size(*t->name, "image", width, height);
    } catch (const BadSample& e) {
      t->refused = e.what();
      return nullptr;
    }
    t->image.reshape(width, height);
    return t->image.pixels.data();
  };
  char error[512] = {0};
  switch (opencv_decoder()(bytes.data(), bytes.size(), allocate, &target, error, sizeof error)) {
    case 0:
      return std::move(target.image);
    case 2:
      throw BadSample(target.refused);
    case 3:
      throw BadSample(name + ": not a readable image (" + error + ")");
    default:
      throw BadSample(name + ": not a readable image");
  }
}
#endif

}  // namespace

void set_max_image_pixels(std::int64_t pixels) { g_max_pixels.store(pixels); }

std::int64_t max_image_pixels() { return g_max_pixels.load(); }

std::unique_ptr<ImageSource> memory_source(Image image) {
  return std::make_unique<MemorySource>(std::move(image));
}

std::unique_ptr<ImageSource> encoded_source(std::vector<std::uint8_t> bytes, std::string name) {
  if (bytes.empty()) throw BadSample(name + ": empty file");
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
    return std::make_unique<JpegSource>(std::move(bytes), std::move(name));
  }
  static const std::uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPng, 8) == 0)
    return std::make_unique<MemorySource>(decode_png(bytes, name));
#ifdef LGD_WITH_OPENCV
  // OpenCV gets only the formats lgd reads through it. Debian's OpenCV also hands DICOM,
  // JPEG 2000, OpenEXR, ... to other libraries, and GDCM (its DICOM reader) aborts the process
  // on a malformed file (found by fuzz/targets/image.cpp).
  if (!other_format_signature(bytes))
    throw BadSample(name + ": not an image lgd reads (JPEG, PNG, BMP, WebP, TIFF, PNM)");
  return std::make_unique<MemorySource>(decode_with_opencv(bytes, name));
#else
  throw BadSample(name + ": not a JPEG or PNG file (this lgd was built without OpenCV, which reads the "
                  "other formats: rebuild with -DLGD_WITH_OPENCV=ON)");
#endif
}

bool decodes_other_formats() {
#ifdef LGD_WITH_OPENCV
  return true;
#else
  return false;
#endif
}

std::unique_ptr<ImageSource> file_source(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (std::filesystem::is_directory(status)) throw BadSample(path + ": is a directory, not an image file");
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    throw BadSample(path + ": not a regular file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw BadSample(path + ": cannot open");
  const std::streamsize size = in.tellg();
  if (size <= 0) throw BadSample(path + ": empty file");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw BadSample(path + ": read error");
  return encoded_source(std::move(bytes), path);
}

Image decode_file(const std::string& path) { return file_source(path)->decode(0); }

}  // namespace lgd::data
