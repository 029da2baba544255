#include "lgd/engine/trainer.h"

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
using Clock = std::chrono::steady_clock;

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


// SIGINT / SIGTERM set a flag that the training loop checks after every step. The handler is
// installed once per run and resets itself, so a second signal ends the process at once.
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

class StopSignals {
 public:
  StopSignals() {
    g_stop_signal.store(0);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  static int pending() { return g_stop_signal.load(); }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

// fp16 dynamic loss scaling, as torch.cuda.amp.GradScaler (init 2^16, growth 2 every 2000
// good steps, backoff 0.5).
struct LossScaler {
  torch::Tensor scale, growth;
  explicit LossScaler(const torch::Device& device)
      : scale(torch::full({1}, 65536.0, torch::TensorOptions().dtype(torch::kFloat32).device(device))),
        growth(torch::zeros({1}, torch::TensorOptions().dtype(torch::kInt32).device(device))) {}
  // Unscales the gradients in place; false (and a smaller scale) when one is not finite.
  bool unscale_and_update(std::vector<torch::Tensor> grads) {
    auto found_inf = torch::zeros({1}, scale.options());
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, scale.reciprocal());
    const bool overflow = found_inf.item<float>() > 0;
    at::_amp_update_scale_(scale, growth, found_inf, 2.0, 0.5, 2000);
    return !overflow;
  }
};

struct Phases {
  Clock::time_point last;
  double teacher = 0, student = 0, update = 0, optimizer = 0;
};

}  // namespace

struct detail::TrainerState {
  config::LoadedConfig loaded;
  const config::RunConfig& cfg = loaded.config;
  std::string config_path, run_dir;
  torch::Device device = torch::kCPU;
  bool cuda = false;
  bool autocast = false;                          // CUDA autocast on (train.amp != off)
  torch::ScalarType amp_dtype = torch::kBFloat16;  // its dtype, also the teacher's on CUDA
  int threads = 1;

  std::shared_ptr<distill::Collective> collective = distill::single_process_collective();
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
  std::unique_ptr<CosineSchedule> schedule;
  std::int64_t steps_per_epoch = 0, total_steps = 0, global_batch = 0;

  // Position: `epoch` (0-based) and the optimiser steps done in it; global_step counts all.
  std::int64_t epoch = 0, step_in_epoch = 0, global_step = 0;
  std::int64_t nonfinite_total = 0, nonfinite_run = 0;
  std::optional<double> teacher_val_top1;

  std::unique_ptr<CheckpointDir> checkpoints;
  std::unique_ptr<MetricsLog> metrics;
  bool tty = false;
  bool progress_shown = false;

  void setup_device() {
    threads = cfg.run.threads > 0 ? static_cast<int>(cfg.run.threads)
                                  : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    torch::set_num_threads(threads);
    const bool have_cuda = compat::cuda_available();
    if (cfg.run.device == "cuda" && !have_cuda)
      throw ConfigError(where("run.device") +
                        ": run.device: cuda, but no CUDA device is visible (expected auto or cpu)");
    cuda = cfg.run.device == "cuda" || (cfg.run.device == "auto" && have_cuda);
    device = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
    if (cuda) {
      at::globalContext().setBenchmarkCuDNN(true);
      if (cfg.train.amp == "fp16") amp_dtype = torch::kHalf;
      autocast = cfg.train.amp != "off";
    }
  }

  std::string where(const std::string& key) const {
    const auto it = loaded.origins.find(key);
    return it == loaded.origins.end() ? config_path : it->second;
  }

  void require_key(const std::string& key, const std::string& value, const char* expected) const {
    if (value.empty())
      throw ConfigError(where(key) + ": " + key + ": required by lgd train (expected " + expected + ")");
  }

  void open_dataset() {
    if (dataset) return;
    require_key("data.root", cfg.data.root, "the training set's location");
    dataset = data::open_dataset(data::dataset_options(cfg.data));
  }

  void setup_teacher() {
    require_key("teacher.bundle", cfg.teacher.bundle, "a teacher bundle directory");
    teacher = distill::Teacher::load(cfg.teacher.bundle);
    const auto& m = teacher->manifest();
    if (m.image.size != cfg.data.image_size)
      throw ConfigError(where("data.image_size") + ": data.image_size: " +
                        std::to_string(cfg.data.image_size) + ", but the teacher " + m.name +
                        " takes " + std::to_string(m.image.size) + " px images (" +
                        cfg.teacher.bundle + "/lgd_teacher.yaml image.size)");
    teacher->to(device, autocast ? amp_dtype : torch::kFloat32);
  }

  void setup_bank() {
    const auto D = teacher->manifest().embed_dim;
    if (!cfg.bank.file.empty()) {
      tsb = text::load_text_bank(cfg.bank.file);
      if (tsb.weights.size(0) != D)
        throw IoError(cfg.bank.file + ": TSB of width " + std::to_string(tsb.weights.size(0)) +
                      ", but the teacher " + teacher->manifest().name + " embeds in " +
                      std::to_string(D) + " (bank.file was built with another teacher)");
    } else {
      std::vector<std::string> names;
      if (!cfg.bank.class_list.empty()) {
        names = cfg.bank.class_list;
      } else if (!cfg.bank.classnames.empty()) {
        names = text::read_class_names(cfg.bank.classnames, true);
      } else {
        open_dataset();
        names = dataset->class_names();
      }
      std::vector<std::string> templates;
      if (!cfg.bank.template_list.empty())
        templates = cfg.bank.template_list;
      else if (!cfg.bank.templates.empty())
        templates = text::read_templates(cfg.bank.templates);
      else if (!teacher->manifest().templates.empty())
        templates = text::read_templates((fs::path(teacher->dir()) / teacher->manifest().templates).string());
      else
        templates = text::default_templates();
      spdlog::info("[train] building the TSB: {} classes x {} templates", names.size(), templates.size());
      try {
        tsb = text::build_text_bank(
            names, templates, [&](const std::vector<std::string>& t) { return teacher->encode_texts(t); });
      } catch (const Error& e) {
        throw ConfigError(where(cfg.bank.template_list.empty() ? "bank.templates" : "bank.template_list") +
                          ": building the TSB with teacher " + teacher->manifest().name + ": " + e.what());
      }
      tsb.teacher = teacher->manifest().name;
    }
    tsb_device = tsb.weights.to(device, torch::kFloat32);
  }

  void setup_student() {
    const auto D = teacher->manifest().embed_dim;
    torch::manual_seed(static_cast<std::uint64_t>(cfg.run.seed));
    if (cfg.student.init == "weights") {
      auto w = exporting::load_student_weights(cfg.student.arch, cfg.student.weights, 0);
      student = w.student;
      if (w.head) {
        const auto width = w.head->children().back()->parameters()[0].size(0);
        if (width != D)
          throw IoError(cfg.student.weights + ": projection head of width " + std::to_string(width) +
                        ", but the teacher embeds in " + std::to_string(D));
        head = w.head;
      } else {
        head = models::make_projection_head(student->feature_dim(), D);
      }
    } else {
      student = models::create_student(cfg.student.arch, {0});
      head = models::make_projection_head(student->feature_dim(), D);
    }
    student->to(device);
    head->to(device);
    if (cfg.train.channels_last) models::to_channels_last(*student);
    student->train();
    head->train();

    distill::MethodOptions mo;
    mo.name = cfg.method.name;
    mo.alpha = cfg.method.alpha;
    mo.student_temp = cfg.method.student_temp;
    mo.teacher_temp = cfg.method.teacher_temp;
    mo.vsb_momentum = cfg.method.vsb_momentum;
    mo.queue_size = cfg.method.queue_size;
    method = distill::make_method(mo, D, tsb.weights, static_cast<std::uint64_t>(cfg.run.seed) + 1);
    method->to(device);

    models::NamedTensors params;
    for (const auto& p : student->named_parameters(true)) params.emplace_back("student." + p.key(), p.value());
    for (const auto& p : head->named_parameters(true)) params.emplace_back("head." + p.key(), p.value());
    optimizer = std::make_unique<Sgd>(params, SgdOptions{cfg.optim.momentum, cfg.optim.weight_decay,
                                                         cfg.optim.nesterov});
    if (cuda && autocast && amp_dtype == torch::kHalf) scaler.emplace(device);
  }

  void setup_data() {
    open_dataset();
    auto lo = data::loader_options(cfg, true);
    lo.rank = collective->rank();
    lo.world_size = collective->world_size();
    loader = std::make_unique<data::Loader>(dataset, data::Transform(data::view_options(cfg.data)), lo);
    steps_per_epoch = loader->batches_per_epoch() / cfg.optim.accumulate;
    if (steps_per_epoch < 1)
      throw ConfigError(where("data.batch_size") + ": data.batch_size: " + std::to_string(cfg.data.batch_size) +
                        " x optim.accumulate " + std::to_string(cfg.optim.accumulate) +
                        " is more than this process's " + std::to_string(loader->samples_per_epoch()) +
                        " images of " + cfg.data.root + " (expected at least one full step per epoch)");
    total_steps = steps_per_epoch * cfg.optim.epochs;
    global_batch = cfg.data.batch_size * cfg.optim.accumulate * collective->world_size();
    ScheduleOptions so;
    so.base_lr = cfg.optim.lr;
    so.global_batch = global_batch;
    so.steps_per_epoch = steps_per_epoch;
    so.epochs = cfg.optim.epochs;
    so.warmup_epochs = cfg.optim.warmup_epochs;
    so.reference = cfg.optim.schedule == "reference";
    schedule = std::make_unique<CosineSchedule>(so);
  }

  // ---- checkpoints ----

  std::map<std::string, std::string> identity() const {
    return {{"arch", cfg.student.arch},
            {"method", cfg.method.name},
            {"embed_dim", std::to_string(teacher->manifest().embed_dim)},
            {"num_classes", std::to_string(tsb.weights.size(1))},
            {"image_size", std::to_string(cfg.data.image_size)},
            {"batch_size", std::to_string(cfg.data.batch_size)},
            {"accumulate", std::to_string(cfg.optim.accumulate)},
            {"world_size", std::to_string(collective->world_size())},
            {"seed", std::to_string(cfg.run.seed)}};
  }

  Checkpoint make_checkpoint() const {
    Checkpoint c;
    for (auto& [k, v] : models::state_dict(*student)) c.tensors.emplace_back("student." + k, v);
    for (auto& [k, v] : models::state_dict(*head)) c.tensors.emplace_back("head." + k, v);
    for (auto& [k, v] : optimizer->state()) c.tensors.emplace_back("optim." + k, v);
    for (auto& [k, v] : method->state()) c.tensors.emplace_back("method." + k, v);
    if (scaler) {
      c.tensors.emplace_back("amp.scale", scaler->scale);
      c.tensors.emplace_back("amp.growth", scaler->growth);
    }
    c.meta = identity();
    c.meta["epoch"] = std::to_string(epoch);
    c.meta["step_in_epoch"] = std::to_string(step_in_epoch);
    c.meta["global_step"] = std::to_string(global_step);
    c.meta["nonfinite_steps"] = std::to_string(nonfinite_total);
    c.meta["teacher"] = teacher->manifest().name;
    // The input normalisation the student was trained with (lgd eval uses it).
    auto joined = [](const std::vector<double>& v) {
      std::string out;
      for (double x : v) out += (out.empty() ? "" : ",") + fmt::format("{}", x);
      return out;
    };
    c.meta["image_mean"] = joined(teacher->manifest().image.mean);
    c.meta["image_std"] = joined(teacher->manifest().image.std);
    c.meta["config"] = config::to_yaml(cfg);
    c.meta["rng"] = "global generator reseeded from (run.seed, step); data draws from (run.seed, epoch, index)";
    return c;
  }

  // Never writes a checkpoint holding a NaN or Inf.
  void save(bool periodic) {
    if (collective->rank() != 0) return;
    Checkpoint c = make_checkpoint();
    torch::Tensor finite = torch::ones({}, torch::kBool);
    for (const auto& [k, v] : c.tensors)
      if (v.is_floating_point()) finite = finite.logical_and(torch::isfinite(v).all().cpu());
    if (!finite.item<bool>())
      throw Error("refusing to write a checkpoint at step " + std::to_string(global_step) +
                  ": the model or the bank holds NaN or Inf (the last checkpoint in " +
                  checkpoints->dir() + " is intact)");
    const auto path = checkpoints->save(c, global_step, periodic);
    spdlog::debug("[train] checkpoint {}", path);
  }

  void resume_from(const std::string& path) {
    const Checkpoint c = load_checkpoint(path);
    for (const auto& [key, value] : identity()) {
      const auto it = c.meta.find(key);
      if (it == c.meta.end()) throw IoError(path + ": checkpoint has no '" + key + "' entry");
      if (it->second != value)
        throw ConfigError(path + ": checkpoint was made with " + key + " = " + it->second +
                          ", the config gives " + value +
                          " (a resumed run cannot change this; use a new run.name to start over)");
    }
    std::set<std::string> known{"student.", "head.", "optim.", "method.", "amp."};
    for (const auto& [k, v] : c.tensors) {
      const auto dot = k.find('.');
      if (dot == std::string::npos || !known.count(k.substr(0, dot + 1)))
        throw IoError(path + ": unexpected tensor '" + k + "' in checkpoint");
    }
    models::load_state_dict(*student, c.section("student."), path + " (student.*)");
    models::load_state_dict(*head, c.section("head."), path + " (head.*)");
    optimizer->load_state(c.section("optim."), path);
    std::map<std::string, torch::Tensor> ms;
    for (auto& [k, v] : c.section("method.")) ms[k] = v;
    try {
      method->load_state(ms);
    } catch (const Error& e) {
      throw IoError(path + ": " + e.what());
    }
    const auto amp = c.section("amp.");
    if (scaler) {
      if (amp.size() == 2) {
        for (auto& [k, v] : amp) (k == "scale" ? scaler->scale : scaler->growth).copy_(v);
      } else {
        spdlog::warn("[train] {} has no fp16 loss scale; starting at 65536", path);
      }
    }
    epoch = c.integer("epoch", path);
    step_in_epoch = c.integer("step_in_epoch", path);
    global_step = c.integer("global_step", path);
    nonfinite_total = c.integer("nonfinite_steps", path);
    if (step_in_epoch > steps_per_epoch || global_step != epoch * steps_per_epoch + step_in_epoch)
      throw ConfigError(path + ": checkpoint position (epoch " + std::to_string(epoch) + ", step " +
                        std::to_string(step_in_epoch) + ") does not fit " +
                        std::to_string(steps_per_epoch) +
                        " steps per epoch (the dataset or data.batch_size changed)");
    spdlog::info("[train] resuming from {} at epoch {}, step {} of {} (global step {})", path,
                 epoch + 1, step_in_epoch, steps_per_epoch, global_step);
  }

  // ---- the step ----

  // Forward both models on x, the loss, and, when it is finite, backward and the method's
  // update with the global batch's keys. False for a non-finite loss (nothing changed).
  bool forward_backward(const torch::Tensor& x, distill::LossParts& parts, Phases* phases) {
    auto mark = [&](double& slot) {
      if (!phases) return;
      if (cuda) torch::cuda::synchronize();
      const auto now = Clock::now();
      slot += std::chrono::duration<double>(now - phases->last).count();
      phases->last = now;
    };
    torch::Tensor t;
    {
      torch::NoGradGuard no_grad;
      t = l2_normalize(teacher->encode_images(x).to(torch::kFloat32));
    }
    if (phases) mark(phases->teacher);
    torch::Tensor s;
    {
      compat::CudaAutocast ac(autocast, amp_dtype);
      s = head->forward(student->features(x));
    }
    s = l2_normalize(s.to(torch::kFloat32));
    parts = method->loss(s, t);
    // One host synchronisation per micro-batch. It also guarantees that the non-blocking copy
    // of the pinned batch has completed before the loader may reuse that buffer.
    if (!parts.loss.isfinite().item<bool>()) return false;
    auto loss = parts.loss / static_cast<double>(cfg.optim.accumulate);
    if (scaler) loss = loss * scaler->scale.squeeze();
    loss.backward();
    if (phases) mark(phases->student);
    method->update(collective->all_gather_cat(t),
                   parts.classes.defined() ? collective->all_gather_cat(parts.classes) : torch::Tensor());
    if (phases) mark(phases->update);
    return true;
  }

  // Averages gradients over ranks, unscales (fp16), clips and steps. False when an fp16
  // gradient overflowed (the step is skipped, as GradScaler does).
  bool optimizer_step(double lr, torch::Tensor* grad_norm) {
    auto grads = optimizer->grads();
    collective->all_reduce_mean(grads);
    if (scaler && !scaler->unscale_and_update(grads)) return false;
    if (cfg.optim.clip_grad > 0 || grad_norm) {
      auto norm = optimizer->clip_grad_norm(cfg.optim.clip_grad);
      if (grad_norm) *grad_norm = norm;
    }
    optimizer->step(lr);
    return true;
  }

  torch::Tensor model_input(const torch::Tensor& images) const {
    const auto& m = teacher->manifest().image;
    return data::to_model_input(images, m.mean, m.std, device, cfg.train.channels_last);
  }

  // ---- validation ----

  // Zero-shot top-1 (%) through the TSB of the student (s = norm(head(student(x)))) and of
  // the teacher, on the validation set with the eval view.
  std::pair<double, double> validate() {
    config::DataSection vd = cfg.data;
    if (!cfg.data.val_root.empty()) vd.root = cfg.data.val_root;
    vd.split = cfg.data.val_split;
    std::shared_ptr<const data::Dataset> val = data::open_dataset(data::dataset_options(vd));
    if (val->num_classes() != tsb.weights.size(1))
      throw ConfigError(where("data.val_root") + ": validation set " + vd.root + " has " +
                        std::to_string(val->num_classes()) + " classes, the TSB " +
                        std::to_string(tsb.weights.size(1)) +
                        " (zero-shot validation needs the same classes in the same order)");
    auto lo = data::loader_options(cfg, false);
    lo.rank = collective->rank();
    lo.world_size = collective->world_size();
    data::Loader vl(val, data::Transform(data::view_options(vd, "eval")), lo);
    vl.start_epoch(0);
    torch::NoGradGuard no_grad;
    student->eval();
    head->eval();
    const bool with_teacher = !teacher_val_top1.has_value();
    auto correct_s = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(device));
    auto correct_t = correct_s.clone();
    std::int64_t seen = 0;
    while (auto batch = vl.next()) {
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
    student->train();
    head->train();
    const double n = static_cast<double>(std::max<std::int64_t>(seen, 1));
    const double top1_s = 100.0 * static_cast<double>(correct_s.item<std::int64_t>()) / n;
    if (with_teacher) teacher_val_top1 = 100.0 * static_cast<double>(correct_t.item<std::int64_t>()) / n;
    return {top1_s, *teacher_val_top1};
  }

  // ---- output ----

  void clear_progress() {
    if (progress_shown) {
      std::fputs("\r\033[K", stderr);
      progress_shown = false;
    }
  }
};

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
  m.run_dir = (fs::path(cfg.run.output_dir) / cfg.run.name).string();
  fs::create_directories(fs::path(m.run_dir) / "checkpoints");
  add_log_file((fs::path(m.run_dir) / "train.log").string());
  spdlog::info("[train] lgd {} run directory {}", version(), m.run_dir);

  m.setup_device();
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
  if (!resume.empty()) m.resume_from(resume);
  write_file_atomic((fs::path(m.run_dir) / "config.yaml").string(), config::to_yaml(cfg));
  // The TSB the run distils against: `lgd eval --protocol zero-shot` finds it next to the
  // run's checkpoints.
  if (m.collective->rank() == 0) text::save_text_bank((fs::path(m.run_dir) / "tsb.safetensors").string(), m.tsb);
  m.metrics = std::make_unique<MetricsLog>(m.run_dir);
  m.tty = ::isatty(STDERR_FILENO) == 1;

  spdlog::info(
      "[train] {} on {} ({} threads{}); teacher {} (D = {}, {} px); method {} over {} classes; "
      "{} images, {} epochs x {} steps of {} images; peak lr {:.4g}",
      cfg.student.arch, m.cuda ? "cuda" : "cpu", m.threads,
      m.cuda ? (m.autocast ? ", autocast " + cfg.train.amp : std::string(", float32")) : "",
      m.teacher->manifest().name, m.teacher->manifest().embed_dim, cfg.data.image_size,
      cfg.method.name, m.tsb.weights.size(1), m.dataset->size(), cfg.optim.epochs, m.steps_per_epoch,
      m.global_batch, m.schedule->peak());
}

Trainer::~Trainer() = default;

const distill::Teacher& Trainer::teacher() const { return *impl_->teacher; }
const std::string& Trainer::run_dir() const { return impl_->run_dir; }

int Trainer::run() {
  auto& m = *impl_;
  const auto& cfg = m.cfg;
  StopSignals signals;
  const auto started = Clock::now();
  const std::int64_t first_step = m.global_step;

  // Metrics accumulated on the device between log lines (no host synchronisation per step).
  torch::Tensor sum_loss, sum_vis, sum_tex, sum_norm;
  std::int64_t logged_micro = 0, logged_steps = 0, logged_images = 0, logged_bad = 0;
  double data_wait = 0;
  auto log_started = Clock::now();
  auto last_progress = Clock::now() - std::chrono::seconds(1);

  auto stop = [&](int sig) {
    m.clear_progress();
    m.save(false);
    spdlog::warn("[train] {} at step {}: checkpoint saved to {}/last.ckpt; run the same command to resume",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", m.global_step, m.checkpoints->dir());
    m.metrics->flush();
    return 128 + sig;
  };

  while (m.epoch < cfg.optim.epochs) {
    m.loader->start_epoch(m.epoch, m.step_in_epoch * cfg.optim.accumulate);
    while (m.step_in_epoch < m.steps_per_epoch) {
      if (int sig = StopSignals::pending()) return stop(sig);
      torch::manual_seed(step_seed(static_cast<std::uint64_t>(cfg.run.seed), m.global_step, m.collective->rank()));
      const double lr = m.schedule->lr(m.global_step);
      bool finite = true;
      for (std::int64_t micro = 0; micro < cfg.optim.accumulate; ++micro) {
        const auto wait_started = Clock::now();
        auto batch = m.loader->next();
        data_wait += seconds_since(wait_started);
        if (!batch) throw Error("internal: the loader ended an epoch early");
        logged_bad += batch->bad;
        logged_images += batch->images.size(0) * m.collective->world_size();
        if (!finite) continue;
        distill::LossParts parts;
        if (!m.forward_backward(m.model_input(batch->images), parts, nullptr)) {
          finite = false;
          continue;
        }
        const auto add = [](torch::Tensor& acc, const torch::Tensor& v) {
          if (!v.defined()) return;
          acc = acc.defined() ? acc + v.detach() : v.detach().clone();
        };
        add(sum_loss, parts.loss);
        add(sum_vis, parts.loss_vis);
        add(sum_tex, parts.loss_tex);
        ++logged_micro;
      }
      if (finite) {
        torch::Tensor norm;
        m.optimizer_step(lr, &norm);
        if (norm.defined()) sum_norm = sum_norm.defined() ? sum_norm + norm : norm.clone();
        m.nonfinite_run = 0;
      } else {
        ++m.nonfinite_total;
        ++m.nonfinite_run;
        m.clear_progress();
        spdlog::warn("[train] step {}: the loss is NaN or Inf; step skipped ({} in a row, {} in all)",
                     m.global_step, m.nonfinite_run, m.nonfinite_total);
        if (m.nonfinite_run >= cfg.train.max_nonfinite)
          throw Error("the loss was NaN or Inf for " + std::to_string(m.nonfinite_run) +
                      " steps in a row (train.max_nonfinite) up to step " + std::to_string(m.global_step) +
                      "; stopped without writing a checkpoint (check optim.lr and the method's "
                      "temperatures; the last checkpoint is in " + m.checkpoints->dir() + ")");
      }
      m.optimizer->zero_grad();
      ++m.global_step;
      ++m.step_in_epoch;
      ++logged_steps;

      const bool log_now = m.global_step % cfg.train.log_every == 0 || m.global_step == m.total_steps;
      if (log_now || (m.tty && seconds_since(last_progress) > 0.25)) {
        const double elapsed = seconds_since(started);
        const double per_step = elapsed / static_cast<double>(m.global_step - first_step);
        const double eta = per_step * static_cast<double>(m.total_steps - m.global_step);
        if (log_now) {
          const double interval = seconds_since(log_started);
          const double micro = static_cast<double>(std::max<std::int64_t>(logged_micro, 1));
          auto mean = [&](const torch::Tensor& t, double n) {
            return t.defined() ? t.item<double>() / n : std::nan("");
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
          m.metrics->write("train", m.global_step, m.epoch, s);
          m.clear_progress();
          spdlog::info("[train] epoch {}/{} step {}/{} loss {:.4f} lr {:.4g} {:.1f} img/s data {:.0f}% ETA {}",
                       m.epoch + 1, cfg.optim.epochs, m.global_step, m.total_steps, loss, lr, ips,
                       100.0 * data_wait / interval, format_duration(eta));
          sum_loss = sum_vis = sum_tex = sum_norm = torch::Tensor();
          logged_micro = logged_steps = logged_images = logged_bad = 0;
          data_wait = 0;
          log_started = Clock::now();
        }
        if (m.tty) {
          std::fprintf(stderr, "\r\033[Kepoch %lld/%lld  step %lld/%lld  %.1f%%  ETA %s",
                       static_cast<long long>(m.epoch + 1), static_cast<long long>(cfg.optim.epochs),
                       static_cast<long long>(m.global_step), static_cast<long long>(m.total_steps),
                       100.0 * static_cast<double>(m.global_step) / static_cast<double>(m.total_steps),
                       format_duration(eta).c_str());
          std::fflush(stderr);
          m.progress_shown = true;
          last_progress = Clock::now();
        }
      }
      if (cfg.train.checkpoint_every > 0 && m.global_step % cfg.train.checkpoint_every == 0 &&
          m.step_in_epoch < m.steps_per_epoch)
        m.save(true);
    }
    // Epoch end: the position moves to the next epoch before the checkpoint.
    ++m.epoch;
    m.step_in_epoch = 0;
    m.save(true);
    if (cfg.train.val_every > 0 && m.epoch % cfg.train.val_every == 0) {
      const auto [student_top1, teacher_top1] = m.validate();
      m.metrics->write("val", m.global_step, m.epoch,
                       {{"student_top1", student_top1}, {"teacher_top1", teacher_top1}});
      m.clear_progress();
      spdlog::info("[train] epoch {} validation: zero-shot top-1 student {:.2f}%, teacher {:.2f}%",
                   m.epoch, student_top1, teacher_top1);
    }
  }
  m.clear_progress();
  if (m.collective->rank() == 0) {
    const auto out = (fs::path(m.run_dir) / "student.pth").string();
    exporting::write_weights(out, exporting::export_tensors(*m.student, nullptr),
                             exporting::WeightsFormat::kTorchvision, {});
    spdlog::info("[train] done: {} steps in {}; student weights in {} (torchvision keys)", m.global_step,
                 format_duration(seconds_since(started)), out);
  }
  m.metrics->flush();
  return 0;
}

BenchTrainResult bench_train(const BenchTrainOptions& options) {
  detail::TrainerState m;
  m.config_path = options.args.config;
  m.loaded = config::load_run_config(options.args.config, options.args.overrides);
  m.setup_device();
  m.setup_teacher();
  m.setup_bank();
  m.setup_student();
  const auto& cfg = m.cfg;
  const std::int64_t B = cfg.data.batch_size, S = cfg.data.image_size;
  auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(cfg.run.seed));
  const auto images = at::randint(0, 256, {B, S, S, 3}, gen, torch::TensorOptions().dtype(torch::kLong))
                          .to(torch::kUInt8);
  ScheduleOptions so;
  so.base_lr = cfg.optim.lr;
  so.global_batch = B;
  CosineSchedule schedule(so);

  auto one_step = [&](Phases* phases) {
    if (phases) phases->last = Clock::now();
    distill::LossParts parts;
    const bool ok = m.forward_backward(m.model_input(images), parts, phases);
    if (ok) m.optimizer_step(schedule.lr(0), nullptr);
    m.optimizer->zero_grad();
    if (phases) {
      if (m.cuda) torch::cuda::synchronize();
      phases->optimizer += seconds_since(phases->last);
    }
    return ok;
  };
  for (int i = 0; i < options.warmup; ++i) one_step(nullptr);
  if (m.cuda) torch::cuda::synchronize();
  const auto t0 = Clock::now();
  for (int i = 0; i < options.steps; ++i) one_step(nullptr);
  if (m.cuda) torch::cuda::synchronize();
  const double whole = seconds_since(t0);
  Phases phases;
  for (int i = 0; i < options.steps; ++i) one_step(&phases);

  BenchTrainResult r;
  r.device = m.cuda ? "cuda" : "cpu";
  r.arch = cfg.student.arch;
  r.method = cfg.method.name;
  r.teacher = m.teacher->manifest().name;
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
  return r;
}

}  // namespace lgd::engine
