#include "lgd/engine/schedule.h"

#include <gtest/gtest.h>

#include "lgd/core/errors.h"

namespace lgd::engine {
namespace {

// Worked by hand: base 0.03 at global batch 512 peaks at 0.06; 2 warm-up epochs of 4 steps
// (0.0075, 0.015, ..., 0.06), then 8 decay steps over a half cosine from 0.06.
TEST(CosineSchedule, HandWorkedWarmUpAndDecay) {
  CosineSchedule s({0.03, 512, 4, 4, 2});
  EXPECT_DOUBLE_EQ(s.peak(), 0.06);
  EXPECT_EQ(s.total_steps(), 16);
  EXPECT_EQ(s.warmup_steps(), 8);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(s.lr(i), 0.0075 * (i + 1), 1e-15);
  EXPECT_NEAR(s.lr(8), 0.06, 1e-15);                   // cos(0)
  EXPECT_NEAR(s.lr(10), 0.06 * 0.5 * (1 + std::sqrt(0.5)), 1e-15);  // cos(pi/4)
  EXPECT_NEAR(s.lr(12), 0.03, 1e-15);                  // cos(pi/2)
  EXPECT_NEAR(s.lr(15), 0.06 * 0.5 * (1 + std::cos(M_PI * 7 / 8)), 1e-15);
  for (int i = 9; i < 16; ++i) EXPECT_LT(s.lr(i), s.lr(i - 1));
}

TEST(CosineSchedule, NoWarmUpStartsAtThePeakAndRejectsBadValues) {
  CosineSchedule s({0.1, 256, 10, 3, 0});
  EXPECT_DOUBLE_EQ(s.lr(0), 0.1);
  EXPECT_GT(s.lr(29), 0.0);
  EXPECT_THROW(CosineSchedule({0.1, 256, 10, 3, 4}), UsageError);
  EXPECT_THROW(CosineSchedule({0.0, 256, 10, 3, 0}), UsageError);
}

// Reference mode against the official script's adjust_learning_rate, set at each epoch start:
//   lr = peak; if epoch < warm: lr = base + (peak - base) * epoch / warm
//              else: lr = peak * 0.5 * (1 + cos(pi * epoch / epochs))
// base 0.03, global batch 1024 -> peak 0.12; 10 epochs of 3 steps, 2 warm-up epochs: epoch 0
// at 0.03, epoch 1 at 0.075, epoch 2 at 0.12 (1 + cos(pi/5)) / 2, constant within each epoch.
double official_adjust_learning_rate(double base, double peak, int epoch, int warm, int epochs) {
  if (epoch < warm) return base + (peak - base) * epoch / warm;
  return peak * 0.5 * (1.0 + std::cos(M_PI * epoch / epochs));
}

TEST(CosineSchedule, ReferenceModeIsTheOfficialPerEpochSchedule) {
  ScheduleOptions o{0.03, 1024, 3, 10, 2};
  o.reference = true;
  CosineSchedule s(o);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(s.lr(i), 0.03, 1e-15);
  for (int i = 3; i < 6; ++i) EXPECT_NEAR(s.lr(i), 0.075, 1e-15);
  EXPECT_NEAR(s.lr(6), 0.12 * 0.5 * (1 + std::cos(M_PI / 5)), 1e-15);
  EXPECT_NEAR(s.lr(29), 0.12 * 0.5 * (1 + std::cos(M_PI * 9 / 10)), 1e-15);
  for (int step = 0; step < 30; ++step)
    EXPECT_NEAR(s.lr(step), official_adjust_learning_rate(0.03, 0.12, step / 3, 2, 10), 1e-15)
        << "step " << step;
  // Epoch 6 of 10 with 2 warm-up epochs at batch 256 (peak 0.03): 0.0104, not 0.0150.
  ScheduleOptions p{0.03, 256, 1, 10, 2};
  p.reference = true;
  EXPECT_NEAR(CosineSchedule(p).lr(6), 0.0104, 5e-5);
}

}  // namespace
}  // namespace lgd::engine
