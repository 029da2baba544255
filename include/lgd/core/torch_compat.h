#pragma once
// The one place that knows LibTorch versions apart: Debian's 1.13 (CPU) and the 2.x that
// ships inside a PyTorch pip install. Include only from .cpp files.
#include <torch/version.h>

#define LGD_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||      \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#include <ATen/Context.h>
#include <ATen/Version.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/cuda.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>

namespace lgd::compat {

// Whether CUDA kernels are compiled in and a device is visible.
inline bool cuda_available() { return torch::cuda::is_available(); }

inline int cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }

// The CUDA version LibTorch was built with ("13.0"), empty for a CPU-only build. Both 1.13
// and 2.x name it in the build settings of at::show_config() ("CUDA_VERSION=13.0, ...");
// asking the CUDA hooks instead would start the CUDA runtime, which fails without a driver.
inline std::string cuda_build_version() {
  const std::string config = at::show_config();
  const std::string key = "CUDA_VERSION=";
  const auto at = config.find(key);
  if (at == std::string::npos) return {};
  const auto begin = at + key.size();
  const auto end = config.find_first_of(", \n", begin);
  return config.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

// CUDA autocast for the scope of the guard, as `with torch.autocast("cuda", dtype)`: the
// previous state is restored and the cast cache cleared when the outermost guard ends.
class CudaAutocast {
 public:
  CudaAutocast(bool enabled, at::ScalarType dtype) {
#if LGD_TORCH_AT_LEAST(2, 4)
    prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, enabled);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
#endif
    at::autocast::increment_nesting();
  }
  ~CudaAutocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if LGD_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
#else
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
#endif
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool prev_enabled_;
  at::ScalarType prev_dtype_;
};

// Turns off the libuv TCPStore back end in c10d::TCPStoreOptions (LibTorch 2.2+ has the
// choice and 2.4+ makes libuv the default); false where the options have no such field.
template <class TcpStoreOptions>
bool tcpstore_without_libuv(TcpStoreOptions& options) {
#if LGD_TORCH_AT_LEAST(2, 2)
  if (!options.useLibUV) return false;
  options.useLibUV = false;
  return true;
#else
  (void)options;
  return false;
#endif
}

// Records the operators this process runs, from construction to finish(), which returns a
// Chrome trace (chrome://tracing, Perfetto). LibTorch 2.x: the Kineto profiler, with the CUDA
// kernels when `cuda` is set ({"traceEvents": [...]}); 1.13 (Debian's, built without Kineto):
// the legacy profiler, operators only (a JSON list of events). Destroyed unfinished, it stops
// recording and writes nothing.
class OpProfiler {
 public:
  explicit OpProfiler(bool cuda) {
#if LGD_TORCH_AT_LEAST(2, 0)
    namespace impl = torch::profiler::impl;
    const impl::ProfilerConfig config(impl::ProfilerState::KINETO);
    std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
    if (cuda) activities.insert(impl::ActivityType::CUDA);
    torch::autograd::profiler::prepareProfiler(config, activities);
    torch::autograd::profiler::enableProfiler(config, activities);
#else
    (void)cuda;
    legacy_ = std::make_unique<torch::autograd::profiler::RecordProfile>(legacy_out_);
#endif
  }
  OpProfiler(const OpProfiler&) = delete;
  OpProfiler& operator=(const OpProfiler&) = delete;
  ~OpProfiler() {
    if (finished_) return;
    try {
#if LGD_TORCH_AT_LEAST(2, 0)
      torch::autograd::profiler::disableProfiler();
#else
      legacy_.reset();
#endif
    } catch (...) {
    }
  }
  // `scratch`: a file Kineto writes its trace to (it writes only to files), removed again.
  std::string finish(const std::string& scratch) {
    finished_ = true;
#if LGD_TORCH_AT_LEAST(2, 0)
    torch::autograd::profiler::disableProfiler()->save(scratch);
    std::ifstream in(scratch, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    in.close();
    std::remove(scratch.c_str());
    return text.str();
#else
    (void)scratch;
    legacy_.reset();  // writes the events
    return legacy_out_.str();
#endif
  }

 private:
  bool finished_ = false;
#if !LGD_TORCH_AT_LEAST(2, 0)
  std::ostringstream legacy_out_;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> legacy_;
#endif
};

}  // namespace lgd::compat
