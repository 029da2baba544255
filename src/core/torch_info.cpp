#include <torch/torch.h>

#include "lgd/core/torch_compat.h"
#include "lgd/core/version.h"

namespace lgd {

std::string torch_version() { return TORCH_VERSION; }

}  // namespace lgd
