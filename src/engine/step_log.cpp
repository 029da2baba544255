#include "step_log.h"

#include <cmath>

namespace lgd::engine::detail {

void StepLog::add_batch(std::int64_t images, std::int64_t bad, double wait_seconds) {
  images_ += images;
  bad_ += bad;
  wait_ += wait_seconds;
}

void StepLog::add_losses(const distill::LossParts& parts, const torch::Tensor& finite) {
  const auto add = [&](torch::Tensor& acc, const torch::Tensor& v) {
    if (!v.defined()) return;
    auto value = v.detach();
    if (finite.defined()) value = torch::where(finite, value, torch::zeros_like(value));
    acc = acc.defined() ? acc + value : value.clone();
  };
  add(loss_, parts.loss);
  add(vis_, parts.loss_vis);
  add(tex_, parts.loss_tex);
  if (finite.defined())
    add(finite_count_, torch::ones({}, torch::TensorOptions().dtype(torch::kFloat64).device(finite.device())));
  else
    ++micro_;
}

void StepLog::add_grad_norm(const torch::Tensor& norm) {
  if (norm.defined()) norm_ = norm_.defined() ? norm_ + norm : norm.clone();
}

StepLog::Means StepLog::take(distill::Collective& collective, bool multi) {
  if (finite_count_.defined()) micro_ = static_cast<std::int64_t>(finite_count_.item<double>());
  const double interval = std::chrono::duration<double>(Clock::now() - started_).count();
  if (multi) {
    // Losses averaged over every rank's micro-batches.
    auto value = [](const torch::Tensor& t) { return t.defined() ? t.item<double>() : 0.0; };
    auto sums = torch::tensor({value(loss_), value(vis_), value(tex_), static_cast<double>(micro_),
                               vis_.defined() ? 1.0 : 0.0, tex_.defined() ? 1.0 : 0.0}, torch::kFloat64);
    collective.all_reduce(sums, distill::Reduce::kSum);
    auto scalar = [](double v) { return torch::tensor(v, torch::kFloat64); };
    loss_ = scalar(sums[0].item<double>());
    vis_ = sums[4].item<double>() > 0 ? scalar(sums[1].item<double>()) : torch::Tensor();
    tex_ = sums[5].item<double>() > 0 ? scalar(sums[2].item<double>()) : torch::Tensor();
    micro_ = static_cast<std::int64_t>(sums[3].item<double>());
  }
  const double micro = static_cast<double>(micro_);
  auto mean = [](const torch::Tensor& t, double n) { return t.defined() && n > 0 ? t.item<double>() / n : std::nan(""); };
  Means m{mean(loss_, micro),
          mean(vis_, micro),
          mean(tex_, micro),
          mean(norm_, static_cast<double>(std::max<std::int64_t>(steps_, 1))),
          static_cast<double>(images_) / interval,
          wait_ / interval,
          bad_};
  *this = StepLog();
  return m;
}

}  // namespace lgd::engine::detail
