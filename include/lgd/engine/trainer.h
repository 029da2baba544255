#pragma once
// `lgd train`: distils a teacher bundle into a student of the zoo, as ../../docs/ARCHITECTURE.md
// describes. One Trainer is one process of a run; the run directory holds the resolved config,
// the log, metrics.jsonl, TensorBoard events, checkpoints/ and, at the end, student.pth.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lgd::distill {
class Teacher;
}

namespace lgd::engine {
namespace detail {
struct TrainerState;  // everything a run holds; shared with bench_train
}

struct TrainArgs {
  std::string config;                  // YAML file
  std::vector<std::string> overrides;  // "key=value" (--set)
  std::string resume;  // a checkpoint; empty: <run dir>/checkpoints/last.ckpt when present
};

class Trainer {
 public:
  // Loads the config, the teacher, the TSB, the data and the student, and resumes when a
  // checkpoint is given or found. Every bad input is an lgd::Error naming it.
  explicit Trainer(const TrainArgs& args);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains to the end of the last epoch and returns 0, or, on SIGINT / SIGTERM, saves a
  // checkpoint and returns 130 / 143. Throws when the loss stays non-finite for
  // train.max_nonfinite steps in a row (no checkpoint is written then).
  int run();

  const distill::Teacher& teacher() const;
  const std::string& run_dir() const;

 private:
  std::unique_ptr<detail::TrainerState> impl_;
};

struct BenchTrainOptions {
  TrainArgs args;
  int warmup = 3;  // untimed steps
  int steps = 10;  // timed steps
  // When set, a Chrome trace of `trace_steps` more steps after the timed ones (operators, and
  // CUDA kernels where LibTorch has Kineto) is written there; the timing does not include them.
  std::string trace;
  int trace_steps = 3;
};

struct BenchTrainResult {
  std::string device, arch, method, teacher;
  std::string keys = "teacher";  // teacher (its forward in every step) | cache (teacher.cache)
  std::string amp;          // off | bf16 | fp16: the autocast the step ran under
  std::string photometric;  // device | host (the colour work not in the step) | none
  bool channels_last = false;  // the layout the step ran in (train.channels_last, as applied)
  std::int64_t batch = 0, image_size = 0, threads = 0, steps = 0;
  double step_ms = 0;      // mean wall time of a whole step, no synchronisation inside
  double images_per_s = 0;
  // A second pass with the device synchronised between phases: mean ms per step in each
  // (teacher_ms includes the batch's copy to the device, normalisation and, with
  // data.photometric on the device, the colour work).
  double teacher_ms = 0, student_ms = 0, update_ms = 0, optimizer_ms = 0;
};

// Training steps on synthetic images (uniform random uint8, made once) with the config's
// teacher, student, method and optimiser; no data loading, no run directory.
BenchTrainResult bench_train(const BenchTrainOptions& options);

}  // namespace lgd::engine
