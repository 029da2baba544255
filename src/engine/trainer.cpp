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

  bool multi() const { return launch.multi(); }
  int rank() const { return launch.rank; }

  // The launcher's view of this process (before anything else reads the config's batch).
  void setup_launch() {
    dist::RendezvousDefaults rd;
    rd.master_addr = cfg.dist.master_addr;
    rd.master_port = static_cast<int>(cfg.dist.master_port);
    try {
      launch = dist::detect_launch(rd);
    } catch (const ConfigError& e) {
      // A config key in the message gets the file:line it came from.
      const std::string what = e.what();
      for (const char* key : {"dist.master_addr", "dist.master_port"})
        if (what.rfind(key, 0) == 0) throw ConfigError(where(key) + ": " + what);
      throw;
    }
    auto& data = loaded.config.data;
    const std::int64_t shards = static_cast<std::int64_t>(launch.world_size) * cfg.optim.accumulate;
    if (data.global_batch > 0) {
      if (data.global_batch % shards != 0)
        throw ConfigError(where("data.global_batch") + ": data.global_batch: " + std::to_string(data.global_batch) +
                          " does not divide into " + std::to_string(launch.world_size) + " processes x optim.accumulate " +
                          std::to_string(cfg.optim.accumulate) + " (expected a multiple of " + std::to_string(shards) + ")");
      const std::int64_t per = data.global_batch / shards;
      if (loaded.origins.count("data.batch_size") && data.batch_size != per)
        throw ConfigError(where("data.batch_size") + ": data.batch_size: " + std::to_string(data.batch_size) + " x " +
                          std::to_string(launch.world_size) + " processes x optim.accumulate " +
                          std::to_string(cfg.optim.accumulate) + " is not data.global_batch = " +
                          std::to_string(data.global_batch) + " (set one of the two)");
      data.batch_size = per;
    }
    // Processes on one machine share its cores.
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int share = std::max(1, cores / std::max(1, launch.local_world_size));
    if (data.workers == 0 && launch.local_world_size > 1) data.workers = share;
    threads = cfg.run.threads > 0 ? static_cast<int>(cfg.run.threads) : share;
  }

  void setup_process_group() {
    if (!multi()) return;
    std::string backend = cfg.dist.backend;
    if (backend == "auto") backend = cuda && dist::nccl_available() ? "nccl" : "gloo";
    if (backend == "nccl" && !cuda)
      throw ConfigError(where("dist.backend") + ": dist.backend: nccl needs CUDA, but this run is on the CPU "
                        "(expected gloo or auto)");
    dist::ProcessGroupOptions po;
    po.backend = backend;
    po.timeout_seconds = cfg.dist.timeout;
    collective = dist::connect(launch, po);
    spdlog::info("[dist] {}: {} processes x {} images x accumulate {} = global batch {}", collective->describe(),
                 launch.world_size, cfg.data.batch_size, cfg.optim.accumulate,
                 cfg.data.batch_size * launch.world_size * cfg.optim.accumulate);
  }

  void setup_device() {
    torch::set_num_threads(threads);
    const bool have_cuda = compat::cuda_available();
    if (cfg.run.device == "cuda" && !have_cuda)
      throw ConfigError(where("run.device") +
                        ": run.device: cuda, but no CUDA device is visible (expected auto or cpu)");
    cuda = cfg.run.device == "cuda" || (cfg.run.device == "auto" && have_cuda);
    if (cuda && launch.local_rank >= compat::cuda_device_count())
      throw ConfigError("local rank " + std::to_string(launch.local_rank) + " has no GPU: " +
                        std::to_string(compat::cuda_device_count()) + " visible on this node (expected at most one "
                        "process per GPU)");
    device = cuda ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(launch.local_rank))
                  : torch::Device(torch::kCPU);
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

  // Rank 0 loads or builds the TSB; the other ranks receive it, so it is built once and is
  // identical everywhere.
  void setup_bank() {
    if (rank() == 0) load_or_build_bank();
    if (multi()) {
      auto shape = torch::zeros({2}, torch::kInt64);
      if (rank() == 0) shape = torch::tensor({tsb.weights.size(0), tsb.weights.size(1)}, torch::kInt64);
      collective->broadcast(shape, 0);
      if (rank() != 0) {
        tsb.weights = torch::zeros({shape[0].item<std::int64_t>(), shape[1].item<std::int64_t>()}, torch::kFloat32);
        tsb.teacher = teacher->manifest().name;
      }
      auto w = tsb.weights.to(torch::kFloat32).contiguous();
      collective->broadcast(w, 0);
      tsb.weights = w;
    }
    tsb_device = tsb.weights.to(device, torch::kFloat32);
  }

  void load_or_build_bank() {
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
    std::vector<torch::Tensor> tensors;
    for (const auto& [name, p] : params) tensors.push_back(p);
    grad_sync = collective->gradient_sync(tensors, cfg.dist.bucket_mb);
    if (cuda && autocast && amp_dtype == torch::kHalf) scaler.emplace(device);
  }

  void setup_data() {
    open_dataset();
    auto lo = data::loader_options(cfg, true);
    lo.rank = collective->rank();
    lo.world_size = collective->world_size();
    lo.shards_per_rank = cfg.optim.accumulate;
    loader = std::make_unique<data::Loader>(dataset, data::Transform(data::view_options(cfg.data)), lo);
    steps_per_epoch = loader->batches_per_epoch() / cfg.optim.accumulate;
    if (steps_per_epoch < 1)
      throw ConfigError(where("data.batch_size") + ": data.batch_size: " + std::to_string(cfg.data.batch_size) +
                        " x optim.accumulate " + std::to_string(cfg.optim.accumulate) +
                        " is more than this process's " + std::to_string(loader->samples_per_epoch()) +
                        " images of " + cfg.data.root + " (expected at least one full step per epoch)");
    total_steps = steps_per_epoch * cfg.optim.epochs;
    if (cfg.train.max_steps > 0) total_steps = std::min(total_steps, cfg.train.max_steps);
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

  // What a rank holds that must equal every other rank's: sum, sum of squares and a
  // position-weighted sum (float64) of the trained parameters and of the method's state.
  // BatchNorm statistics are per rank (as in the reference) and not compared.
  torch::Tensor fingerprint() const {
    auto stats = [](const std::vector<torch::Tensor>& ts) {
      double sum = 0, sq = 0, weighted = 0;
      for (const auto& t : ts) {
        if (!t.defined() || !t.is_floating_point()) continue;
        const auto x = t.detach().to(torch::kCPU, torch::kFloat64).contiguous().view({-1});
        const auto w = torch::linspace(1.0, 2.0, x.numel(), torch::kFloat64);
        sum += x.sum().item<double>();
        sq += x.square().sum().item<double>();
        weighted += (x * w).sum().item<double>();
      }
      return std::vector<double>{sum, sq, weighted};
    };
    std::vector<torch::Tensor> params, state;
    for (const auto& p : student->parameters()) params.push_back(p);
    for (const auto& p : head->parameters()) params.push_back(p);
    for (const auto& [k, v] : method->state()) state.push_back(v);
    auto a = stats(params), b = stats(state);
    a.insert(a.end(), b.begin(), b.end());
    return torch::tensor(a, torch::kFloat64);
  }

  // Every rank calls it at the same step. Never writes a checkpoint holding a NaN or Inf;
  // in a multi-process run, checks first that all ranks hold the same parameters and bank.
  void save(bool periodic) {
    Checkpoint c = make_checkpoint();
    torch::Tensor finite_t = torch::ones({}, torch::kBool);
    for (const auto& [k, v] : c.tensors)
      if (v.is_floating_point()) finite_t = finite_t.logical_and(torch::isfinite(v).all().cpu());
    bool finite = finite_t.item<bool>();
    if (multi()) {
      auto mine = torch::cat({torch::tensor({finite ? 1.0 : 0.0}, torch::kFloat64), fingerprint()}).unsqueeze(0);
      const auto all = collective->all_gather_cat(mine).to(torch::kCPU);  // [world, 7]
      std::string text;
      for (int r = 0; r < launch.world_size; ++r) {
        text += (r ? "; rank " : "rank ") + std::to_string(r) + ":";
        for (std::int64_t j = 1; j < all.size(1); ++j) text += fmt::format(" {:.17g}", all[r][j].item<double>());
        if (all[r][0].item<double>() == 0) finite = false;
      }
      c.meta["rank_fingerprints"] = text;
      for (int r = 1; r < launch.world_size; ++r) {
        if (all[r].slice(0, 1).equal(all[0].slice(0, 1))) continue;
        const bool params_differ = !all[r].slice(0, 1, 4).equal(all[0].slice(0, 1, 4));
        throw Error("dist: ranks diverged at step " + std::to_string(global_step) + ": rank " + std::to_string(r) +
                    "'s " + (params_differ ? "parameters" : "method state (VSB / queue)") +
                    " differ from rank 0's (fingerprints " + text + ")");
      }
    }
    if (!finite)
      throw Error("refusing to write a checkpoint at step " + std::to_string(global_step) +
                  ": the model or the bank holds NaN or Inf (the last checkpoint in " +
                  checkpoints->dir() + " is intact)");
    if (rank() == 0) {
      const auto path = checkpoints->save(c, global_step, periodic);
      spdlog::debug("[train] checkpoint {}", path);
    }
    collective->barrier();
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

  // Forward both models on x, the loss, and, when it is finite, backward; `keys` gets the
  // teacher's normalised embeddings for the method's update after the step's last
  // micro-batch. False for a non-finite loss (nothing changed).
  bool forward_backward(const torch::Tensor& x, distill::LossParts& parts, torch::Tensor& keys, Phases* phases) {
    auto mark = [&](double& slot) {
      if (!phases) return;
      if (cuda) torch::cuda::synchronize(device.index());
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
    keys = t;
    return true;
  }

  // The method's update (VSB / queue) with the keys of the whole global batch, in the order
  // rank 0's micro-batches, rank 1's, ..., the same on every rank.
  void update_method(const std::vector<torch::Tensor>& keys, const std::vector<torch::Tensor>& classes) {
    if (keys.empty()) return;
    const auto k = keys.size() == 1 ? keys[0] : torch::cat(keys);
    torch::Tensor c;
    if (classes.size() == keys.size()) c = classes.size() == 1 ? classes[0] : torch::cat(classes);
    method->update(collective->all_gather_cat(k), c.defined() ? collective->all_gather_cat(c) : torch::Tensor());
  }

  // Unscales (fp16), clips and steps, on gradients already averaged over ranks
  // (grad_sync->finish()). False when an fp16 gradient overflowed (the step is skipped, as
  // GradScaler does).
  bool optimizer_step(double lr, torch::Tensor* grad_norm) {
    auto grads = optimizer->grads();
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
    lo.even_shards = false;  // every validation image counted once over the ranks
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
    auto counts = torch::stack({correct_s.cpu(), correct_t.cpu(), torch::tensor(seen, torch::kInt64)});
    collective->all_reduce(counts, distill::Reduce::kSum);
    const double n = static_cast<double>(std::max<std::int64_t>(counts[2].item<std::int64_t>(), 1));
    const double top1_s = 100.0 * static_cast<double>(counts[0].item<std::int64_t>()) / n;
    if (with_teacher) teacher_val_top1 = 100.0 * static_cast<double>(counts[1].item<std::int64_t>()) / n;
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
  m.setup_launch();
  m.run_dir = (fs::path(cfg.run.output_dir) / cfg.run.name).string();
  fs::create_directories(fs::path(m.run_dir) / "checkpoints");
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
    m.metrics = std::make_unique<MetricsLog>(m.run_dir);
  }
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
    if (m.rank() == 0)
      spdlog::warn("[train] {} at step {}: checkpoint saved to {}/last.ckpt; run the same command to resume",
                   sig == SIGINT ? "SIGINT" : "SIGTERM", m.global_step, m.checkpoints->dir());
    if (m.metrics) m.metrics->flush();
    return 128 + sig;
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
      std::vector<torch::Tensor> keys, classes;
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
        torch::Tensor t;
        if (!m.forward_backward(m.model_input(batch->images), parts, t, nullptr)) {
          finite = false;
          continue;
        }
        keys.push_back(t);
        if (parts.classes.defined()) classes.push_back(parts.classes);
        const auto add = [](torch::Tensor& acc, const torch::Tensor& v) {
          if (!v.defined()) return;
          acc = acc.defined() ? acc + v.detach() : v.detach().clone();
        };
        add(sum_loss, parts.loss);
        add(sum_vis, parts.loss_vis);
        add(sum_tex, parts.loss_tex);
        ++logged_micro;
      }
      // Gradients averaged over ranks (every rank, every step, whatever its loss was), then
      // one small all-reduce: did any rank see a non-finite loss or a stop signal?
      m.grad_sync->finish();
      int stop_signal = 0;
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
          if (m.metrics) m.metrics->write("train", m.global_step, m.epoch, s);
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
      if (stop_signal && m.step_in_epoch < m.steps_per_epoch) return stop(stop_signal);
    }
    if (m.step_in_epoch < m.steps_per_epoch) {  // train.max_steps reached inside an epoch
      m.save(false);
      break;
    }
    // Epoch end: the position moves to the next epoch before the checkpoint.
    ++m.epoch;
    m.step_in_epoch = 0;
    m.save(true);
    if (cfg.train.val_every > 0 && m.epoch % cfg.train.val_every == 0) {
      const auto [student_top1, teacher_top1] = m.validate();
      if (m.metrics)
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
  m.collective->barrier();
  if (m.metrics) m.metrics->flush();
  return 0;
}

BenchTrainResult bench_train(const BenchTrainOptions& options) {
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
  ScheduleOptions so;
  so.base_lr = cfg.optim.lr;
  so.global_batch = B;
  CosineSchedule schedule(so);

  auto one_step = [&](Phases* phases) {
    if (phases) phases->last = Clock::now();
    distill::LossParts parts;
    torch::Tensor keys;
    const bool ok = m.forward_backward(m.model_input(images), parts, keys, phases);
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
