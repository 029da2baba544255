#pragma once
#include <string>

namespace lgd {

// lgd's version, e.g. "0.1.0".
const char* version();

// The LibTorch version lgd was built against, e.g. "1.13.0".
std::string torch_version();

}  // namespace lgd
