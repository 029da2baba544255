#pragma once
// The collective operations the distillation methods and the trainer need, behind one small
// interface: a single-process implementation here, a multi-process one with the distributed
// launcher.
#include <torch/types.h>

#include <memory>
#include <vector>

namespace lgd::distill {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // The tensors of all ranks concatenated along dim 0, in rank order (every rank passes the
  // same shape). Not differentiable: used for teacher keys.
  virtual torch::Tensor all_gather_cat(const torch::Tensor& local) = 0;
  // Replaces each tensor by its mean over ranks (gradient averaging).
  virtual void all_reduce_mean(std::vector<torch::Tensor>& tensors) = 0;
  // Replaces `tensor` on every rank by rank root's.
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;
};

// One process: gather returns its input, reductions and broadcasts are identities.
std::shared_ptr<Collective> single_process_collective();

}  // namespace lgd::distill
