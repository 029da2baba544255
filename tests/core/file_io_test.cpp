#include "lgd/core/file_io.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "lgd/core/errors.h"

namespace lgd {
namespace {

namespace fs = std::filesystem;

TEST(FileIo, AtomicWriteReplacesAndLeavesNoTemporary) {
  const fs::path dir = fs::temp_directory_path() / ("lgd_file_io_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "out.bin").string();
  write_file_atomic(path, std::string("first"));
  write_file_atomic(path, std::string("second, longer"));
  const auto bytes = read_file(path);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "second, longer");
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) files += entry.is_regular_file();
  EXPECT_EQ(files, 1u);
  fs::remove_all(dir);
}

TEST(FileIo, ErrorsNameThePath) {
  try {
    read_file("/nonexistent/lgd/weights.pth");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("/nonexistent/lgd/weights.pth: cannot open", 0), 0u);
  }
  try {
    write_file_atomic("/nonexistent/lgd/out.pth", std::string("x"));
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("directory /nonexistent/lgd does not exist"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace lgd
