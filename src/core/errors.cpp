#include "lgd/core/errors.h"

namespace lgd {

std::string at_file(const std::string& path, const std::string& message) {
  return path + ": " + message;
}

}  // namespace lgd
