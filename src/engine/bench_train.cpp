// lgd bench train: training steps on synthetic images with a run's teacher (or its
// teacher.cache), student, method and optimiser; the whole step timed, then each phase with
// the device synchronised between them.
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "lgd/core/file_io.h"
#include "lgd/core/torch_compat.h"
#include "lgd/data/pipeline.h"
#include "trainer_state.h"

namespace lgd::engine {
namespace {

using detail::Phases;
using detail::TrainerState;

void sync(const TrainerState& m) {
  if (m.cuda) torch::cuda::synchronize(m.device.index());
}

// The phase since phases->last, after the device is done with it.
void mark(const TrainerState& m, Phases* phases, double& slot) {
  if (!phases) return;
  sync(m);
  const auto now = Clock::now();
  slot += std::chrono::duration<double>(now - phases->last).count();
  phases->last = now;
}

struct BenchInputs {
  torch::Tensor images;       // uint8 [B, S, S, 3], uniform random
  torch::Tensor photometric;  // the colour work's parameters when it is on the device
  torch::Tensor cached;       // teacher.cache: view 0 of images 0 .. B-1, else undefined
};

BenchInputs bench_inputs(TrainerState& m) {
  const auto& cfg = m.cfg;
  const std::int64_t B = cfg.data.batch_size, S = cfg.data.image_size;
  BenchInputs in;
  auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(cfg.run.seed));
  in.images = at::randint(0, 256, {B, S, S, 3}, gen, torch::TensorOptions().dtype(torch::kLong)).to(torch::kUInt8);
  // The training view's colour work, when data.photometric puts it on the device, is part of
  // the step: each sample's parameters drawn as the loader draws them.
  m.view = data::view_options(cfg.data);
  if (m.view.view == data::View::kMocoV2 && data::photometric_on_device(cfg.data, m.device)) {
    m.view.photometric_on_device = true;
    in.photometric = torch::empty({B, data::kPhotometricParams}, torch::kFloat32);
    for (std::int64_t i = 0; i < B; ++i) {
      data::SampleRng rng(static_cast<std::uint64_t>(cfg.run.seed), 0, i);
      data::ViewDraw draw;
      data::draw_photometric(m.view, rng, draw);
      data::photometric_params(draw, in.photometric.data_ptr<float>() + i * data::kPhotometricParams);
    }
  }
  // teacher.cache: the step reads B cached embeddings in place of the teacher's forward, as
  // a training step does; the images only reach the student.
  if (!cfg.teacher.cache.empty()) {
    m.cache = EmbeddingCache::open(cfg.teacher.cache);
    m.cache_views = m.cache->views();
    const auto D = m.teacher->manifest().embed_dim;
    if (m.cache->dim() != D)
      throw ConfigError(m.where("teacher.cache") + ": teacher.cache: " + cfg.teacher.cache +
                        " holds embeddings of width " + std::to_string(m.cache->dim()) + ", the teacher " +
                        m.teacher->manifest().name + " embeds in " + std::to_string(D));
    in.cached = torch::arange(B, torch::kInt64).remainder(m.cache->size());
  }
  return in;
}

// One step as lgd train runs it (one micro-batch, per-step checks); `phases`: the device
// synchronised between phases and their times added there.
void bench_step(TrainerState& m, const BenchInputs& in, double lr, Phases* phases) {
  if (phases) phases->last = Clock::now();
  distill::LossParts parts;
  torch::Tensor keys;
  const auto cached = in.cached.defined() ? m.cached_rows(0, in.cached) : torch::Tensor();
  const bool ok =
      m.forward_backward(m.model_input(in.images, in.photometric), parts, keys, phases, nullptr, cached);
  m.grad_sync->finish();
  if (ok) {
    m.update_method({keys}, parts.classes.defined() ? std::vector<torch::Tensor>{parts.classes}
                                                    : std::vector<torch::Tensor>{});
    if (phases) mark(m, phases, phases->update);
    m.optimizer_step(lr, nullptr);
  }
  m.optimizer->zero_grad();
  if (phases) mark(m, phases, phases->optimizer);
}

BenchTrainResult describe(const TrainerState& m, const BenchInputs& in, int steps, double whole, const Phases& p) {
  const auto& cfg = m.cfg;
  BenchTrainResult r;
  r.device = m.cuda ? "cuda" : "cpu";
  r.arch = cfg.student.arch;
  r.method = cfg.method.name;
  r.teacher = m.teacher->manifest().name;
  r.keys = m.cache ? "cache" : "teacher";
  r.amp = m.cuda && m.autocast ? cfg.train.amp : "off";
  r.photometric = in.photometric.defined() ? "device" : m.view.view == data::View::kMocoV2 ? "host" : "none";
  r.channels_last = m.channels_last;
  r.batch = cfg.data.batch_size;
  r.image_size = cfg.data.image_size;
  r.threads = m.threads;
  r.steps = steps;
  const double n = std::max(1, steps);
  r.step_ms = 1000.0 * whole / n;
  r.images_per_s = static_cast<double>(r.batch) * n / whole;
  r.teacher_ms = 1000.0 * p.teacher / n;
  r.student_ms = 1000.0 * p.student / n;
  r.update_ms = 1000.0 * p.update / n;
  r.optimizer_ms = 1000.0 * p.optimizer / n;
  return r;
}

void write_trace(TrainerState& m, const BenchInputs& in, const BenchTrainOptions& o, double lr) {
  std::string trace;
  try {
    compat::OpProfiler profiler(m.cuda);
    for (int i = 0; i < o.trace_steps; ++i) bench_step(m, in, lr, nullptr);
    sync(m);
    trace = profiler.finish(
        (std::filesystem::temp_directory_path() / ("lgd_trace_" + std::to_string(::getpid()) + ".json")).string());
  } catch (const c10::Error& e) {
    throw Error(o.trace + ": the profiler failed (" + e.what_without_backtrace() + ")");
  }
  if (trace.empty()) throw Error(o.trace + ": the profiler recorded nothing");
  write_file_atomic(o.trace, trace);
}

}  // namespace

BenchTrainResult bench_train(const BenchTrainOptions& options) {
  if (!options.trace.empty()) {  // before the steps, not after them
    const auto folder = std::filesystem::absolute(options.trace).parent_path();
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec))
      throw IoError(options.trace + ": no folder " + folder.string() + " to write the trace in (--trace)");
  }
  TrainerState m;
  m.config_path = options.args.config;
  m.loaded = config::load_run_config(options.args.config, options.args.overrides);
  m.threads = m.cfg.run.threads > 0 ? static_cast<int>(m.cfg.run.threads)
                                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  m.setup_device();
  m.setup_teacher();
  m.setup_bank();
  m.setup_student();
  const auto in = bench_inputs(m);
  ScheduleOptions so;
  so.base_lr = m.cfg.optim.lr;
  so.global_batch = m.cfg.data.batch_size;
  const double lr = CosineSchedule(so).lr(0);

  for (int i = 0; i < options.warmup; ++i) bench_step(m, in, lr, nullptr);
  sync(m);
  const auto t0 = Clock::now();
  for (int i = 0; i < options.steps; ++i) bench_step(m, in, lr, nullptr);
  sync(m);
  const double whole = seconds_since(t0);
  Phases phases;
  for (int i = 0; i < options.steps; ++i) bench_step(m, in, lr, &phases);
  const auto r = describe(m, in, options.steps, whole, phases);
  if (!options.trace.empty()) write_trace(m, in, options, lr);
  return r;
}

}  // namespace lgd::engine
