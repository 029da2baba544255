// The trainer's set-up: launch and process group, device, teacher, TSB, student and
// optimiser, data and schedule, each from the run config.
#include "trainer_state.h"
#include <c10/core/impl/VirtualGuardImpl.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "lgd/core/file_io.h"
#include "lgd/core/logging.h"
#include "lgd/core/torch_compat.h"
#include "lgd/data/pipeline.h"
#include "lgd/dist/process_group.h"
#include "lgd/export/weights_io.h"
#include "lgd/models/state_dict.h"

namespace lgd::engine::detail {
namespace fs = std::filesystem;

void TrainerState::setup_launch() {
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

void TrainerState::setup_process_group() {
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

void TrainerState::setup_device() {
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
  channels_last = models::use_channels_last(device, cfg.train.channels_last, "train");
  if (cuda) {
    if (cfg.train.deterministic) {
      ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
      at::globalContext().setDeterministicCuDNN(true);
      at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
    }
    at::globalContext().setBenchmarkCuDNN(!cfg.train.deterministic);
    if (cfg.train.amp == "fp16") amp_dtype = torch::kHalf;
    autocast = cfg.train.amp != "off";
    // train.amp off means float32: no TF32 in cuDNN convolutions or cuBLAS matmuls.
    at::globalContext().setAllowTF32CuDNN(autocast);
    at::globalContext().setAllowTF32CuBLAS(autocast);
    if (cfg.teacher.overlap)
      teacher_stream = c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA).getStreamFromGlobalPool(device);
  }
}

void TrainerState::open_dataset() {
  if (dataset) return;
  require_key("data.root", cfg.data.root, "the training set's location");
  dataset = data::open_dataset(data::dataset_options(cfg.data));
}

void TrainerState::setup_teacher() {
  require_key("teacher.bundle", cfg.teacher.bundle, "a teacher bundle directory");
  teacher = distill::Teacher::load(cfg.teacher.bundle);
  const auto& m = teacher->manifest();
  if (m.image.size != cfg.data.image_size)
    throw ConfigError(where("data.image_size") + ": data.image_size: " +
                      std::to_string(cfg.data.image_size) + ", but the teacher " + m.name +
                      " takes " + std::to_string(m.image.size) + " px images (" +
                      cfg.teacher.bundle + "/lgd_teacher.yaml image.size)");
  teacher->to(device, autocast ? amp_dtype : torch::kFloat32);
  teacher->optimize_image_encoder(channels_last, cfg.teacher.freeze);
}

void TrainerState::setup_bank() {
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

void TrainerState::load_or_build_bank() {
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

void TrainerState::setup_student() {
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
  if (channels_last) models::to_channels_last(*student);
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

void TrainerState::setup_data() {
  open_dataset();
  auto lo = data::loader_options(cfg, true);
  lo.rank = collective->rank();
  lo.world_size = collective->world_size();
  lo.shards_per_rank = cfg.optim.accumulate;
  view = data::view_options(cfg.data);
  view.photometric_on_device = view.view == data::View::kMocoV2 && data::photometric_on_device(cfg.data, device);
  open_cache();
  if (cache) lo.view_cycle = cache_views;
  loader = std::make_unique<data::Loader>(dataset, data::Transform(view), lo);
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

void TrainerState::open_cache() {
  if (cfg.teacher.cache.empty()) return;
  try {
    cache = EmbeddingCache::open(cfg.teacher.cache);
  } catch (const IoError& e) {
    throw IoError(where("teacher.cache") + ": teacher.cache: " + e.what());
  }
  const auto diff =
      first_difference(cache->fields(), cache_fields(cfg, *teacher, *dataset, view.photometric_on_device));
  if (!diff.empty())
    throw ConfigError(where("teacher.cache") + ": teacher.cache: " + cfg.teacher.cache +
                      " was made for another run (" + diff + ")");
  if (cfg.teacher.cache_views > cache->views())
    throw ConfigError(where("teacher.cache_views") + ": teacher.cache_views: " + std::to_string(cfg.teacher.cache_views) +
                      ", but " + cache->dir() + " holds " + std::to_string(cache->views()) + " views");
  const std::int64_t K = cache_views = cfg.teacher.cache_views > 0 ? cfg.teacher.cache_views : cache->views();
  spdlog::info("[train] teacher embeddings from {} ({} of its {} views, {}): epoch e takes view e mod {}{}",
               cache->dir(), K, cache->views(), cache->dtype(), K,
               K < cfg.optim.epochs ? fmt::format("; the {} epochs see each view up to {} times", cfg.optim.epochs,
                                                  (cfg.optim.epochs + K - 1) / K)
                                    : std::string());
}

torch::Tensor TrainerState::cached_keys(const data::Batch& batch) const {
  return cached_rows(batch.epoch % cache_views, batch.sampled);
}

torch::Tensor TrainerState::cached_rows(std::int64_t which, const torch::Tensor& indices) const {
  const auto rows = cache->rows(which, indices);
  // On CUDA through pinned memory, so that the copy does not wait for the device (the
  // caching host allocator keeps the block until the copy is done).
  return cuda ? rows.pin_memory().to(device, /*non_blocking=*/true) : rows;
}

}  // namespace lgd::engine::detail
