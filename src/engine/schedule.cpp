#include "lgd/engine/schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "lgd/core/errors.h"

namespace lgd::engine {

CosineSchedule::CosineSchedule(const ScheduleOptions& o) {
  if (o.base_lr <= 0 || o.global_batch < 1 || o.steps_per_epoch < 1 || o.epochs < 1 ||
      o.warmup_epochs < 0 || o.warmup_epochs > o.epochs)
    throw UsageError("learning-rate schedule: need base_lr > 0, batch >= 1, steps per epoch >= 1, "
                     "0 <= warm-up epochs <= epochs (got warm-up " + std::to_string(o.warmup_epochs) +
                     " of " + std::to_string(o.epochs) + ")");
  base_ = o.base_lr;
  peak_ = o.base_lr * static_cast<double>(o.global_batch) / 256.0;
  total_ = o.epochs * o.steps_per_epoch;
  warmup_ = o.warmup_epochs * o.steps_per_epoch;
  steps_per_epoch_ = o.steps_per_epoch;
  epochs_ = o.epochs;
  warmup_epochs_ = o.warmup_epochs;
  reference_ = o.reference;
}

double CosineSchedule::lr(std::int64_t step) const {
  step = std::clamp<std::int64_t>(step, 0, total_ - 1);
  if (reference_) {
    const std::int64_t e = step / steps_per_epoch_;
    if (e < warmup_epochs_)
      return base_ + (peak_ - base_) * static_cast<double>(e) / static_cast<double>(warmup_epochs_);
    // The official script's adjust_learning_rate: the cosine runs over all epochs, the
    // warm-up ones included, not over the epochs after them.
    return peak_ * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(e) / static_cast<double>(epochs_)));
  }
  if (step < warmup_) return peak_ * static_cast<double>(step + 1) / static_cast<double>(warmup_);
  const std::int64_t decay = total_ - warmup_;
  const double progress = static_cast<double>(step - warmup_) / static_cast<double>(decay);
  return peak_ * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace lgd::engine
