#pragma once
// Helpers of the data tests: a temporary folder removed at the end, and image files of
// known content written with OpenCV.
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

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

// A w x h image of one RGB colour, written in the format the extension names.
inline void write_solid(const std::string& path, int w, int h, int r, int g, int b) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  cv::Mat m(h, w, CV_8UC3, cv::Scalar(b, g, r));
  if (!cv::imwrite(path, m)) throw std::runtime_error("cannot write " + path);
}

// A w x h image with varied content (a pattern of `seed`), as JPEG or PNG by extension.
inline void write_pattern(const std::string& path, int w, int h, int seed) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      m.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<std::uint8_t>((x * 3 + seed * 40) & 255),
                                        static_cast<std::uint8_t>((y * 5 + seed * 17) & 255),
                                        static_cast<std::uint8_t>((x * y + seed) & 255));
  if (!cv::imwrite(path, m)) throw std::runtime_error("cannot write " + path);
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
