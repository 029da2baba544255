#pragma once
// What lgd train's log line and metrics.jsonl report for the steps since the last log step:
// the losses and gradient norms summed on the device (no host synchronisation per step), the
// micro-batches and steps they cover, the images, the loader's waits and the replaced
// samples, and their reduction over ranks at a log step. Private to src/engine.
#include <torch/torch.h>

#include <chrono>
#include <cstdint>

#include "lgd/distill/collective.h"
#include "lgd/distill/method.h"

namespace lgd::engine::detail {

class StepLog {
 public:
  using Clock = std::chrono::steady_clock;

  // A batch taken from the loader: `images` over all ranks, `bad` replaced samples, and the
  // seconds the training thread waited for it.
  void add_batch(std::int64_t images, std::int64_t bad, double wait_seconds);
  // A micro-batch's losses. `finite` (deferred checks: a 0-dim bool on the device) zeroes a
  // non-finite micro-batch's losses and counts the finite ones on the device; without it,
  // the micro-batch counts as finite.
  void add_losses(const distill::LossParts& parts, const torch::Tensor& finite = {});
  void add_grad_norm(const torch::Tensor& norm);
  void end_step() { ++steps_; }
  // Time that is not training (validation) is kept out of the interval's images/s.
  void exclude(Clock::duration d) { started_ += d; }

  struct Means {
    double loss, loss_vis, loss_tex;  // NaN where no micro-batch of the interval was finite
    double grad_norm, images_per_s, data_wait;
    std::int64_t bad;
  };
  // The interval's means (losses over every rank's finite micro-batches: one all-reduce when
  // several ranks), then starts the next interval.
  Means take(distill::Collective& collective, bool multi);

 private:
  torch::Tensor loss_, vis_, tex_, norm_, finite_count_;
  std::int64_t micro_ = 0, steps_ = 0, images_ = 0, bad_ = 0;
  double wait_ = 0;
  Clock::time_point started_ = Clock::now();
};

}  // namespace lgd::engine::detail
