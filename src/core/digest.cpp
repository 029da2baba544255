#include "lgd/core/digest.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "lgd/core/errors.h"

namespace lgd {

Digest& Digest::bytes(const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 0x100000001b3ULL;
  return *this;
}

Digest& Digest::text(const std::string& s) { return bytes(s.data(), s.size() + 1); }

Digest& Digest::words(const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t acc = h_;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    acc = (acc ^ w) * 0x100000001b3ULL;
    acc ^= acc >> 29;
  }
  h_ = acc;
  return bytes(p + i, n - i);
}

Digest& Digest::file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot read the file");
  std::vector<char> block(1 << 20);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    // Whole words per block, so the digest does not depend on where blocks end.
    words(block.data(), got);
  }
  if (in.bad()) throw IoError(path + ": read error");
  return *this;
}

std::string Digest::hex() const { return hex64(h_); }

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace lgd
