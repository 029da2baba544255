#pragma once
// One training process's state and the parts of a run, shared by the trainer's sources:
// trainer_setup.cpp (set-up from the config), trainer_checkpoint.cpp (checkpoints and
// resume), trainer.cpp (the step, validation, Trainer::run, bench_train). Private to
// src/engine.
#include <c10/core/Event.h>
#include <c10/core/Stream.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lgd/config/run_config.h"
#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/core/progress.h"
#include "lgd/data/dataset.h"
#include "lgd/data/loader.h"
#include "lgd/dist/launch.h"
#include "lgd/distill/collective.h"
#include "lgd/distill/method.h"
#include "lgd/distill/teacher.h"
#include "lgd/engine/checkpoint.h"
#include "lgd/engine/embedding_cache.h"
#include "lgd/engine/metrics.h"
#include "lgd/engine/schedule.h"
#include "lgd/engine/sgd.h"
#include "lgd/engine/trainer.h"
#include "lgd/models/student.h"
#include "lgd/text/text_bank.h"
#include "step_log.h"

namespace lgd::engine {
using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

namespace detail {

// fp16 dynamic loss scaling, as torch.cuda.amp.GradScaler (init 2^16, growth 2 every 2000
// good steps, backoff 0.5).
struct LossScaler {
  torch::Tensor scale, growth;
  explicit LossScaler(const torch::Device& device)
      : scale(torch::full({1}, 65536.0, torch::TensorOptions().dtype(torch::kFloat32).device(device))),
        growth(torch::zeros({1}, torch::TensorOptions().dtype(torch::kInt32).device(device))) {}
  // Unscales the gradients in place and updates the scale, on the device; returns found_inf
  // ([1], > 0 when a gradient was not finite: the step must be skipped).
  torch::Tensor unscale_and_update(std::vector<torch::Tensor> grads) {
    auto found_inf = torch::zeros({1}, scale.options());
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, scale.reciprocal());
    at::_amp_update_scale_(scale, growth, found_inf, 2.0, 0.5, 2000);
    return found_inf;
  }
};

struct Phases {
  Clock::time_point last;
  double teacher = 0, student = 0, update = 0, optimizer = 0;
};

struct TrainerState {
  // Rank 0's lock on the run directory; first, so that it is released last.
  std::unique_ptr<DirectoryLock> run_dir_lock;
  config::LoadedConfig loaded;
  const config::RunConfig& cfg = loaded.config;
  std::string config_path, run_dir;
  torch::Device device = torch::kCPU;
  bool cuda = false;
  bool autocast = false;                          // CUDA autocast on (train.amp != off)
  torch::ScalarType amp_dtype = torch::kBFloat16;  // its dtype, also the teacher's on CUDA
  int threads = 1;
  bool channels_last = true;  // train.channels_last, unless this CPU gets it wrong (models::use_channels_last)
  // teacher.overlap on CUDA: the stream the teacher's image encoder runs on during a step.
  std::optional<c10::Stream> teacher_stream;

  dist::LaunchInfo launch;
  std::shared_ptr<distill::Collective> collective = distill::single_process_collective();
  std::unique_ptr<distill::GradientSync> grad_sync;
  std::unique_ptr<distill::Teacher> teacher;
  text::TextBank tsb;
  torch::Tensor tsb_device;
  std::shared_ptr<models::Student> student;
  torch::nn::Sequential head{nullptr};
  std::unique_ptr<distill::Method> method;
  std::unique_ptr<Sgd> optimizer;
  std::optional<LossScaler> scaler;

  std::shared_ptr<const data::Dataset> dataset;
  std::unique_ptr<data::Loader> loader;
  // teacher.cache: the teacher's embeddings of every view, read instead of its forward.
  std::unique_ptr<EmbeddingCache> cache;
  std::int64_t cache_views = 0;  // K: epoch e reads view e mod K (teacher.cache_views, else all)
  data::ViewOptions view;  // the training view (photometric_on_device: its colour work here)
  std::unique_ptr<CosineSchedule> schedule;
  std::int64_t steps_per_epoch = 0, total_steps = 0, global_batch = 0;

  // Position: `epoch` (0-based) and the optimiser steps done in it; global_step counts all.
  std::int64_t epoch = 0, step_in_epoch = 0, global_step = 0;
  std::int64_t nonfinite_total = 0, nonfinite_run = 0;
  std::optional<double> teacher_val_top1;

  // train.nonfinite_check: deferred (no host synchronisation in the step) or per step.
  // Deferred, the two counts live on the device and check_nonfinite() reads them.
  bool deferred = false;
  torch::Tensor nonfinite_total_dev, nonfinite_run_dev;
  // Deferred on CUDA: pinned batches whose copy to the device may still be in flight, held
  // so that the loader does not reuse their memory before the copy is done.
  std::deque<std::pair<torch::Tensor, c10::Event>> in_flight;

  std::unique_ptr<CheckpointDir> checkpoints;
  std::unique_ptr<MetricsLog> metrics;
  StatusLine status;  // "epoch e/E step s/S pct ETA" on a terminal
  StepLog step_log;   // the sums of the log interval
  Clock::time_point run_started;
  std::int64_t run_first_step = 0;

  bool multi() const { return launch.multi(); }
  int rank() const { return launch.rank; }

  // The launcher's view of this process (before anything else reads the config's batch).
  void setup_launch();

  void setup_process_group();

  void setup_device();

  std::string where(const std::string& key) const {
    const auto it = loaded.origins.find(key);
    return it == loaded.origins.end() ? config_path : it->second;
  }

  void require_key(const std::string& key, const std::string& value, const char* expected) const {
    if (value.empty())
      throw ConfigError(where(key) + ": " + key + ": required by lgd train (expected " + expected + ")");
  }

  void open_dataset();

  void setup_teacher();

  // Rank 0 loads or builds the TSB; the other ranks receive it, so it is built once and is
  // identical everywhere.
  void setup_bank();

  void load_or_build_bank();

  void setup_student();

  void setup_data();

  // teacher.cache: opens the cache and refuses one made for another run.
  void open_cache();

  // teacher.cache: the cached embeddings of a batch's views (view epoch mod K), on the device.
  torch::Tensor cached_keys(const data::Batch& batch) const;
  torch::Tensor cached_rows(std::int64_t which, const torch::Tensor& indices) const;

  // ---- checkpoints ----

  std::map<std::string, std::string> identity() const;

  Checkpoint make_checkpoint() const;

  // What a rank holds that must equal every other rank's: sum, sum of squares and a
  // position-weighted sum (float64) of the trained parameters and of the method's state.
  // BatchNorm statistics are per rank (as in the reference) and not compared.
  torch::Tensor fingerprint() const;

  // Every rank calls it at the same step. Never writes a checkpoint holding a NaN or Inf;
  // in a multi-process run, checks first that all ranks hold the same parameters and bank.
  void save(bool periodic);

  void resume_from(const std::string& path);

  // Resumes from `requested`, else from the run directory's last.ckpt when there is one
  // (the checkpoint rank 0 chose, on every rank); starts every rank from rank 0's weights;
  // writes config.yaml, tsb.safetensors and opens metrics.jsonl (rank 0).
  void resume_or_start(const std::string& requested);
  void log_start() const;  // the start-up lines: what runs where, and how

  // ---- the step ----

  // Forward both models on x, the loss, and backward; `keys` gets the teacher's normalised
  // embeddings for the method's update after the step's last micro-batch: `cached` when
  // defined (teacher.cache; the teacher does not run), else the teacher's forward on x. Per-step checks
  // (finite == nullptr): the loss is read on the host first and a non-finite one returns
  // false with nothing changed. Deferred (finite != nullptr): no host read; *finite gets the
  // loss's finiteness as a 0-dim bool on the device and backward always runs.
  bool forward_backward(const torch::Tensor& x, distill::LossParts& parts, torch::Tensor& keys, Phases* phases,
                        torch::Tensor* finite = nullptr, const torch::Tensor& cached = {});

  // The method's update (VSB / queue) with the keys of the whole global batch, in the order
  // rank 0's micro-batches, rank 1's, ..., the same on every rank; `apply` as in
  // Method::update.
  void update_method(const std::vector<torch::Tensor>& keys, const std::vector<torch::Tensor>& classes,
                     const torch::Tensor& apply = {});

  // Unscales (fp16), clips and steps, on gradients already averaged over ranks
  // (grad_sync->finish()). Per-step checks (apply == nullptr): false when an fp16 gradient
  // overflowed (the step is skipped, as GradScaler does). Deferred: *apply (0-dim bool on
  // the device) is and-ed with "no overflow and a finite gradient norm" and the step is
  // applied only where it holds; returns true.
  bool optimizer_step(double lr, torch::Tensor* grad_norm, torch::Tensor* apply = nullptr);

  // BatchNorm's running statistics (every buffer of the student and the head) as they were
  // before the step's first forward: a skipped step puts them back, so it leaves no trace.
  // restore_buffers(keep): deferred checks, the step's values stay where `keep` (0-dim bool
  // on the device) holds; without it they are put back unconditionally.
  void save_buffers();
  void restore_buffers(const torch::Tensor& keep = {});
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_buffers;  // (buffer, its copy)

  // Deferred checks: count a step as having a non-finite loss, on the device, unless
  // `loss_finite` holds.
  void count_nonfinite(const torch::Tensor& loss_finite);
  // Deferred checks: read the counts (one synchronisation), warn about skipped steps, and
  // stop the run as the per-step check does once train.max_nonfinite were in a row.
  void check_nonfinite();
  // The error that stops a run after train.max_nonfinite skipped steps in a row.
  Error nonfinite_stop() const;
  // Deferred checks on CUDA: keep a pinned batch until its copy to the device is done.
  void hold_until_copied(const torch::Tensor& pinned);

  // A batch to the student's and teacher's input; `photometric`: Batch::photometric.
  torch::Tensor model_input(const torch::Tensor& images, const torch::Tensor& photometric = {}) const;

  // ---- the loop: Trainer::run's parts (trainer.cpp) ----

  void start_run();  // the clocks, the log interval and the device-side non-finite counts
  // One optimiser step: its micro-batches (accumulate), the gradients averaged over ranks,
  // and the step applied or skipped (apply_deferred / apply_checked, by train.nonfinite_check).
  // `host_reads`: the step is one where the host reads from the device anyway (log,
  // checkpoint, epoch end), where deferred checks agree on stop signals. Returns the stop
  // signal the ranks agreed on (0: none).
  int train_step(double lr, bool host_reads);
  // Forward and backward of each micro-batch; the keys (and LGKA classes) for the bank.
  // Per-step checks: false at the first non-finite loss (the remaining micro-batches are
  // still taken from the loader). Deferred: `apply` gets "every loss was finite", on the device.
  bool accumulate(std::vector<torch::Tensor>& keys, std::vector<torch::Tensor>& classes, torch::Tensor& apply);
  // Deferred checks: the ranks agree on `apply` on the device; the optimiser step and the
  // bank update take effect only where it holds.
  int apply_deferred(double lr, torch::Tensor apply, const std::vector<torch::Tensor>& keys,
                     const std::vector<torch::Tensor>& classes, bool host_reads);
  // Per-step checks: a finite step updates the bank and steps; a non-finite one is skipped
  // with its BatchNorm statistics put back, and train.max_nonfinite in a row stop the run.
  int apply_checked(double lr, bool finite, const std::vector<torch::Tensor>& keys,
                    const std::vector<torch::Tensor>& classes);
  // After a step: the log line and metrics.jsonl at log steps, the terminal line.
  void report_step(double lr, bool log_now);
  void log_step(double lr, double eta);
  // The epoch shown in log lines and written to metrics.jsonl: 1-based, the one the last
  // optimiser step belongs to ("epoch 1/2" for steps 1 .. steps_per_epoch).
  std::int64_t shown_epoch() const;
  bool val_step_due() const;  // train.val_every_steps
  // Zero-shot validation, logged; its time kept out of the images/s of the log interval.
  void validate_now();
  // SIGINT / SIGTERM: a checkpoint, and the exit code 128 + sig.
  int stop_run(int sig);
  // The end of the last epoch: student.pth (rank 0) and the last records.
  void finish_run();

  // ---- validation ----

  // Zero-shot top-1 (%) through the TSB of the student (s = norm(head(student(x)))) and of
  // the teacher, on the validation set with the eval view.
  std::pair<double, double> validate();

  // ---- output ----

  void clear_progress() { status.clear(); }
};

}  // namespace detail
}  // namespace lgd::engine
