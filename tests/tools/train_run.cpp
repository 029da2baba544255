// Test helper: runs `lgd train` in-process and checks that the teacher never moved.
//   train_run CONFIG [key=value ...]
// Clones every parameter and buffer of both teacher encoders after loading, trains, and
// prints "teacher tensors N max_abs_diff X" (exit code: the trainer's).
#include <torch/torch.h>

#include <cstdio>

#include "lgd/distill/teacher.h"
#include "lgd/engine/trainer.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: train_run CONFIG [key=value ...]\n");
    return 2;
  }
  try {
    lgd::engine::TrainArgs args;
    args.config = argv[1];
    for (int i = 2; i < argc; ++i) args.overrides.emplace_back(argv[i]);
    lgd::engine::Trainer trainer(args);
    std::vector<torch::Tensor> before;
    for (const auto& t : trainer.teacher().state()) before.push_back(t.detach().clone());
    const int rc = trainer.run();
    const auto after = trainer.teacher().state();
    double diff = after.size() == before.size() ? 0.0 : 1e30;
    for (std::size_t i = 0; i < before.size() && i < after.size(); ++i)
      diff = std::max(diff, (after[i].to(torch::kFloat64) - before[i].to(torch::kFloat64)).abs().max().item<double>());
    std::printf("teacher tensors %zu max_abs_diff %g\n", before.size(), diff);
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_run: %s\n", e.what());
    return 1;
  }
}
