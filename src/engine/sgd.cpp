#include "lgd/engine/sgd.h"

#include <torch/torch.h>

#include <set>

#include "lgd/core/errors.h"
#include "lgd/core/shape_string.h"

namespace lgd::engine {

Sgd::Sgd(models::NamedTensors params, SgdOptions options)
    : params_(std::move(params)), options_(options) {
  torch::NoGradGuard no_grad;
  buffers_.reserve(params_.size());
  for (const auto& [name, p] : params_) buffers_.push_back(torch::zeros_like(p));
}

void Sgd::step(double lr, const torch::Tensor& apply) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> ps, gs, bs;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto& g = params_[i].second.grad();
    if (!g.defined()) continue;
    ps.push_back(params_[i].second);
    gs.push_back(g);
    bs.push_back(buffers_[i]);
  }
  if (ps.empty()) return;
  // Same operations in the same order as torch.optim.SGD's foreach path.
  std::vector<torch::Tensor> d = options_.weight_decay != 0
                                     ? at::_foreach_add(gs, ps, options_.weight_decay)
                                     : gs;
  if (apply.defined()) {
    // The same arithmetic out of place, then kept only where `apply` holds.
    if (options_.momentum != 0) {
      auto nb = at::_foreach_add(at::_foreach_mul(bs, options_.momentum), d, 1.0);
      d = options_.nesterov ? at::_foreach_add(d, nb, options_.momentum) : nb;
      for (std::size_t i = 0; i < bs.size(); ++i) bs[i].copy_(torch::where(apply, nb[i], bs[i]));
    }
    const auto np = at::_foreach_add(ps, d, -lr);
    for (std::size_t i = 0; i < ps.size(); ++i) ps[i].copy_(torch::where(apply, np[i], ps[i]));
    return;
  }
  if (options_.momentum != 0) {
    at::_foreach_mul_(bs, options_.momentum);
    at::_foreach_add_(bs, d, 1.0);
    if (options_.nesterov)
      d = at::_foreach_add(d, bs, options_.momentum);
    else
      d = bs;
  }
  at::_foreach_add_(ps, d, -lr);
}

void Sgd::zero_grad() {
  for (auto& [name, p] : params_) p.mutable_grad() = torch::Tensor();
}

std::vector<torch::Tensor> Sgd::grads() const {
  std::vector<torch::Tensor> out;
  for (const auto& [name, p] : params_)
    if (p.grad().defined()) out.push_back(p.grad());
  return out;
}

torch::Tensor Sgd::clip_grad_norm(double max_norm) {
  torch::NoGradGuard no_grad;
  auto gs = grads();
  if (gs.empty()) return torch::zeros({}, torch::kFloat32);
  std::vector<torch::Tensor> norms;
  norms.reserve(gs.size());
  for (const auto& g : gs) norms.push_back(g.norm(2).to(torch::kFloat32));
  auto total = torch::stack(norms).norm(2);
  if (max_norm > 0) {
    const auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
    for (auto& g : gs) g.mul_(coef.to(g.scalar_type()));
  }
  return total;
}

models::NamedTensors Sgd::state() const {
  models::NamedTensors out;
  out.reserve(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) out.emplace_back(params_[i].first, buffers_[i]);
  return out;
}

void Sgd::load_state(const models::NamedTensors& state, const std::string& source) {
  std::map<std::string, torch::Tensor> given(state.begin(), state.end());
  std::set<std::string> expected;
  for (const auto& [name, p] : params_) expected.insert(name);
  for (const auto& [name, t] : given)
    if (!expected.count(name))
      throw IoError(source + ": unexpected optimiser state 'optim." + name + "'");
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto it = given.find(params_[i].first);
    if (it == given.end())
      throw IoError(source + ": missing optimiser state 'optim." + params_[i].first + "'");
    if (it->second.sizes() != buffers_[i].sizes())
      throw IoError(source + ": optimiser state 'optim." + params_[i].first + "' has shape " +
                    shape_string(it->second.sizes()) + ", expected " +
                    shape_string(buffers_[i].sizes()));
    buffers_[i].copy_(it->second);
  }
}

}  // namespace lgd::engine
