#pragma once
// Whole-file reads and crash-safe writes.
#include <string>
#include <vector>

namespace lgd {

// Reads a whole file; IoError naming the path when it is missing or unreadable.
std::vector<char> read_file(const std::string& path);

// Writes `bytes` to `path` through a temporary file in the same directory that is flushed,
// fsync'ed and renamed over `path`, so readers see either the old file or the whole new one.
void write_file_atomic(const std::string& path, const char* data, std::size_t size);
inline void write_file_atomic(const std::string& path, const std::vector<char>& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}
inline void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace lgd
