#pragma once
// "[64, 3, 7, 7]": a tensor's shape as error messages print it.
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <string>

namespace lgd {

inline std::string shape_string(c10::IntArrayRef sizes) {
  std::string s = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

}  // namespace lgd
