#include "lgd/dist/process_group.h"

#include <torch/torch.h>
#ifdef LGD_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef LGD_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "lgd/core/errors.h"
#include "lgd/core/logging.h"
#include "lgd/core/torch_compat.h"
#include "lgd/distill/collective.h"

namespace lgd::dist {
namespace {

using Ms = std::chrono::milliseconds;

std::string first_line(const std::string& text) {
  const auto nl = text.find('\n');
  return nl == std::string::npos ? text : text.substr(0, nl);
}

std::string message_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return first_line(c->what_without_backtrace());
  return first_line(e.what());
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// The c10d operations lgd uses, on one process group type (ProcessGroupGloo or
// ProcessGroupNCCL; their common base differs between LibTorch 1.13 and 2.x, so the type
// is a template parameter rather than a base pointer).
template <class PG>
class C10dCollective final : public distill::Collective {
 public:
  C10dCollective(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<PG> pg, LaunchInfo launch,
                 std::string backend, torch::Device device, double timeout)
      : store_(std::move(store)),
        pg_(std::move(pg)),
        launch_(std::move(launch)),
        backend_(std::move(backend)),
        device_(device),
        timeout_(timeout) {}

  int rank() const override { return launch_.rank; }
  int world_size() const override { return launch_.world_size; }

  std::string describe() const override {
    return launch_.launcher + " rank " + std::to_string(launch_.rank) + " of " +
           std::to_string(launch_.world_size) + " (" + backend_ + ", rendezvous " + launch_.master_addr + ":" +
           std::to_string(launch_.master_port) + ")";
  }

  // Runs a c10d call and waits; any failure becomes one line naming the rank and the call.
  template <class F>
  void run(const char* what, F&& launch_work) {
    try {
      auto work = launch_work();
      work->wait();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw fail(what, e);
    }
  }

  Error fail(const char* what, const std::exception& e) const {
    return Error("dist: rank " + std::to_string(launch_.rank) + " of " + std::to_string(launch_.world_size) + ": " +
                 what + " failed: " + message_of(e) + " (another rank stopped, or did not answer within dist.timeout = " +
                 fmt::format("{:g}", timeout_) + " s; see its log)");
  }

  torch::Tensor on_device(const torch::Tensor& t) const { return t.detach().to(device_).contiguous(); }

  torch::Tensor all_gather_cat(const torch::Tensor& local) override {
    std::vector<torch::Tensor> in{on_device(local)};
    std::vector<std::vector<torch::Tensor>> out(1);
    for (int r = 0; r < launch_.world_size; ++r) out[0].push_back(torch::empty_like(in[0]));
    run("all-gather", [&] { return pg_->allgather(out, in); });
    return torch::cat(out[0], 0).to(local.device());
  }

  void all_reduce(torch::Tensor& tensor, distill::Reduce op) override {
    std::vector<torch::Tensor> v{on_device(tensor)};
    c10d::AllreduceOptions o;
    o.reduceOp = op == distill::Reduce::kMax ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
    run("all-reduce", [&] { return pg_->allreduce(v, o); });
    torch::NoGradGuard no_grad;
    tensor.copy_(v[0]);
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    std::vector<torch::Tensor> v{on_device(tensor)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    run("broadcast", [&] { return pg_->broadcast(v, o); });
    torch::NoGradGuard no_grad;
    tensor.copy_(v[0]);
  }

  std::string broadcast_string(const std::string& value, int root) override {
    auto length = torch::tensor({static_cast<std::int64_t>(value.size())}, torch::kInt64);
    broadcast(length, root);
    auto bytes = torch::zeros({length.item<std::int64_t>()}, torch::kUInt8);
    if (launch_.rank == root) std::memcpy(bytes.data_ptr<std::uint8_t>(), value.data(), value.size());
    if (bytes.numel() > 0) broadcast(bytes, root);
    return std::string(reinterpret_cast<const char*>(bytes.data_ptr<std::uint8_t>()),
                       static_cast<std::size_t>(bytes.numel()));
  }

  void barrier() override {
    // A one-element all-reduce is a barrier on every backend and LibTorch version.
    auto t = torch::zeros({1}, torch::kFloat32);
    all_reduce(t, distill::Reduce::kSum);
  }

  std::unique_ptr<distill::GradientSync> gradient_sync(std::vector<torch::Tensor> params, double bucket_mb) override;

  c10::intrusive_ptr<PG>& pg() { return pg_; }

 private:
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<PG> pg_;
  LaunchInfo launch_;
  std::string backend_;
  torch::Device device_;
  double timeout_;
};

// Gradient averaging in buckets, as DistributedDataParallel does it: parameters are grouped
// in reverse order (the order backward produces their gradients) into buckets of about
// bucket_mb; once armed, a hook on each parameter copies its gradient (plus what earlier
// micro-batches accumulated) into its bucket, and a full bucket's all-reduce starts at once,
// while backward goes on. Buckets are launched strictly in index order, so every rank issues
// the same sequence of collectives.
template <class PG>
class BucketSync final : public distill::GradientSync {
 public:
  BucketSync(C10dCollective<PG>& owner, std::vector<torch::Tensor> params, double bucket_mb)
      : owner_(owner), params_(std::move(params)) {
    const auto cap = static_cast<std::int64_t>(bucket_mb * 1024 * 1024);
    bucket_of_.assign(params_.size(), -1);
    offset_of_.assign(params_.size(), 0);
    for (std::size_t k = params_.size(); k-- > 0;) {
      const auto& p = params_[k];
      const auto bytes = p.numel() * static_cast<std::int64_t>(p.element_size());
      if (buckets_.empty() || buckets_.back().bytes + bytes > cap ||
          buckets_.back().dtype != p.scalar_type() || buckets_.back().device != p.device()) {
        if (buckets_.empty() || !buckets_.back().members.empty()) buckets_.emplace_back();
        buckets_.back().dtype = p.scalar_type();
        buckets_.back().device = p.device();
      }
      auto& b = buckets_.back();
      bucket_of_[k] = static_cast<int>(buckets_.size() - 1);
      offset_of_[k] = b.numel;
      b.members.push_back(k);
      b.numel += p.numel();
      b.bytes += bytes;
    }
    for (auto& b : buckets_)
      b.flat = torch::zeros({b.numel}, torch::TensorOptions().dtype(b.dtype).device(b.device));
    reset();
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (!params_[k].requires_grad()) continue;
      hooks_.emplace_back(k, params_[k].register_hook([this, k](const torch::Tensor& grad) { on_grad(k, grad); }));
    }
  }

  ~BucketSync() override {
    for (auto& [k, id] : hooks_) params_[k].remove_hook(id);
  }

  void arm() override {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_ = true;
  }

  void finish() override {
    std::unique_lock<std::mutex> lock(mutex_);
    torch::NoGradGuard no_grad;
    for (std::size_t k = 0; k < params_.size(); ++k)
      if (!filled_[k]) fill(k, torch::Tensor());
    launch_ready();
    const double world = owner_.world_size();
    for (auto& b : buckets_) {
      try {
        b.work->wait();
      } catch (const Error&) {
        throw;
      } catch (const std::exception& e) {
        reset();
        throw owner_.fail("gradient all-reduce", e);
      }
      b.flat.div_(world);
      for (auto k : b.members) {
        auto& p = params_[k];
        const auto slot = b.flat.narrow(0, offset_of_[k], p.numel()).view(p.sizes());
        if (p.grad().defined()) {
          p.mutable_grad().copy_(slot);
        } else {
          p.mutable_grad() = slot.clone();
        }
      }
    }
    reset();
  }

 private:
  struct Bucket {
    std::vector<std::size_t> members;
    std::int64_t numel = 0, bytes = 0;
    torch::ScalarType dtype = torch::kFloat32;
    torch::Device device = torch::kCPU;
    torch::Tensor flat;
    int pending = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };

  void reset() {
    armed_ = false;
    next_launch_ = 0;
    filled_.assign(params_.size(), false);
    for (auto& b : buckets_) {
      b.pending = static_cast<int>(b.members.size());
      b.work.reset();
    }
  }

  // The gradient this step contributes: earlier micro-batches' sum (p.grad) plus `incoming`.
  void fill(std::size_t k, const torch::Tensor& incoming) {
    auto& b = buckets_[bucket_of_[k]];
    const auto& p = params_[k];
    auto slot = b.flat.narrow(0, offset_of_[k], p.numel()).view(p.sizes());
    const auto& existing = p.grad();
    if (incoming.defined()) {
      slot.copy_(incoming);
      if (existing.defined()) slot.add_(existing);
    } else if (existing.defined()) {
      slot.copy_(existing);
    } else {
      slot.zero_();
    }
    filled_[k] = true;
    --b.pending;
  }

  void launch_ready() {
    while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
      auto& b = buckets_[next_launch_++];
      std::vector<torch::Tensor> v{b.flat};
      try {
        b.work = owner_.pg()->allreduce(v);
      } catch (const std::exception& e) {
        throw owner_.fail("gradient all-reduce", e);
      }
    }
  }

  void on_grad(std::size_t k, const torch::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!armed_ || filled_[k]) return;
    torch::NoGradGuard no_grad;
    fill(k, grad);
    launch_ready();
  }

  C10dCollective<PG>& owner_;
  std::vector<torch::Tensor> params_;
  std::vector<int> bucket_of_;
  std::vector<std::int64_t> offset_of_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<std::size_t, unsigned>> hooks_;
  std::vector<bool> filled_;
  std::size_t next_launch_ = 0;
  bool armed_ = false;
  std::mutex mutex_;
};

template <class PG>
std::unique_ptr<distill::GradientSync> C10dCollective<PG>::gradient_sync(std::vector<torch::Tensor> params,
                                                                         double bucket_mb) {
  return std::make_unique<BucketSync<PG>>(*this, std::move(params), bucket_mb);
}

}  // namespace

bool gloo_available() {
#ifdef LGD_WITH_GLOO
  return true;
#else
  return false;
#endif
}

bool nccl_available() {
#ifdef LGD_WITH_NCCL
  return true;
#else
  return false;
#endif
}

std::shared_ptr<distill::Collective> connect(const LaunchInfo& launch, const ProcessGroupOptions& options) {
  if (options.backend != "gloo" && options.backend != "nccl")
    throw ConfigError("dist.backend: '" + options.backend + "' (expected gloo or nccl)");
  if (options.backend == "gloo" && !gloo_available())
    throw ConfigError("dist.backend: gloo, but this lgd was built without gloo's headers (Debian: libgloo-dev) "
                      "(expected nccl on GPUs, or a build with libgloo-dev)");
  if (options.backend == "nccl" && !nccl_available())
    throw ConfigError("dist.backend: nccl, but this lgd was built against a LibTorch without CUDA/NCCL "
                      "(expected gloo, or a build against a CUDA LibTorch)");
  const auto timeout = Ms(static_cast<std::int64_t>(options.timeout_seconds * 1000.0));
  const std::string where = launch.master_addr + ":" + std::to_string(launch.master_port);

  c10::intrusive_ptr<c10d::Store> store;
  {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(launch.master_port);
    so.isServer = launch.rank == 0;
    so.numWorkers = static_cast<std::size_t>(launch.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    try {
      try {
        store = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, so);
      } catch (const std::exception& e) {
        // LibTorch 2.4+ asks for the libuv store by default; a LibTorch built without libuv
        // (Debian's 2.6) refuses it, and the classic store serves the same protocol.
        if (message_of(e).find("libuv") == std::string::npos || !compat::tcpstore_without_libuv(so)) throw;
        store = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, so);
      }
    } catch (const std::exception& e) {
      const std::string why = message_of(e);
      if (launch.rank == 0)
        throw IoError("dist: rank 0 of " + std::to_string(launch.world_size) + " cannot serve the rendezvous on " +
                      where + " (MASTER_ADDR / MASTER_PORT, dist.master_addr / dist.master_port), or not all " +
                      std::to_string(launch.world_size) + " ranks joined within dist.timeout = " +
                      fmt::format("{:g}", options.timeout_seconds) + " s: " + why);
      throw IoError("dist: rank " + std::to_string(launch.rank) + " of " + std::to_string(launch.world_size) +
                    " cannot reach the rendezvous at " + where + " within dist.timeout = " +
                    fmt::format("{:g}", options.timeout_seconds) +
                    " s (is rank 0 running there, and are MASTER_ADDR / MASTER_PORT right?): " + why);
    }
  }

  try {
    if (options.backend == "nccl") {
#ifdef LGD_WITH_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, launch.rank, launch.world_size, o);
      return std::make_shared<C10dCollective<c10d::ProcessGroupNCCL>>(
          store, pg, launch, "nccl", torch::Device(torch::kCUDA, launch.local_rank), options.timeout_seconds);
#endif
    }
#ifdef LGD_WITH_GLOO
    auto o = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
      o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (is_loopback(launch.master_addr)) {
      o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    o->threads = 2;
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, launch.rank, launch.world_size, o);
    return std::make_shared<C10dCollective<c10d::ProcessGroupGloo>>(store, pg, launch, "gloo", torch::kCPU,
                                                                     options.timeout_seconds);
#else
    throw ConfigError("dist.backend: " + options.backend + " is not in this build");
#endif
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw IoError("dist: rank " + std::to_string(launch.rank) + " of " + std::to_string(launch.world_size) +
                  ": the " + options.backend + " process group could not connect the ranks (rendezvous " + where +
                  "): " + message_of(e));
  }
}

}  // namespace lgd::dist
