#pragma once
// Learning-rate schedule of a run. The peak lr is base_lr * global_batch / 256.
//   cosine (default): per optimiser step, a linear warm-up from 0 over the first
//     warmup_epochs, then a half cosine to 0 at the last step.
//   reference: one lr per epoch e, as the reference script sets it at each epoch start:
//     base_lr + (peak - base_lr) * e / warmup_epochs during the warm-up (so it starts at
//     base_lr), then peak * (1 + cos(pi * e / epochs)) / 2, the official script's
//     adjust_learning_rate (its cosine spans every epoch, the warm-up ones included).
#include <cstdint>

namespace lgd::engine {

struct ScheduleOptions {
  double base_lr = 0.03;             // per 256 images of global batch
  std::int64_t global_batch = 256;   // images per optimiser step over all ranks
  std::int64_t steps_per_epoch = 1;  // optimiser steps
  std::int64_t epochs = 1;
  std::int64_t warmup_epochs = 0;
  bool reference = false;  // the per-epoch reference mode
};

class CosineSchedule {
 public:
  explicit CosineSchedule(const ScheduleOptions& options);  // UsageError for bad values
  double peak() const { return peak_; }
  std::int64_t total_steps() const { return total_; }
  std::int64_t warmup_steps() const { return warmup_; }
  // The lr of optimiser step `step` (0-based). cosine: peak * (step + 1) / warmup_steps during
  // the warm-up, then peak * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2.
  double lr(std::int64_t step) const;

 private:
  double base_, peak_;
  std::int64_t total_, warmup_, steps_per_epoch_, epochs_, warmup_epochs_;
  bool reference_;
};

}  // namespace lgd::engine
