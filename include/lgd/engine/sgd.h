#pragma once
// SGD with momentum and weight decay, computed as torch.optim.SGD does (dampening 0):
//   g <- g + wd * p;  b <- m * b + g;  g <- nesterov ? g + m * b : b;  p <- p - lr * g
// Momentum buffers start at zero, which reproduces torch's first step (b = g) exactly. They
// are named after their parameters, so checkpoints hold them by name and load strictly.
#include <string>
#include <vector>

#include "lgd/models/state_dict.h"

namespace lgd::engine {

struct SgdOptions {
  double momentum = 0.9;
  double weight_decay = 1e-4;
  bool nesterov = false;
};

class Sgd {
 public:
  // `params`: (name, parameter) pairs; buffers are allocated next to each parameter, so
  // construct after the model has moved to its device.
  Sgd(models::NamedTensors params, SgdOptions options);

  // One update with learning rate `lr`; parameters without a gradient are left alone.
  // `apply` (optional, a 0-dim bool on the parameters' device): when false, parameters and
  // momentum stay as they were -- a step skipped without a host synchronisation. When true
  // the result is bit-identical to the unmasked step.
  void step(double lr, const torch::Tensor& apply = {});
  // Drops every gradient (torch's zero_grad(set_to_none=True)).
  void zero_grad();
  // The defined gradients, in parameter order.
  std::vector<torch::Tensor> grads() const;
  // Total L2 norm of all gradients as a 0-dim float tensor on the parameters' device (no host
  // synchronisation); when max_norm > 0 the gradients are scaled by
  // min(1, max_norm / (norm + 1e-6)), as torch.nn.utils.clip_grad_norm_ does.
  torch::Tensor clip_grad_norm(double max_norm);

  const models::NamedTensors& parameters() const { return params_; }
  // The momentum buffers under their parameters' names.
  models::NamedTensors state() const;
  // Strict: exactly the parameters' names with their shapes; IoError naming `source`.
  void load_state(const models::NamedTensors& state, const std::string& source);

 private:
  models::NamedTensors params_;
  std::vector<torch::Tensor> buffers_;
  SgdOptions options_;
};

}  // namespace lgd::engine
