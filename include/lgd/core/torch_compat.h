#pragma once
// The one place that knows LibTorch versions apart: Debian's 1.13 (CPU) and the 2.x that
// ships inside a PyTorch pip install. Include only from .cpp files.
#include <torch/version.h>

#define LGD_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||      \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#include <ATen/Context.h>
#include <torch/cuda.h>

namespace lgd::compat {

// Whether CUDA kernels are compiled in and a device is visible.
inline bool cuda_available() { return torch::cuda::is_available(); }

inline int cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }

}  // namespace lgd::compat
