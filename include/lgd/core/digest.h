#pragma once
// A 64-bit digest (FNV-1a, with a word-wise mix for bulk data) that keys caches: eval's
// feature cache, the teacher-embedding cache. Not cryptographic: it tells apart the inputs
// a cache was made from, it does not defend against crafted ones.
#include <cstddef>
#include <cstdint>
#include <string>

namespace lgd {

class Digest {
 public:
  // Byte-wise FNV-1a.
  Digest& bytes(const void* data, std::size_t n);
  // A string and its terminator (so "ab" + "c" differs from "a" + "bc").
  Digest& text(const std::string& s);
  // Bulk data, 8 bytes at a time (byte-wise FNV is slow for ~10^8 bytes).
  Digest& words(const void* data, std::size_t n);
  // A whole file's bytes, read in blocks; IoError naming it when it cannot be read.
  Digest& file(const std::string& path);
  template <typename T>
  Digest& value(const T& v) {
    return bytes(&v, sizeof v);
  }
  std::uint64_t get() const { return h_; }
  std::string hex() const;

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
};

// 16 lower-case hex digits.
std::string hex64(std::uint64_t v);

}  // namespace lgd
