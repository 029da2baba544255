#pragma once
// Helpers of the data tests: a temporary folder removed at the end, and image files of
// known content (JPEG by libjpeg-turbo, PNG by libpng, the other formats by OpenCV).
#include <unistd.h>

#include <png.h>
#include <turbojpeg.h>

#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>
#ifdef LGD_TEST_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#endif

namespace lgd::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("lgd_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Writes w x h pixels in libpng's simplified-API `format` (PNG_FORMAT_RGB, _RGBA, _GRAY, ...).
inline void write_png(const std::string& path, int w, int h, std::uint32_t format, const std::vector<std::uint8_t>& px) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(w);
  png.height = static_cast<png_uint_32>(h);
  png.format = format;
  if (!png_image_write_to_file(&png, path.c_str(), 0, px.data(), 0, nullptr))
    throw std::runtime_error("cannot write " + path + ": " + png.message);
}

// Writes w x h RGB pixels as JPEG (quality 95, 4:2:0, as OpenCV's default) or PNG by the
// extension; other extensions need OpenCV (LGD_TEST_WITH_OPENCV).
inline void write_rgb(const std::string& path, int w, int h, const std::vector<std::uint8_t>& rgb) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::string ext = std::filesystem::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".jpg" || ext == ".jpeg") {
    tjhandle tj = tjInitCompress();
    unsigned char* jpeg = nullptr;
    unsigned long size = 0;
    const int rc = tjCompress2(tj, rgb.data(), w, 0, h, TJPF_RGB, &jpeg, &size, TJSAMP_420, 95, 0);
    tjDestroy(tj);
    if (rc != 0) throw std::runtime_error("cannot encode " + path);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(jpeg), static_cast<std::streamsize>(size));
    tjFree(jpeg);
  } else if (ext == ".png") {
    write_png(path, w, h, PNG_FORMAT_RGB, rgb);
  } else {
#ifdef LGD_TEST_WITH_OPENCV
    cv::Mat m(h, w, CV_8UC3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const std::uint8_t* p = &rgb[(static_cast<std::size_t>(y) * w + x) * 3];
        m.at<cv::Vec3b>(y, x) = cv::Vec3b(p[2], p[1], p[0]);
      }
    if (!cv::imwrite(path, m)) throw std::runtime_error("cannot write " + path);
#else
    throw std::runtime_error("cannot write " + path + ": the tests were built without OpenCV");
#endif
  }
}

// A w x h image of one RGB colour, in the format the extension names.
inline void write_solid(const std::string& path, int w, int h, int r, int g, int b) {
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(w) * h * 3);
  for (std::size_t i = 0; i < rgb.size(); i += 3) {
    rgb[i] = static_cast<std::uint8_t>(r);
    rgb[i + 1] = static_cast<std::uint8_t>(g);
    rgb[i + 2] = static_cast<std::uint8_t>(b);
  }
  write_rgb(path, w, h, rgb);
}

// A w x h image with varied content (a pattern of `seed`), as JPEG or PNG by extension.
inline void write_pattern(const std::string& path, int w, int h, int seed) {
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      std::uint8_t* p = &rgb[(static_cast<std::size_t>(y) * w + x) * 3];
      p[0] = static_cast<std::uint8_t>((x * y + seed) & 255);
      p[1] = static_cast<std::uint8_t>((y * 5 + seed * 17) & 255);
      p[2] = static_cast<std::uint8_t>((x * 3 + seed * 40) & 255);
    }
  write_rgb(path, w, h, rgb);
}

inline void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void write_text(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

inline std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace lgd::testing
