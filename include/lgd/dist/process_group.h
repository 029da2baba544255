#pragma once
// The multi-process Collective on LibTorch's c10d: a TCPStore rendezvous at the launcher's
// master address (rank 0 serves it), then a ProcessGroupGloo (CPU tensors) or, when LibTorch
// was built with CUDA, a ProcessGroupNCCL (CUDA tensors). Every failure of a collective (a
// rank that died, a timeout) becomes an lgd::Error naming this rank and the operation.
#include <memory>
#include <string>

#include "lgd/dist/launch.h"

namespace lgd::distill {
class Collective;
}

namespace lgd::dist {

struct ProcessGroupOptions {
  std::string backend = "gloo";  // gloo | nccl
  double timeout_seconds = 600;  // rendezvous and every collective
};

// Whether this build can make an NCCL process group (LibTorch with CUDA and c10d NCCL).
bool nccl_available();
// Whether this build has c10d's Gloo process group (gloo's headers were found).
bool gloo_available();

// Connects to the other ranks; IoError when the rendezvous cannot be reached or served
// within the timeout (naming host:port), ConfigError for an unknown backend or nccl in a
// build without it.
std::shared_ptr<distill::Collective> connect(const LaunchInfo& launch, const ProcessGroupOptions& options);

}  // namespace lgd::dist
