#pragma once
// Learning-rate schedule of a run, per optimiser step: lr = base_lr * global_batch / 256,
// reached by a linear warm-up over the first warmup_epochs and then decayed by a half cosine
// to 0 at the last step.
#include <cstdint>

namespace lgd::engine {

struct ScheduleOptions {
  double base_lr = 0.03;             // per 256 images of global batch
  std::int64_t global_batch = 256;   // images per optimiser step over all ranks
  std::int64_t steps_per_epoch = 1;  // optimiser steps
  std::int64_t epochs = 1;
  std::int64_t warmup_epochs = 0;
};

class CosineSchedule {
 public:
  explicit CosineSchedule(const ScheduleOptions& options);  // UsageError for bad values
  double peak() const { return peak_; }
  std::int64_t total_steps() const { return total_; }
  std::int64_t warmup_steps() const { return warmup_; }
  // The lr of optimiser step `step` (0-based): peak * (step + 1) / warmup_steps during the
  // warm-up, then peak * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2.
  double lr(std::int64_t step) const;

 private:
  double peak_;
  std::int64_t total_, warmup_;
};

}  // namespace lgd::engine
