#include "lgd/engine/trainer.h"

#include "step_log.h"
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


// ---- the loop: Trainer::run's parts ----

void TrainerState::start_run() {
  if (deferred) {
    const auto o = torch::TensorOptions().dtype(torch::kInt64).device(device);
    nonfinite_total_dev = torch::full({}, nonfinite_total, o);
    nonfinite_run_dev = torch::full({}, nonfinite_run, o);
  }
  run_started = Clock::now();
  run_first_step = global_step;
  step_log = StepLog();
}

std::int64_t TrainerState::shown_epoch() const {
  return std::max<std::int64_t>(1, (global_step + steps_per_epoch - 1) / steps_per_epoch);
}

bool TrainerState::val_step_due() const {
  return cfg.train.val_every_steps > 0 && global_step % cfg.train.val_every_steps == 0;
}

int TrainerState::train_step(double lr, bool host_reads) {
  std::vector<torch::Tensor> keys, classes;
  torch::Tensor apply;
  save_buffers();
  const bool finite = accumulate(keys, classes, apply);
  grad_sync->finish();  // gradients averaged over ranks: every rank, every step, whatever its loss was
  const int stop_signal =
      deferred ? apply_deferred(lr, apply, keys, classes, host_reads) : apply_checked(lr, finite, keys, classes);
  optimizer->zero_grad();
  ++global_step;
  ++step_in_epoch;
  step_log.end_step();
  return stop_signal;
}

bool TrainerState::accumulate(std::vector<torch::Tensor>& keys, std::vector<torch::Tensor>& classes,
                              torch::Tensor& apply) {
  const std::int64_t A = cfg.optim.accumulate;
  bool finite = true;
  for (std::int64_t micro = 0; micro < A; ++micro) {
    // The generator (stochastic depth, dropout) follows the micro-batch's shard, so
    // N ranks x accumulation A draw what 1 rank x N*A draws.
    torch::manual_seed(step_seed(static_cast<std::uint64_t>(cfg.run.seed), global_step, rank() * A + micro));
    const auto wait_started = Clock::now();
    auto batch = loader->next();
    const double waited = seconds_since(wait_started);
    if (!batch) throw Error("internal: the loader ended an epoch early");
    step_log.add_batch(batch->images.size(0) * collective->world_size(), batch->bad, waited);
    if (!finite) continue;
    if (micro == A - 1) grad_sync->arm();
    distill::LossParts parts;
    torch::Tensor t, micro_finite;
    const auto x = model_input(batch->images, batch->photometric);
    if (deferred) hold_until_copied(batch->images);
    const auto cached = cache ? cached_keys(*batch) : torch::Tensor();
    if (!forward_backward(x, parts, t, nullptr, deferred ? &micro_finite : nullptr, cached)) {
      finite = false;
      continue;
    }
    keys.push_back(t);
    if (parts.classes.defined()) classes.push_back(parts.classes);
    step_log.add_losses(parts, micro_finite);  // deferred: a non-finite micro-batch adds nothing
    if (micro_finite.defined()) apply = apply.defined() ? apply.logical_and(micro_finite) : micro_finite;
  }
  return finite;
}

int TrainerState::apply_deferred(double lr, torch::Tensor apply, const std::vector<torch::Tensor>& keys,
                                 const std::vector<torch::Tensor>& classes, bool host_reads) {
  if (multi()) {
    auto bad = apply.logical_not().to(torch::kFloat32);
    collective->all_reduce(bad, distill::Reduce::kMax);
    apply = bad == 0;
  }
  // As with per-step checks, a float16 loss-scale overflow skips the optimiser step only:
  // the bank still takes the keys, and it is not counted against train.max_nonfinite.
  const auto loss_finite = apply;
  restore_buffers(loss_finite);
  torch::Tensor norm;
  optimizer_step(lr, &norm, &apply);
  update_method(keys, classes, loss_finite);
  count_nonfinite(loss_finite);
  step_log.add_grad_norm(norm);
  if (!multi() || !host_reads) return 0;
  auto flag = torch::tensor({static_cast<double>(StopSignals::pending())}, torch::kFloat64);
  collective->all_reduce(flag, distill::Reduce::kMax);
  return static_cast<int>(flag[0].item<double>());
}

int TrainerState::apply_checked(double lr, bool finite, const std::vector<torch::Tensor>& keys,
                                const std::vector<torch::Tensor>& classes) {
  int stop_signal = 0;
  if (multi()) {  // one small all-reduce: did any rank see a non-finite loss or a stop signal?
    auto flags = torch::tensor({finite ? 0.0 : 1.0, static_cast<double>(StopSignals::pending())}, torch::kFloat64);
    collective->all_reduce(flags, distill::Reduce::kMax);
    finite = flags[0].item<double>() == 0;
    stop_signal = static_cast<int>(flags[1].item<double>());
  }
  if (finite) {
    update_method(keys, classes);
    torch::Tensor norm;
    optimizer_step(lr, &norm);
    step_log.add_grad_norm(norm);
    nonfinite_run = 0;
    return stop_signal;
  }
  restore_buffers();
  ++nonfinite_total;
  ++nonfinite_run;
  clear_progress();
  spdlog::warn("[train] step {}: the loss is NaN or Inf; step skipped ({} in a row, {} in all)", global_step,
               nonfinite_run, nonfinite_total);
  if (nonfinite_run >= cfg.train.max_nonfinite) throw nonfinite_stop();
  return stop_signal;
}

void TrainerState::report_step(double lr, bool log_now) {
  if (log_now) check_nonfinite();
  if (!log_now && !status.due()) return;
  const double elapsed = seconds_since(run_started);
  const double eta = elapsed / static_cast<double>(global_step - run_first_step) *
                     static_cast<double>(total_steps - global_step);
  if (log_now) log_step(lr, eta);
  status.draw(fmt::format("epoch {}/{}  step {}/{}  {:.1f}%  ETA {}", shown_epoch(), cfg.optim.epochs, global_step,
                          total_steps, 100.0 * static_cast<double>(global_step) / static_cast<double>(total_steps),
                          format_duration(eta)));
}

void TrainerState::log_step(double lr, double eta) {
  const auto mean = step_log.take(*collective, multi());
  Scalars s{{"loss", mean.loss}};
  if (cfg.method.name == "lgd") {
    s.emplace_back("loss_vis", mean.loss_vis);
    s.emplace_back("loss_tex", mean.loss_tex);
  } else {
    s.emplace_back("loss_seed", mean.loss_vis);
  }
  const Scalars rest{{"lr", lr},
                     {"images_per_s", mean.images_per_s},
                     {"data_wait", mean.data_wait},
                     {"bad_samples", static_cast<double>(mean.bad)},
                     {"nonfinite_steps", static_cast<double>(nonfinite_total)},
                     {"grad_norm", mean.grad_norm}};
  s.insert(s.end(), rest.begin(), rest.end());
  for (auto& [k, v] : method->metrics()) s.emplace_back(k, v.item<double>());
  if (metrics) metrics->write("train", global_step, shown_epoch(), s);
  clear_progress();
  spdlog::info("[train] epoch {}/{} step {}/{} loss {:.4f} lr {:.4g} {:.1f} img/s data {:.0f}% ETA {}", shown_epoch(),
               cfg.optim.epochs, global_step, total_steps, mean.loss, lr, mean.images_per_s, 100.0 * mean.data_wait,
               format_duration(eta));
}

void TrainerState::validate_now() {
  const auto t0 = Clock::now();
  const auto [student_top1, teacher_top1] = validate();
  if (metrics)
    metrics->write("val", global_step, shown_epoch(), {{"student_top1", student_top1}, {"teacher_top1", teacher_top1}});
  clear_progress();
  spdlog::info("[train] epoch {} step {} validation: zero-shot top-1 student {:.2f}%, teacher {:.2f}%", shown_epoch(),
               global_step, student_top1, teacher_top1);
  step_log.exclude(Clock::now() - t0);
}

int TrainerState::stop_run(int sig) {
  clear_progress();
  save(false);
  if (rank() == 0)
    spdlog::warn("[train] {} at step {}: checkpoint saved to {}/last.ckpt; run the same command to resume",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", global_step, checkpoints->dir());
  if (metrics) metrics->flush();
  return 128 + sig;
}

void TrainerState::finish_run() {
  clear_progress();
  if (collective->rank() == 0) {
    const auto out = (fs::path(run_dir) / "student.pth").string();
    exporting::write_weights(out, exporting::export_tensors(*student, nullptr), exporting::WeightsFormat::kTorchvision,
                             {});
    spdlog::info("[train] done: {} steps in {}; student weights in {} (torchvision keys)", global_step,
                 format_duration(seconds_since(run_started)), out);
  }
  collective->barrier();
  if (metrics) metrics->flush();
}


void TrainerState::resume_or_start(const std::string& requested) {
  std::string resume = requested;
  if (resume.empty()) {
    if (auto last = checkpoints->last()) resume = *last;
  }
  // Every rank resumes from the checkpoint rank 0 chose (run directories are on a shared
  // file system in a multi-node run).
  resume = collective->broadcast_string(resume, 0);
  if (!resume.empty()) {
    if (!fs::is_regular_file(resume))
      throw IoError(resume + ": rank " + std::to_string(rank()) + " cannot read the checkpoint rank 0 resumes "
                    "from (the run directory must be on a file system every node shares)");
    resume_from(resume);
  }
  if (multi()) {
    // Parameters and buffers start from rank 0's, as DistributedDataParallel does.
    torch::NoGradGuard no_grad;
    for (auto& [k, v] : models::state_dict(*student)) collective->broadcast(v, 0);
    for (auto& [k, v] : models::state_dict(*head)) collective->broadcast(v, 0);
  }
  if (rank() == 0) {
    write_file_atomic((fs::path(run_dir) / "config.yaml").string(), config::to_yaml(cfg));
    // The TSB the run distils against: `lgd eval --protocol zero-shot` finds it next to the
    // run's checkpoints.
    text::save_text_bank((fs::path(run_dir) / "tsb.safetensors").string(), tsb);
    // Records after the step the run starts from are logged again: the old ones are dropped
    // (all of them when it starts from scratch in a used directory).
    metrics = std::make_unique<MetricsLog>(run_dir, global_step);
  }
}

void TrainerState::log_start() const {
  spdlog::info(
      "[train] {} on {} ({} threads{}); teacher {} (D = {}, {} px{}); method {} over {} classes; "
      "{} images, {} epochs x {} steps of {} images; peak lr {:.4g}",
      cfg.student.arch, cuda ? "cuda" : "cpu", threads,
      cuda ? (autocast ? ", autocast " + cfg.train.amp : std::string(", float32")) : "",
      teacher->manifest().name, teacher->manifest().embed_dim, cfg.data.image_size,
      std::string(teacher->image_encoder_frozen() ? ", frozen graph" : "") +
          (teacher_stream ? ", own CUDA stream" : ""),
      cfg.method.name, tsb.weights.size(1), dataset->size(), cfg.optim.epochs, steps_per_epoch,
      global_batch, schedule->peak());
  spdlog::info("[train] view {}{}; non-finite losses checked {}", cfg.data.augment,
               view.view != data::View::kMocoV2 ? std::string()
               : view.photometric_on_device  ? std::string(", colour jitter / grayscale / blur on the device")
                                             : std::string(", colour jitter / grayscale / blur in the loader"),
               deferred ? "on the device, read at log and checkpoint steps" : "after every micro-batch");
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
  m.resume_or_start(args.resume);
  // Decided before the start-up lines, which report it.
  m.deferred = cfg.train.nonfinite_check == "deferred" || (cfg.train.nonfinite_check == "auto" && m.cuda);
  m.log_start();
}

Trainer::~Trainer() = default;

const distill::Teacher& Trainer::teacher() const { return *impl_->teacher; }
const std::string& Trainer::run_dir() const { return impl_->run_dir; }

int Trainer::run() {
  auto& m = *impl_;
  const auto& cfg = m.cfg;
  StopSignals signals;
  m.start_run();
  while (m.epoch < cfg.optim.epochs && m.global_step < m.total_steps) {
    m.loader->start_epoch(m.epoch, m.step_in_epoch * cfg.optim.accumulate);
    while (m.step_in_epoch < m.steps_per_epoch && m.global_step < m.total_steps) {
      // One process stops at once; several stop together at the step the flags agree on.
      if (!m.multi())
        if (int sig = StopSignals::pending()) return m.stop_run(sig);
      const double lr = m.schedule->lr(m.global_step);
      const bool log_now = m.global_step + 1 == m.total_steps || (m.global_step + 1) % cfg.train.log_every == 0;
      const bool save_now = cfg.train.checkpoint_every > 0 && (m.global_step + 1) % cfg.train.checkpoint_every == 0;
      const int stop_signal = m.train_step(lr, log_now || save_now || m.step_in_epoch + 1 == m.steps_per_epoch);
      m.report_step(lr, log_now);
      const bool mid_epoch = m.step_in_epoch < m.steps_per_epoch;
      // Validation before the checkpoint of the same step: a run killed in between resumes
      // from the checkpoint before and validates again, so no record is lost.
      if (m.val_step_due() && mid_epoch) m.validate_now();
      if (save_now && mid_epoch) m.save(true);
      if (stop_signal && mid_epoch) return m.stop_run(stop_signal);
    }
    if (m.step_in_epoch < m.steps_per_epoch) {  // train.max_steps reached inside an epoch
      m.save(false);
      break;
    }
    // Epoch end: the position moves to the next epoch before the checkpoint.
    ++m.epoch;
    m.step_in_epoch = 0;
    if ((cfg.train.val_every > 0 && m.epoch % cfg.train.val_every == 0) || m.val_step_due()) m.validate_now();
    m.save(true);
  }
  m.finish_run();
  return 0;
}

}  // namespace lgd::engine
