#include "lgd/distill/method.h"

#include <torch/torch.h>

#include "lgd/core/errors.h"
#include "lgd/core/shape_string.h"

namespace lgd::distill {
namespace {

torch::Tensor random_unit_rows(std::int64_t rows, std::int64_t dim, std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto x = at::randn({rows, dim}, gen, torch::TensorOptions().dtype(torch::kFloat32));
  return x / x.norm(2, 1, true).clamp_min(1e-12);
}

const torch::Tensor& require(const std::map<std::string, torch::Tensor>& state,
                             const std::string& key, const torch::Tensor& like) {
  const auto it = state.find(key);
  if (it == state.end()) throw IoError("method state: missing '" + key + "'");
  if (it->second.sizes() != like.sizes() || it->second.scalar_type() != like.scalar_type())
    throw IoError("method state: '" + key + "' has shape " + shape_string(it->second.sizes()) +
                  ", expected " + shape_string(like.sizes()));
  return it->second;
}

void check_keys(const std::map<std::string, torch::Tensor>& state,
                std::initializer_list<const char*> expected) {
  for (const auto& [key, value] : state) {
    bool known = false;
    for (const char* e : expected) known = known || key == e;
    if (!known) throw IoError("method state: unexpected '" + key + "'");
  }
}

// [s.t, s^T M] / tau_s against [t.t, t^T M] / tau_t, M [D, K] (columns).
torch::Tensor positive_pair_loss(const torch::Tensor& s, const torch::Tensor& t,
                                 const torch::Tensor& m, double tau_s, double tau_t) {
  const auto td = t.detach();
  const auto md = m.detach().to(s.scalar_type());
  auto zs = torch::cat({(s * td).sum(1, true), torch::matmul(s, md)}, 1).to(torch::kFloat32);
  auto zt = torch::cat({(td * td).sum(1, true), torch::matmul(td, md)}, 1).to(torch::kFloat32);
  return soft_cross_entropy(zs / tau_s, zt / tau_t);
}

class LgdMethod final : public Method {
 public:
  LgdMethod(const MethodOptions& o, std::int64_t dim, torch::Tensor tsb, std::uint64_t seed)
      : options_(o), tsb_(std::move(tsb)), vsb_(dim, tsb_.size(1), o.vsb_momentum, seed) {}
  const std::string& name() const override { return options_.name; }

  LossParts loss(const torch::Tensor& s, const torch::Tensor& t) const override {
    LossParts p;
    const auto td = t.detach();
    p.loss_vis = positive_pair_loss(s, td, vsb_.bank(), options_.student_temp, options_.teacher_temp);
    const auto tsb = tsb_.to(s.scalar_type());
    const auto zs = torch::matmul(s, tsb).to(torch::kFloat32) / options_.student_temp;
    const auto zt = torch::matmul(td, tsb).to(torch::kFloat32) / options_.teacher_temp;
    p.loss_tex = soft_cross_entropy(zs, zt);
    p.classes = zt.argmax(1);
    p.loss = options_.alpha * p.loss_vis + (1.0 - options_.alpha) * p.loss_tex;
    return p;
  }
  void update(const torch::Tensor& global_keys, const torch::Tensor& global_classes,
              const torch::Tensor& apply) override {
    if (global_classes.defined())
      vsb_.update_assigned(global_keys, global_classes, apply);
    else
      vsb_.update_assigned(global_keys, VisualSemanticsBank::assign(global_keys, tsb_), apply);
  }
  std::map<std::string, torch::Tensor> metrics() const override {
    return {{"vsb_initialised", vsb_.initialised_fraction()}};
  }
  void to(const torch::Device& device) override {
    tsb_ = tsb_.to(device);
    vsb_.to(device);
  }
  std::map<std::string, torch::Tensor> state() const override { return vsb_.state(); }
  void load_state(const std::map<std::string, torch::Tensor>& state) override { vsb_.load_state(state); }

 private:
  MethodOptions options_;
  torch::Tensor tsb_;
  VisualSemanticsBank vsb_;
};

class SeedMethod final : public Method {
 public:
  SeedMethod(const MethodOptions& o, std::int64_t dim, std::uint64_t seed)
      : options_(o), queue_(random_unit_rows(o.queue_size, dim, seed)), ptr_(torch::zeros({}, torch::kInt64)) {}
  const std::string& name() const override { return options_.name; }

  LossParts loss(const torch::Tensor& s, const torch::Tensor& t) const override {
    LossParts p;
    p.loss_vis = positive_pair_loss(s, t, queue_.t(), options_.student_temp, options_.teacher_temp);
    p.loss = p.loss_vis;
    return p;
  }
  void update(const torch::Tensor& global_keys, const torch::Tensor&, const torch::Tensor& apply) override {
    torch::NoGradGuard no_grad;
    const std::int64_t k = queue_.size(0);
    auto keys = global_keys.detach().to(queue_.dtype());
    if (keys.size(0) > k) keys = keys.slice(0, keys.size(0) - k);
    const std::int64_t n = keys.size(0);
    // FIFO: rows ptr .. ptr + n - 1 (mod K) take the newest keys; the pointer is a tensor on
    // the queue's device, so this needs no host synchronisation.
    const auto rows =
        (torch::arange(n, torch::TensorOptions().dtype(torch::kInt64).device(queue_.device())) + ptr_).remainder(k);
    const auto next = (ptr_ + n).remainder(k);
    if (apply.defined()) {
      keys = torch::where(apply, keys, queue_.index_select(0, rows));
      ptr_.copy_(torch::where(apply, next, ptr_));
    } else {
      ptr_.copy_(next);
    }
    queue_.index_copy_(0, rows, keys);
  }
  std::map<std::string, torch::Tensor> metrics() const override { return {}; }
  void to(const torch::Device& device) override {
    queue_ = queue_.to(device);
    ptr_ = ptr_.to(device);
  }
  std::map<std::string, torch::Tensor> state() const override {
    return {{"seed.queue", queue_}, {"seed.ptr", ptr_}};
  }
  void load_state(const std::map<std::string, torch::Tensor>& state) override {
    check_keys(state, {"seed.queue", "seed.ptr"});
    queue_.copy_(require(state, "seed.queue", queue_));
    ptr_.copy_(require(state, "seed.ptr", ptr_));
  }

 private:
  MethodOptions options_;
  torch::Tensor queue_;  // [K, D]
  torch::Tensor ptr_;    // int64, 0-dim: the next row to write
};

}  // namespace

torch::Tensor soft_cross_entropy(const torch::Tensor& student_logits,
                                 const torch::Tensor& teacher_logits) {
  const auto target = torch::softmax(teacher_logits.detach(), 1);
  return -(target * torch::log_softmax(student_logits, 1)).sum(1).mean();
}

VisualSemanticsBank::VisualSemanticsBank(std::int64_t dim, std::int64_t classes, double momentum,
                                         std::uint64_t seed)
    : rows_(random_unit_rows(classes, dim, seed)),
      initialised_(torch::zeros({classes}, torch::kBool)),
      momentum_(momentum) {}

torch::Tensor VisualSemanticsBank::assign(const torch::Tensor& keys, const torch::Tensor& tsb) {
  torch::NoGradGuard no_grad;
  return torch::matmul(keys.detach(), tsb.to(keys.scalar_type())).argmax(1);
}

void VisualSemanticsBank::update(const torch::Tensor& keys, const torch::Tensor& tsb) {
  const std::int64_t D = rows_.size(1), C = rows_.size(0);
  if (keys.dim() != 2 || keys.size(1) != D || tsb.dim() != 2 || tsb.size(0) != D || tsb.size(1) != C)
    throw UsageError("VSB update: keys " + shape_string(keys.sizes()) + " and TSB " +
                     shape_string(tsb.sizes()) + " do not fit a bank of [" + std::to_string(D) +
                     ", " + std::to_string(C) + "]");
  const auto k = keys.detach().to(rows_.scalar_type());
  update_assigned(k, assign(k, tsb));
}

void VisualSemanticsBank::update_assigned(const torch::Tensor& keys, const torch::Tensor& classes,
                                          const torch::Tensor& apply) {
  torch::NoGradGuard no_grad;
  const std::int64_t C = rows_.size(0);
  const auto k = keys.detach().to(rows_.scalar_type());
  const auto opts = rows_.options();
  // n_c for every class (index_add_ of ones: unlike bincount, no host sync on CUDA).
  const auto counts = torch::zeros({C}, opts).index_add_(0, classes, torch::ones({k.size(0)}, opts));
  // Only the rows of classes that received keys are touched (O(N D), not O(C D)), by one
  // index_add_ of per-key deltas: with keep = m if c is initialised else 0 and
  // add = (1 - keep) / n_c, key i of class c adds add * (k_i - Q_c), so that the n_c keys
  // together give Q_c + (1 - keep) (z_c - Q_c), i.e. z_c for a new class and
  // m Q_c + (1 - m) z_c for an initialised one.
  const auto was = initialised_.index_select(0, classes).to(rows_.scalar_type());  // [N]
  const auto add = (1.0 - was * momentum_) / counts.index_select(0, classes);
  auto delta = (k - rows_.index_select(0, classes)).mul_(add.unsqueeze(1));
  if (!apply.defined()) {
    rows_.index_add_(0, classes, delta);
    initialised_.index_fill_(0, classes, true);
    return;
  }
  rows_.index_add_(0, classes, torch::where(apply, delta, torch::zeros_like(delta)));
  initialised_.index_put_({classes}, initialised_.index_select(0, classes).logical_or(apply));
}

torch::Tensor VisualSemanticsBank::initialised_fraction() const {
  return initialised_.to(torch::kFloat32).mean();
}

void VisualSemanticsBank::to(const torch::Device& device) {
  rows_ = rows_.to(device);
  initialised_ = initialised_.to(device);
}

std::map<std::string, torch::Tensor> VisualSemanticsBank::state() const {
  return {{"vsb.bank", bank()}, {"vsb.initialised", initialised_}};
}

void VisualSemanticsBank::load_state(const std::map<std::string, torch::Tensor>& state) {
  check_keys(state, {"vsb.bank", "vsb.initialised"});
  rows_ = require(state, "vsb.bank", bank()).to(rows_.device()).t().contiguous();
  initialised_ = require(state, "vsb.initialised", initialised_).to(initialised_.device()).clone();
}

std::unique_ptr<Method> make_method(const MethodOptions& options, std::int64_t embed_dim,
                                    const torch::Tensor& tsb, std::uint64_t seed) {
  if (options.name == "seed") return std::make_unique<SeedMethod>(options, embed_dim, seed);
  if (options.name != "lgd")
    throw ConfigError("method.name: unknown method '" + options.name + "' (expected lgd or seed)");
  if (!tsb.defined() || tsb.dim() != 2 || tsb.size(0) != embed_dim)
    throw IoError("TSB of shape " + (tsb.defined() ? shape_string(tsb.sizes()) : std::string("(none)")) +
                  " does not fit the teacher's embedding width " + std::to_string(embed_dim) +
                  " (expected [" + std::to_string(embed_dim) + ", classes])");
  return std::make_unique<LgdMethod>(options, embed_dim, tsb.to(torch::kFloat32), seed);
}

}  // namespace lgd::distill
