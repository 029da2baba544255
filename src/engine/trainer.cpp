#include "lgd/engine/trainer.h"

#include "stop_signals.h"
#include "trainer_state.h"

#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>
#include <thread>

#include "lgd/config/run_config.h"
#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/core/logging.h"
#include "lgd/core/progress.h"
#include "lgd/core/torch_compat.h"
#include "lgd/core/version.h"
#include "lgd/data/pipeline.h"
#include "lgd/dist/launch.h"
#include "lgd/dist/process_group.h"
#include "lgd/distill/collective.h"
#include "lgd/distill/method.h"
#include "lgd/distill/teacher.h"
#include "lgd/engine/checkpoint.h"
#include "lgd/engine/metrics.h"
#include "lgd/engine/schedule.h"
#include "lgd/engine/sgd.h"
#include "lgd/export/weights_io.h"
#include "lgd/models/state_dict.h"
#include "lgd/models/student.h"
#include "lgd/text/text_bank.h"

namespace lgd::engine {
namespace fs = std::filesystem;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

torch::Tensor l2_normalize(const torch::Tensor& x) {
  return x / x.norm(2, 1, true).clamp_min(1e-12);
}

// The seed of the global generator for one optimiser step (stochastic depth, dropout), so
// that a resumed run draws what an uninterrupted one draws.
std::uint64_t step_seed(std::uint64_t seed, std::int64_t step, std::int64_t rank) {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(step) * 0xBF58476D1CE4E5B9ULL +
                    static_cast<std::uint64_t>(rank) * 0x94D049BB133111EBULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFFULL;
}


}  // namespace

namespace detail {

bool TrainerState::forward_backward(const torch::Tensor& x, distill::LossParts& parts, torch::Tensor& keys, Phases* phases,
                                    torch::Tensor* finite, const torch::Tensor& cached) {
  auto mark = [&](double& slot) {
    if (!phases) return;
    if (cuda) torch::cuda::synchronize(device.index());
    const auto now = Clock::now();
    slot += std::chrono::duration<double>(now - phases->last).count();
    phases->last = now;
  };
  torch::Tensor t;
  std::optional<c10::Event> teacher_done;
  if (cached.defined()) {
    t = cached;
  } else {
    torch::NoGradGuard no_grad;
    if (teacher_stream) {
      // teacher.overlap: the teacher's stream starts where the training stream is (the batch
      // is ready there) and runs the encoder while the student's forward is queued on the
      // training stream, which waits for it before the loss. record_stream tells the caching
      // allocator that the batch is read on the teacher's stream and the embeddings on the
      // training stream, so neither block is reused before those reads are done.
      const auto training = c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA).getStream(device);
      c10::Event ready(c10::DeviceType::CUDA);
      ready.record(training);
      teacher_stream->wait(ready);
      c10::StreamGuard on_teacher_stream(*teacher_stream);
      x.record_stream(*teacher_stream);
      t = l2_normalize(teacher->encode_images(x).to(torch::kFloat32));
      t.record_stream(training);
      teacher_done.emplace(c10::DeviceType::CUDA);
      teacher_done->record(*teacher_stream);
    } else {
      t = l2_normalize(teacher->encode_images(x).to(torch::kFloat32));
    }
  }
  if (phases) mark(phases->teacher);
  torch::Tensor s;
  {
    compat::CudaAutocast ac(autocast, amp_dtype);
    s = head->forward(student->features(x));
  }
  s = l2_normalize(s.to(torch::kFloat32));
  if (teacher_done) c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA).getStream(device).wait(*teacher_done);
  parts = method->loss(s, t);
  if (finite) {
    *finite = parts.loss.isfinite();
  } else if (!parts.loss.isfinite().item<bool>()) {
    // One host synchronisation per micro-batch. It also guarantees that the non-blocking
    // copy of the pinned batch has completed before the loader may reuse that buffer.
    return false;
  }
  auto loss = parts.loss / static_cast<double>(cfg.optim.accumulate);
  if (scaler) loss = loss * scaler->scale.squeeze();
  loss.backward();
  if (phases) mark(phases->student);
  keys = t;
  return true;
}

void TrainerState::update_method(const std::vector<torch::Tensor>& keys, const std::vector<torch::Tensor>& classes,
                                 const torch::Tensor& apply) {
  if (keys.empty()) return;
  const auto k = keys.size() == 1 ? keys[0] : torch::cat(keys);
  torch::Tensor c;
  if (classes.size() == keys.size()) c = classes.size() == 1 ? classes[0] : torch::cat(classes);
  method->update(collective->all_gather_cat(k), c.defined() ? collective->all_gather_cat(c) : torch::Tensor(),
                 apply);
}

bool TrainerState::optimizer_step(double lr, torch::Tensor* grad_norm, torch::Tensor* apply) {
  auto grads = optimizer->grads();
  if (scaler) {
    const auto found_inf = scaler->unscale_and_update(grads);
    if (apply)
      *apply = apply->logical_and(found_inf.squeeze() == 0);
    else if (found_inf.item<float>() > 0)
      return false;
  }
  torch::Tensor norm;
  if (cfg.optim.clip_grad > 0 || grad_norm || apply) norm = optimizer->clip_grad_norm(cfg.optim.clip_grad);
  if (apply) {
    // A NaN or Inf anywhere in the gradients makes their norm non-finite.
    *apply = apply->logical_and(norm.isfinite());
    norm = torch::where(*apply, norm, torch::zeros_like(norm));
  }
  if (grad_norm) *grad_norm = norm;
  optimizer->step(lr, apply ? *apply : torch::Tensor());
  return true;
}

void TrainerState::save_buffers() {
  torch::NoGradGuard no_grad;
  saved_buffers.clear();
  for (const auto& b : student->buffers()) saved_buffers.emplace_back(b, b.clone());
  if (!head.is_empty())
    for (const auto& b : head->buffers()) saved_buffers.emplace_back(b, b.clone());
}

void TrainerState::restore_buffers(const torch::Tensor& keep) {
  torch::NoGradGuard no_grad;
  for (auto& [buffer, copy] : saved_buffers)
    buffer.copy_(keep.defined() ? torch::where(keep, buffer, copy) : copy);
}

void TrainerState::count_nonfinite(const torch::Tensor& loss_finite) {
  const auto skipped = loss_finite.logical_not().to(torch::kInt64);
  nonfinite_total_dev.add_(skipped);
  nonfinite_run_dev.add_(1).mul_(skipped);
}

void TrainerState::check_nonfinite() {
  if (!deferred) return;
  const auto counts = torch::stack({nonfinite_total_dev, nonfinite_run_dev}).cpu();
  const std::int64_t total = counts[0].item<std::int64_t>(), run = counts[1].item<std::int64_t>();
  if (total > nonfinite_total) {
    clear_progress();
    spdlog::warn("[train] up to step {}: {} step(s) with a NaN or Inf loss skipped ({} in a row now, {} in all)",
                 global_step, total - nonfinite_total, run, total);
  }
  nonfinite_total = total;
  nonfinite_run = run;
  if (run >= cfg.train.max_nonfinite) throw nonfinite_stop();
}

Error TrainerState::nonfinite_stop() const {
  return Error("the loss was NaN or Inf for " + std::to_string(nonfinite_run) +
               " steps in a row (train.max_nonfinite) up to step " + std::to_string(global_step) +
               "; stopped without writing a checkpoint (check optim.lr and the method's temperatures; the last "
               "checkpoint is in " + checkpoints->dir() + ")");
}

void TrainerState::hold_until_copied(const torch::Tensor& pinned) {
  if (!cuda || !pinned.is_pinned()) return;
  c10::Event copied(c10::DeviceType::CUDA);
  copied.record(c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA).getStream(device));
  in_flight.emplace_back(pinned, std::move(copied));
  // The device runs at most about one step behind: waiting for the copy two batches back
  // costs nothing in the steady state and bounds the pinned memory held.
  while (in_flight.size() > 2) {
    while (!in_flight.front().second.query()) std::this_thread::yield();
    in_flight.pop_front();
  }
}

torch::Tensor TrainerState::model_input(const torch::Tensor& images, const torch::Tensor& photometric) const {
  const auto& m = teacher->manifest().image;
  return data::to_model_input(images, m.mean, m.std, device, channels_last, photometric, view);
}

std::pair<double, double> TrainerState::validate() {
  config::DataSection vd = cfg.data;
  if (!cfg.data.val_root.empty()) vd.root = cfg.data.val_root;
  vd.split = cfg.data.val_split;
  std::shared_ptr<const data::Dataset> val = data::open_dataset(data::dataset_options(vd));
  if (const std::int64_t n = val->size(), limit = cfg.train.val_limit; limit > 0 && limit < n) {
    std::vector<std::int64_t> every(static_cast<std::size_t>(limit));
    for (std::int64_t i = 0; i < limit; ++i) every[static_cast<std::size_t>(i)] = i * n / limit;
    val = data::subset(std::move(val), std::move(every));
  }
  if (val->num_classes() != tsb.weights.size(1))
    throw ConfigError(where("data.val_root") + ": validation set " + vd.root + " has " +
                      std::to_string(val->num_classes()) + " classes, the TSB " +
                      std::to_string(tsb.weights.size(1)) +
                      " (zero-shot validation needs the same classes in the same order)");
  auto lo = data::loader_options(cfg, false);
  lo.rank = collective->rank();
  lo.world_size = collective->world_size();
  lo.even_shards = false;  // every validation image counted once over the ranks
  data::Loader vl(val, data::Transform(data::view_options(vd, "eval")), lo);
  vl.start_epoch(0);
  torch::NoGradGuard no_grad;
  student->eval();
  head->eval();
  const bool with_teacher = !teacher_val_top1.has_value();
  auto correct_s = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  auto correct_t = correct_s.clone();
  std::int64_t seen = 0, done = 0;
  clear_progress();
  // Rank 0 shows how far the validation is (a progress line on a terminal, else a log line
  // at every tenth): on a large validation set it can take minutes.
  std::optional<Progress> progress;
  if (rank() == 0) progress.emplace("[train] zero-shot validation batches", vl.batches_per_epoch());
  while (auto batch = vl.next()) {
    if (progress) progress->update(++done);
    const auto x = model_input(batch->images);
    const auto labels = batch->labels.to(device);
    torch::Tensor s;
    {
      compat::CudaAutocast ac(autocast, amp_dtype);
      s = head->forward(student->features(x));
    }
    s = l2_normalize(s.to(torch::kFloat32));
    correct_s += (s.matmul(tsb_device).argmax(1) == labels).sum();
    if (with_teacher) {
      const auto t = l2_normalize(teacher->encode_images(x).to(torch::kFloat32));
      correct_t += (t.matmul(tsb_device).argmax(1) == labels).sum();
    }
    seen += batch->labels.size(0);
  }
  if (progress) progress->finish();
  student->train();
  head->train();
  auto counts = torch::stack({correct_s.cpu(), correct_t.cpu(), torch::tensor(seen, torch::kInt64)});
  collective->all_reduce(counts, distill::Reduce::kSum);
  const double n = static_cast<double>(std::max<std::int64_t>(counts[2].item<std::int64_t>(), 1));
  const double top1_s = 100.0 * static_cast<double>(counts[0].item<std::int64_t>()) / n;
  if (with_teacher) teacher_val_top1 = 100.0 * static_cast<double>(counts[1].item<std::int64_t>()) / n;
  return {top1_s, *teacher_val_top1};
}

}  // namespace detail

using detail::Phases;
using detail::StopSignals;

Trainer::Trainer(const TrainArgs& args) : impl_(std::make_unique<detail::TrainerState>()) {
  auto& m = *impl_;
  m.config_path = args.config;
  m.loaded = config::load_run_config(args.config, args.overrides);
  const auto& cfg = m.cfg;
  // Whatever can be checked without loading anything fails before the run directory exists.
  m.require_key("teacher.bundle", cfg.teacher.bundle, "a teacher bundle directory");
  m.require_key("data.root", cfg.data.root, "the training set's location");
  if (!args.resume.empty() && !fs::is_regular_file(args.resume))
    throw IoError(args.resume + ": no such checkpoint (--resume)");
  m.setup_launch();
  m.run_dir = (fs::path(cfg.run.output_dir) / cfg.run.name).string();
  fs::create_directories(fs::path(m.run_dir) / "checkpoints");
  // One run per run directory: rank 0 holds its lock until the process ends.
  if (m.rank() == 0) {
    m.run_dir_lock = std::make_unique<DirectoryLock>(m.run_dir, "the run directory");
    // With the lock held, no live process is writing into the directory.
    for (const auto& dir : {fs::path(m.run_dir), fs::path(m.run_dir) / "checkpoints"})
      for (const auto& path : remove_interrupted_writes(dir.string()))
        spdlog::info("[train] removed {}, left by an interrupted write", path);
  }
  if (m.rank() == 0) {
    add_log_file((fs::path(m.run_dir) / "train.log").string());
  } else if (spdlog::get_level() < spdlog::level::warn) {
    spdlog::set_level(spdlog::level::warn);  // rank 0 reports; the others only warn and fail
  }
  spdlog::info("[train] lgd {} run directory {}", version(), m.run_dir);

  m.setup_device();
  m.setup_process_group();
  m.setup_teacher();
  m.setup_bank();
  m.setup_student();
  m.setup_data();

  m.checkpoints = std::make_unique<CheckpointDir>((fs::path(m.run_dir) / "checkpoints").string(),
                                                  static_cast<int>(cfg.train.keep_checkpoints));
  std::string resume = args.resume;
  if (resume.empty()) {
    if (auto last = m.checkpoints->last()) resume = *last;
  }
  // Every rank resumes from the checkpoint rank 0 chose (run directories are on a shared
  // file system in a multi-node run).
  resume = m.collective->broadcast_string(resume, 0);
  if (!resume.empty()) {
    if (!fs::is_regular_file(resume))
      throw IoError(resume + ": rank " + std::to_string(m.rank()) + " cannot read the checkpoint rank 0 resumes "
                    "from (the run directory must be on a file system every node shares)");
    m.resume_from(resume);
  }
  if (m.multi()) {
    // Parameters and buffers start from rank 0's, as DistributedDataParallel does.
    torch::NoGradGuard no_grad;
    for (auto& [k, v] : models::state_dict(*m.student)) m.collective->broadcast(v, 0);
    for (auto& [k, v] : models::state_dict(*m.head)) m.collective->broadcast(v, 0);
  }
  if (m.rank() == 0) {
    write_file_atomic((fs::path(m.run_dir) / "config.yaml").string(), config::to_yaml(cfg));
    // The TSB the run distils against: `lgd eval --protocol zero-shot` finds it next to the
    // run's checkpoints.
    text::save_text_bank((fs::path(m.run_dir) / "tsb.safetensors").string(), m.tsb);
    // Records after the step the run starts from are logged again: the old ones are dropped
    // (all of them when it starts from scratch in a used directory).
    m.metrics = std::make_unique<MetricsLog>(m.run_dir, m.global_step);
  }
  m.tty = ::isatty(STDERR_FILENO) == 1;
  // Decided before the start-up lines, which report it.
  m.deferred = cfg.train.nonfinite_check == "deferred" || (cfg.train.nonfinite_check == "auto" && m.cuda);

  spdlog::info(
      "[train] {} on {} ({} threads{}); teacher {} (D = {}, {} px{}); method {} over {} classes; "
      "{} images, {} epochs x {} steps of {} images; peak lr {:.4g}",
      cfg.student.arch, m.cuda ? "cuda" : "cpu", m.threads,
      m.cuda ? (m.autocast ? ", autocast " + cfg.train.amp : std::string(", float32")) : "",
      m.teacher->manifest().name, m.teacher->manifest().embed_dim, cfg.data.image_size,
      std::string(m.teacher->image_encoder_frozen() ? ", frozen graph" : "") +
          (m.teacher_stream ? ", own CUDA stream" : ""),
      cfg.method.name, m.tsb.weights.size(1), m.dataset->size(), cfg.optim.epochs, m.steps_per_epoch,
      m.global_batch, m.schedule->peak());
  spdlog::info("[train] view {}{}; non-finite losses checked {}", cfg.data.augment,
               m.view.view != data::View::kMocoV2 ? std::string()
               : m.view.photometric_on_device    ? std::string(", colour jitter / grayscale / blur on the device")
                                                 : std::string(", colour jitter / grayscale / blur in the loader"),
               m.deferred ? "on the device, read at log and checkpoint steps" : "after every micro-batch");
}

Trainer::~Trainer() = default;

const distill::Teacher& Trainer::teacher() const { return *impl_->teacher; }
const std::string& Trainer::run_dir() const { return impl_->run_dir; }

int Trainer::run() {
  auto& m = *impl_;
  const auto& cfg = m.cfg;
  StopSignals signals;
  if (m.deferred) {
    const auto o = torch::TensorOptions().dtype(torch::kInt64).device(m.device);
    m.nonfinite_total_dev = torch::full({}, m.nonfinite_total, o);
    m.nonfinite_run_dev = torch::full({}, m.nonfinite_run, o);
  }
  const auto started = Clock::now();
  const std::int64_t first_step = m.global_step;

  // Metrics accumulated on the device between log lines (no host synchronisation per step).
  torch::Tensor sum_loss, sum_vis, sum_tex, sum_norm, micro_count;
  std::int64_t logged_micro = 0, logged_steps = 0, logged_images = 0, logged_bad = 0;
  double data_wait = 0;
  auto log_started = Clock::now();
  auto last_progress = Clock::now() - std::chrono::seconds(1);

  auto stop = [&](int sig) {
    m.clear_progress();
    m.save(false);
    if (m.rank() == 0)
      spdlog::warn("[train] {} at step {}: checkpoint saved to {}/last.ckpt; run the same command to resume",
                   sig == SIGINT ? "SIGINT" : "SIGTERM", m.global_step, m.checkpoints->dir());
    if (m.metrics) m.metrics->flush();
    return 128 + sig;
  };
  // Zero-shot validation at epoch ends (train.val_every) and every train.val_every_steps steps;
  // its time is kept out of the images/s of the log line it falls in.
  auto val_step_due = [&] {
    return cfg.train.val_every_steps > 0 && m.global_step % cfg.train.val_every_steps == 0;
  };
  // The epoch shown in log lines and written to metrics.jsonl: 1-based, the one the last
  // optimiser step belongs to ("epoch 1/2" for steps 1 .. steps_per_epoch).
  auto shown_epoch = [&] {
    return std::max<std::int64_t>(1, (m.global_step + m.steps_per_epoch - 1) / m.steps_per_epoch);
  };
  auto validate_now = [&] {
    const auto t0 = Clock::now();
    const auto [student_top1, teacher_top1] = m.validate();
    if (m.metrics)
      m.metrics->write("val", m.global_step, shown_epoch(), {{"student_top1", student_top1}, {"teacher_top1", teacher_top1}});
    m.clear_progress();
    spdlog::info("[train] epoch {} step {} validation: zero-shot top-1 student {:.2f}%, teacher {:.2f}%",
                 shown_epoch(), m.global_step, student_top1, teacher_top1);
    log_started += Clock::now() - t0;
  };
  const std::int64_t accumulate = cfg.optim.accumulate;

  while (m.epoch < cfg.optim.epochs && m.global_step < m.total_steps) {
    m.loader->start_epoch(m.epoch, m.step_in_epoch * accumulate);
    while (m.step_in_epoch < m.steps_per_epoch && m.global_step < m.total_steps) {
      // One process stops at once; several stop together at the step the flags agree on.
      if (!m.multi())
        if (int sig = StopSignals::pending()) return stop(sig);
      const double lr = m.schedule->lr(m.global_step);
      bool finite = true;
      torch::Tensor apply;  // deferred checks: "every micro-batch's loss was finite", on the device
      std::vector<torch::Tensor> keys, classes;
      m.save_buffers();
      for (std::int64_t micro = 0; micro < accumulate; ++micro) {
        // The generator (stochastic depth, dropout) follows the micro-batch's shard, so
        // N ranks x accumulation A draw what 1 rank x N*A draws.
        torch::manual_seed(step_seed(static_cast<std::uint64_t>(cfg.run.seed), m.global_step,
                                     m.rank() * accumulate + micro));
        const auto wait_started = Clock::now();
        auto batch = m.loader->next();
        data_wait += seconds_since(wait_started);
        if (!batch) throw Error("internal: the loader ended an epoch early");
        logged_bad += batch->bad;
        logged_images += batch->images.size(0) * m.collective->world_size();
        if (!finite) continue;
        if (micro == accumulate - 1) m.grad_sync->arm();
        distill::LossParts parts;
        torch::Tensor t, micro_finite;
        const auto x = m.model_input(batch->images, batch->photometric);
        if (m.deferred) m.hold_until_copied(batch->images);
        const auto cached = m.cache ? m.cached_keys(*batch) : torch::Tensor();
        if (!m.forward_backward(x, parts, t, nullptr, m.deferred ? &micro_finite : nullptr, cached)) {
          finite = false;
          continue;
        }
        keys.push_back(t);
        if (parts.classes.defined()) classes.push_back(parts.classes);
        // Deferred, a non-finite micro-batch adds nothing to the logged sums.
        const auto add = [&](torch::Tensor& acc, const torch::Tensor& v) {
          if (!v.defined()) return;
          auto value = v.detach();
          if (micro_finite.defined()) value = torch::where(micro_finite, value, torch::zeros_like(value));
          acc = acc.defined() ? acc + value : value.clone();
        };
        add(sum_loss, parts.loss);
        add(sum_vis, parts.loss_vis);
        add(sum_tex, parts.loss_tex);
        if (micro_finite.defined()) {
          add(micro_count, torch::ones({}, torch::TensorOptions().dtype(torch::kFloat64).device(m.device)));
          apply = apply.defined() ? apply.logical_and(micro_finite) : micro_finite;
        } else {
          ++logged_micro;
        }
      }
      // Gradients averaged over ranks (every rank, every step, whatever its loss was).
      m.grad_sync->finish();
      int stop_signal = 0;
      const bool log_now = m.global_step + 1 == m.total_steps || (m.global_step + 1) % cfg.train.log_every == 0;
      const bool save_now = cfg.train.checkpoint_every > 0 && (m.global_step + 1) % cfg.train.checkpoint_every == 0;
      if (m.deferred) {
        // The ranks agree on `apply` on the device (no host read); the optimiser step and the
        // bank update take effect only where it holds. Stop signals are agreed on at the
        // steps where the host reads anyway (log, checkpoint and epoch ends).
        if (m.multi()) {
          auto bad = apply.logical_not().to(torch::kFloat32);
          m.collective->all_reduce(bad, distill::Reduce::kMax);
          apply = bad == 0;
        }
        // As with per-step checks, a float16 loss-scale overflow skips the optimiser step only:
        // the bank still takes the keys, and it is not counted against train.max_nonfinite.
        const auto loss_finite = apply;
        m.restore_buffers(loss_finite);
        torch::Tensor norm;
        m.optimizer_step(lr, &norm, &apply);
        m.update_method(keys, classes, loss_finite);
        m.count_nonfinite(loss_finite);
        sum_norm = sum_norm.defined() ? sum_norm + norm : norm.clone();
        if (m.multi() && (log_now || save_now || m.step_in_epoch + 1 == m.steps_per_epoch)) {
          auto flag = torch::tensor({static_cast<double>(StopSignals::pending())}, torch::kFloat64);
          m.collective->all_reduce(flag, distill::Reduce::kMax);
          stop_signal = static_cast<int>(flag[0].item<double>());
        }
      } else {
        // One small all-reduce: did any rank see a non-finite loss or a stop signal?
        if (m.multi()) {
          auto flags = torch::tensor({finite ? 0.0 : 1.0, static_cast<double>(StopSignals::pending())}, torch::kFloat64);
          m.collective->all_reduce(flags, distill::Reduce::kMax);
          finite = flags[0].item<double>() == 0;
          stop_signal = static_cast<int>(flags[1].item<double>());
        }
        if (finite) {
          m.update_method(keys, classes);
          torch::Tensor norm;
          m.optimizer_step(lr, &norm);
          if (norm.defined()) sum_norm = sum_norm.defined() ? sum_norm + norm : norm.clone();
          m.nonfinite_run = 0;
        } else {
          m.restore_buffers();
          ++m.nonfinite_total;
          ++m.nonfinite_run;
          m.clear_progress();
          spdlog::warn("[train] step {}: the loss is NaN or Inf; step skipped ({} in a row, {} in all)",
                       m.global_step, m.nonfinite_run, m.nonfinite_total);
          if (m.nonfinite_run >= cfg.train.max_nonfinite) throw m.nonfinite_stop();
        }
      }
      m.optimizer->zero_grad();
      ++m.global_step;
      ++m.step_in_epoch;
      ++logged_steps;

      if (log_now) m.check_nonfinite();
      if (log_now || (m.tty && seconds_since(last_progress) > 0.25)) {
        const double elapsed = seconds_since(started);
        const double per_step = elapsed / static_cast<double>(m.global_step - first_step);
        const double eta = per_step * static_cast<double>(m.total_steps - m.global_step);
        if (log_now) {
          if (micro_count.defined()) {  // deferred checks: the finite micro-batches, counted on the device
            logged_micro = static_cast<std::int64_t>(micro_count.item<double>());
            micro_count = torch::Tensor();
          }
          const double interval = seconds_since(log_started);
          if (m.multi()) {
            // Losses averaged over every rank's micro-batches.
            auto value = [](const torch::Tensor& t) { return t.defined() ? t.item<double>() : 0.0; };
            auto sums = torch::tensor({value(sum_loss), value(sum_vis), value(sum_tex),
                                       static_cast<double>(logged_micro), sum_vis.defined() ? 1.0 : 0.0,
                                       sum_tex.defined() ? 1.0 : 0.0}, torch::kFloat64);
            m.collective->all_reduce(sums, distill::Reduce::kSum);
            auto scalar = [](double v) { return torch::tensor(v, torch::kFloat64); };
            sum_loss = scalar(sums[0].item<double>());
            sum_vis = sums[4].item<double>() > 0 ? scalar(sums[1].item<double>()) : torch::Tensor();
            sum_tex = sums[5].item<double>() > 0 ? scalar(sums[2].item<double>()) : torch::Tensor();
            logged_micro = static_cast<std::int64_t>(sums[3].item<double>());
          }
          // NaN where no micro-batch of the interval was finite (all skipped), in both modes.
          const double micro = static_cast<double>(logged_micro);
          auto mean = [&](const torch::Tensor& t, double n) {
            return t.defined() && n > 0 ? t.item<double>() / n : std::nan("");
          };
          const double loss = mean(sum_loss, micro), vis = mean(sum_vis, micro), tex = mean(sum_tex, micro);
          const double gnorm = mean(sum_norm, static_cast<double>(std::max<std::int64_t>(logged_steps, 1)));
          const double ips = static_cast<double>(logged_images) / interval;
          Scalars s{{"loss", loss}};
          if (cfg.method.name == "lgd") {
            s.emplace_back("loss_vis", vis);
            s.emplace_back("loss_tex", tex);
          } else {
            s.emplace_back("loss_seed", vis);
          }
          const Scalars rest{{"lr", lr},
                    {"images_per_s", ips},
                    {"data_wait", data_wait / interval},
                    {"bad_samples", static_cast<double>(logged_bad)},
                    {"nonfinite_steps", static_cast<double>(m.nonfinite_total)},
                    {"grad_norm", gnorm}};
          s.insert(s.end(), rest.begin(), rest.end());
          for (auto& [k, v] : m.method->metrics()) s.emplace_back(k, v.item<double>());
          if (m.metrics) m.metrics->write("train", m.global_step, shown_epoch(), s);
          m.clear_progress();
          spdlog::info("[train] epoch {}/{} step {}/{} loss {:.4f} lr {:.4g} {:.1f} img/s data {:.0f}% ETA {}",
                       shown_epoch(), cfg.optim.epochs, m.global_step, m.total_steps, loss, lr, ips,
                       100.0 * data_wait / interval, format_duration(eta));
          sum_loss = sum_vis = sum_tex = sum_norm = torch::Tensor();
          logged_micro = logged_steps = logged_images = logged_bad = 0;
          data_wait = 0;
          log_started = Clock::now();
        }
        if (m.tty) {
          std::fprintf(stderr, "\r\033[Kepoch %lld/%lld  step %lld/%lld  %.1f%%  ETA %s",
                       static_cast<long long>(shown_epoch()), static_cast<long long>(cfg.optim.epochs),
                       static_cast<long long>(m.global_step), static_cast<long long>(m.total_steps),
                       100.0 * static_cast<double>(m.global_step) / static_cast<double>(m.total_steps),
                       format_duration(eta).c_str());
          std::fflush(stderr);
          m.progress_shown = true;
          last_progress = Clock::now();
        }
      }
      // Validation before the checkpoint of the same step: a run killed in between resumes
      // from the checkpoint before and validates again, so no record is lost.
      if (val_step_due() && m.step_in_epoch < m.steps_per_epoch) validate_now();
      if (cfg.train.checkpoint_every > 0 && m.global_step % cfg.train.checkpoint_every == 0 &&
          m.step_in_epoch < m.steps_per_epoch)
        m.save(true);
      if (stop_signal && m.step_in_epoch < m.steps_per_epoch) return stop(stop_signal);
    }
    if (m.step_in_epoch < m.steps_per_epoch) {  // train.max_steps reached inside an epoch
      m.save(false);
      break;
    }
    // Epoch end: the position moves to the next epoch before the checkpoint.
    ++m.epoch;
    m.step_in_epoch = 0;
    if ((cfg.train.val_every > 0 && m.epoch % cfg.train.val_every == 0) || val_step_due()) validate_now();
    m.save(true);
  }
  m.clear_progress();
  if (m.collective->rank() == 0) {
    const auto out = (fs::path(m.run_dir) / "student.pth").string();
    exporting::write_weights(out, exporting::export_tensors(*m.student, nullptr),
                             exporting::WeightsFormat::kTorchvision, {});
    spdlog::info("[train] done: {} steps in {}; student weights in {} (torchvision keys)", m.global_step,
                 format_duration(seconds_since(started)), out);
  }
  m.collective->barrier();
  if (m.metrics) m.metrics->flush();
  return 0;
}

BenchTrainResult bench_train(const BenchTrainOptions& options) {
  if (!options.trace.empty()) {  // before the steps, not after them
    const auto folder = std::filesystem::absolute(options.trace).parent_path();
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec))
      throw IoError(options.trace + ": no folder " + folder.string() + " to write the trace in (--trace)");
  }
  detail::TrainerState m;
  m.config_path = options.args.config;
  m.loaded = config::load_run_config(options.args.config, options.args.overrides);
  m.threads = m.cfg.run.threads > 0 ? static_cast<int>(m.cfg.run.threads)
                                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  m.setup_device();
  m.setup_teacher();
  m.setup_bank();
  m.setup_student();
  const auto& cfg = m.cfg;
  const std::int64_t B = cfg.data.batch_size, S = cfg.data.image_size;
  auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(cfg.run.seed));
  const auto images = at::randint(0, 256, {B, S, S, 3}, gen, torch::TensorOptions().dtype(torch::kLong))
                          .to(torch::kUInt8);
  // The training view's colour work, when data.photometric puts it on the device, is part of
  // the step: each sample's parameters drawn as the loader draws them.
  torch::Tensor photometric;
  m.view = data::view_options(cfg.data);
  if (m.view.view == data::View::kMocoV2 && data::photometric_on_device(cfg.data, m.device)) {
    m.view.photometric_on_device = true;
    photometric = torch::empty({B, data::kPhotometricParams}, torch::kFloat32);
    for (std::int64_t i = 0; i < B; ++i) {
      data::SampleRng rng(static_cast<std::uint64_t>(cfg.run.seed), 0, i);
      data::ViewDraw draw;
      data::draw_photometric(m.view, rng, draw);
      data::photometric_params(draw, photometric.data_ptr<float>() + i * data::kPhotometricParams);
    }
  }
  // teacher.cache: the step takes B cached embeddings (view 0 of images 0..B-1) in place of
  // the teacher's forward, as a training step does; the images only reach the student.
  if (!cfg.teacher.cache.empty()) {
    m.cache = EmbeddingCache::open(cfg.teacher.cache);
    if (m.cache->dim() != m.teacher->manifest().embed_dim)
      throw ConfigError(m.where("teacher.cache") + ": teacher.cache: " + cfg.teacher.cache + " holds embeddings of width " +
                        std::to_string(m.cache->dim()) + ", the teacher " + m.teacher->manifest().name + " embeds in " +
                        std::to_string(m.teacher->manifest().embed_dim));
  }
  ScheduleOptions so;
  so.base_lr = cfg.optim.lr;
  so.global_batch = B;
  CosineSchedule schedule(so);

  auto one_step = [&](Phases* phases) {
    if (phases) phases->last = Clock::now();
    distill::LossParts parts;
    torch::Tensor keys;
    const bool ok = m.forward_backward(m.model_input(images, photometric), parts, keys, phases, nullptr,
                                       m.cache ? m.cache->rows(0, torch::arange(B, torch::kInt64).remainder(m.cache->size())).to(m.device) : torch::Tensor());
    m.grad_sync->finish();
    if (ok) {
      m.update_method({keys}, parts.classes.defined() ? std::vector<torch::Tensor>{parts.classes}
                                                      : std::vector<torch::Tensor>{});
      if (phases) {
        if (m.cuda) torch::cuda::synchronize(m.device.index());
        const auto now = Clock::now();
        phases->update += std::chrono::duration<double>(now - phases->last).count();
        phases->last = now;
      }
      m.optimizer_step(schedule.lr(0), nullptr);
    }
    m.optimizer->zero_grad();
    if (phases) {
      if (m.cuda) torch::cuda::synchronize(m.device.index());
      phases->optimizer += seconds_since(phases->last);
    }
    return ok;
  };
  for (int i = 0; i < options.warmup; ++i) one_step(nullptr);
  if (m.cuda) torch::cuda::synchronize(m.device.index());
  const auto t0 = Clock::now();
  for (int i = 0; i < options.steps; ++i) one_step(nullptr);
  if (m.cuda) torch::cuda::synchronize(m.device.index());
  const double whole = seconds_since(t0);
  Phases phases;
  for (int i = 0; i < options.steps; ++i) one_step(&phases);

  BenchTrainResult r;
  r.device = m.cuda ? "cuda" : "cpu";
  r.arch = cfg.student.arch;
  r.method = cfg.method.name;
  r.teacher = m.teacher->manifest().name;
  r.keys = m.cache ? "cache" : "teacher";
  r.amp = m.cuda && m.autocast ? cfg.train.amp : "off";
  r.photometric = photometric.defined() ? "device" : m.view.view == data::View::kMocoV2 ? "host" : "none";
  r.channels_last = m.channels_last;
  r.batch = B;
  r.image_size = S;
  r.threads = m.threads;
  r.steps = options.steps;
  const double n = std::max(1, options.steps);
  r.step_ms = 1000.0 * whole / n;
  r.images_per_s = static_cast<double>(B) * n / whole;
  r.teacher_ms = 1000.0 * phases.teacher / n;
  r.student_ms = 1000.0 * phases.student / n;
  r.update_ms = 1000.0 * phases.update / n;
  r.optimizer_ms = 1000.0 * phases.optimizer / n;

  if (!options.trace.empty()) {
    std::string trace;
    try {
      compat::OpProfiler profiler(m.cuda);
      for (int i = 0; i < options.trace_steps; ++i) one_step(nullptr);
      if (m.cuda) torch::cuda::synchronize(m.device.index());
      trace = profiler.finish(
          (std::filesystem::temp_directory_path() / ("lgd_trace_" + std::to_string(::getpid()) + ".json")).string());
    } catch (const c10::Error& e) {
      throw Error(options.trace + ": the profiler failed (" + e.what_without_backtrace() + ")");
    }
    if (trace.empty()) throw Error(options.trace + ": the profiler recorded nothing");
    write_file_atomic(options.trace, trace);
  }
  return r;
}

}  // namespace lgd::engine
