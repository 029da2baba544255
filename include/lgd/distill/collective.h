#pragma once
// The collective operations the distillation methods and the trainer need, behind one small
// interface: a single-process implementation here, the multi-process one on LibTorch's c10d
// process groups in lgd/dist/process_group.h.
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

namespace lgd::distill {

// Gradient averaging over ranks for one optimiser step. A multi-process implementation
// reduces buckets of gradients while the last backward of the step still runs.
class GradientSync {
 public:
  virtual ~GradientSync() = default;
  // The next backward is the step's last: reduce buckets as their gradients become ready.
  virtual void arm() {}
  // Leaves every parameter's .grad equal to its mean over ranks (launches what the backward
  // did not, waits for everything in flight). Every rank calls it once per step.
  virtual void finish() {}
};

enum class Reduce { kSum, kMax };

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // The tensors of all ranks concatenated along dim 0, in rank order (every rank passes the
  // same shape). Not differentiable: used for teacher keys.
  virtual torch::Tensor all_gather_cat(const torch::Tensor& local) = 0;
  // Replaces `tensor` on every rank by rank root's.
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;
  // In place over ranks (flags and counts).
  virtual void all_reduce(torch::Tensor& tensor, Reduce op) = 0;
  // Rank root's string on every rank.
  virtual std::string broadcast_string(const std::string& value, int root) = 0;
  // The gradient averaging of `params` (in the optimiser's order); bucket_mb sizes the buckets.
  virtual std::unique_ptr<GradientSync> gradient_sync(std::vector<torch::Tensor> params, double bucket_mb) = 0;
  // "torchrun rank 1 of 4 (gloo)" and the like, for logs.
  virtual std::string describe() const = 0;
};

// One process: gather returns its input, reductions and broadcasts are identities.
std::shared_ptr<Collective> single_process_collective();

}  // namespace lgd::distill
