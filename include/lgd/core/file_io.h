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

// Removes the temporary files write_file_atomic leaves in `dir` when its process is killed
// mid-write (<name>.tmp.<pid>); returns their paths. Only for a directory no live process
// writes into (hold its DirectoryLock).
std::vector<std::string> remove_interrupted_writes(const std::string& dir);

}  // namespace lgd

namespace lgd {

// An exclusive lock on a directory (flock on <dir>/.lock, which holds the owner's pid and
// host): held until destroyed or the process ends, so a killed owner leaves no stale lock.
// Throws UsageError naming the directory and the owner when another process holds it.
class DirectoryLock {
 public:
  DirectoryLock(const std::string& dir, const std::string& what);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace lgd
