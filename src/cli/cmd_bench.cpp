// lgd bench data | vsb | train: throughput of the data pipeline (decode + view + batching),
// of the LGKA update of the Visual Semantics Bank, and of whole training steps.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "lgd/config/run_config.h"
#include "lgd/core/errors.h"
#include "lgd/core/logging.h"
#include "lgd/data/pipeline.h"
#include "lgd/distill/method.h"
#include "lgd/engine/trainer.h"

namespace lgd::cli {

void add_bench_command(CLI::App& app, Commands& commands) {
  auto* bench = app.add_subcommand("bench", "Measure throughput (results belong in docs/PERFORMANCE.md)");
  bench->require_subcommand(1, 1);

  struct DataArgs {
    std::string file;
    std::vector<std::string> overrides;
    std::int64_t batches = 20;
    std::int64_t warmup = 2;
    int workers = -1;
    std::string view;
    bool json = false;
  };
  auto a = std::make_shared<DataArgs>();
  auto* data = bench->add_subcommand(
      "data",
      "Images/s of the training data pipeline: read, decode, augment (data.augment, or --view) "
      "and batch, over the config's dataset");
  data->add_option("--config", a->file, "Run config (its data section is used)")->required();
  data->add_option("--set", a->overrides, "Override a key, e.g. --set data.workers=2");
  data->add_option("--batches", a->batches, "Batches timed")->capture_default_str()->check(CLI::PositiveNumber);
  data->add_option("--warmup", a->warmup, "Batches run before timing")->capture_default_str()->check(CLI::NonNegativeNumber);
  data->add_option("--workers", a->workers, "Worker threads (overrides data.workers; 0: all cores)")
      ->check(CLI::NonNegativeNumber);
  data->add_option("--view", a->view, "View to measure instead of data.augment")
      ->check(CLI::IsMember({"mocov2", "linear", "eval", "none"}));
  data->add_flag("--json", a->json, "Print the result as one JSON object on stdout");
  commands.push_back({data, [a] {
    const auto loaded = config::load_run_config(a->file, a->overrides);
    const auto& cfg = loaded.config;
    std::shared_ptr<const data::Dataset> dataset = data::open_dataset(data::dataset_options(cfg.data));
    auto opts = data::loader_options(cfg, /*training=*/true);
    opts.pin_memory = false;
    if (a->workers >= 0) opts.workers = a->workers;
    const auto view = data::view_options(cfg.data, a->view);
    data::Loader loader(dataset, data::Transform(view), opts);
    spdlog::info("[bench] {} images in {} classes, view {} at {} px, batch {}, {} workers",
                 dataset->size(), dataset->num_classes(), a->view.empty() ? cfg.data.augment : a->view,
                 view.size, opts.batch_size, loader.workers());
    std::int64_t epoch = 0;
    loader.start_epoch(epoch);
    auto next = [&] {
      auto b = loader.next();
      if (!b) {
        loader.start_epoch(++epoch);
        b = loader.next();
      }
      return *b;
    };
    for (std::int64_t i = 0; i < a->warmup; ++i) next();
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    std::int64_t images = 0;
    for (std::int64_t i = 0; i < a->batches; ++i) images += next().images.size(0);
    const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
    const double rate = images / seconds;
    if (a->json) {
      std::printf("{\"pipeline\": \"lgd\", \"view\": \"%s\", \"workers\": %d, \"batch_size\": %lld, "
                  "\"images\": %lld, \"seconds\": %.3f, \"images_per_s\": %.1f, "
                  "\"images_per_s_per_worker\": %.1f}\n",
                  (a->view.empty() ? cfg.data.augment : a->view).c_str(), loader.workers(),
                  static_cast<long long>(opts.batch_size), static_cast<long long>(images), seconds,
                  rate, rate / loader.workers());
    } else {
      std::printf("%lld images in %.2f s: %.1f images/s, %.1f per worker (%d workers)\n",
                  static_cast<long long>(images), seconds, rate, rate / loader.workers(),
                  loader.workers());
    }
    return 0;
  }});

  struct VsbArgs {
    std::int64_t classes = 1000, dim = 1024, batch = 256, iters = 50;
    std::string device = "cpu";
    bool json = false;
  };
  auto v = std::make_shared<VsbArgs>();
  auto* vsb = bench->add_subcommand(
      "vsb", "Time of one LGKA update of the Visual Semantics Bank (assign keys to classes by "
             "the TSB, per-class means, momentum update), vectorised");
  vsb->add_option("--classes", v->classes, "C")->capture_default_str()->check(CLI::PositiveNumber);
  vsb->add_option("--dim", v->dim, "D")->capture_default_str()->check(CLI::PositiveNumber);
  vsb->add_option("--batch", v->batch, "Keys per update (global batch)")->capture_default_str()->check(CLI::PositiveNumber);
  vsb->add_option("--iters", v->iters, "Timed updates")->capture_default_str()->check(CLI::PositiveNumber);
  vsb->add_option("--device", v->device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  vsb->add_flag("--json", v->json, "Print the result as one JSON object on stdout");
  commands.push_back({vsb, [v] {
    if (v->device == "cuda" && !torch::cuda::is_available())
      throw UsageError("bench vsb: --device cuda but CUDA is not available");
    const torch::Device device(v->device == "cuda" ? torch::kCUDA : torch::kCPU);
    torch::manual_seed(0);
    auto tsb = torch::randn({v->dim, v->classes});
    tsb = (tsb / tsb.norm(2, 0, true)).to(device);
    distill::VisualSemanticsBank bank(v->dim, v->classes, 0.999, 0);
    bank.to(device);
    std::vector<torch::Tensor> keys;
    for (int i = 0; i < 8; ++i) {
      auto k = torch::randn({v->batch, v->dim});
      keys.push_back((k / k.norm(2, 1, true)).to(device));
    }
    auto sync = [&] {
      if (device.is_cuda()) torch::cuda::synchronize();
    };
    std::vector<torch::Tensor> classes;
    for (const auto& k : keys) classes.push_back(distill::VisualSemanticsBank::assign(k, tsb));
    for (int i = 0; i < 5; ++i) bank.update(keys[i % keys.size()], tsb);
    sync();
    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    for (std::int64_t i = 0; i < v->iters; ++i) bank.update(keys[i % keys.size()], tsb);
    sync();
    const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count() / v->iters;
    // The part the reference loops over classes for: per-class means and momentum step.
    t0 = clock::now();
    for (std::int64_t i = 0; i < v->iters; ++i)
      bank.update_assigned(keys[i % keys.size()], classes[i % classes.size()]);
    sync();
    const double ms_agg = std::chrono::duration<double, std::milli>(clock::now() - t0).count() / v->iters;
    if (v->json) {
      std::printf("{\"impl\": \"lgd\", \"device\": \"%s\", \"classes\": %lld, \"dim\": %lld, "
                  "\"batch\": %lld, \"threads\": %d, \"ms_per_update\": %.4f, "
                  "\"ms_per_update_after_assignment\": %.4f}\n",
                  v->device.c_str(), static_cast<long long>(v->classes),
                  static_cast<long long>(v->dim), static_cast<long long>(v->batch),
                  torch::get_num_threads(), ms, ms_agg);
    } else {
      std::printf("VSB update, C=%lld D=%lld B=%lld on %s (%d threads): %.4f ms (%.4f ms after the "
                  "class assignment)\n",
                  static_cast<long long>(v->classes), static_cast<long long>(v->dim),
                  static_cast<long long>(v->batch), v->device.c_str(), torch::get_num_threads(), ms,
                  ms_agg);
    }
    return 0;
  }});

  struct TrainBenchArgs {
    engine::BenchTrainOptions options;
    bool json = false;
  };
  auto tb = std::make_shared<TrainBenchArgs>();
  auto* train = bench->add_subcommand(
      "train", "Training steps on synthetic images with a run's teacher, student, method and "
               "optimiser: images/s and the step split into teacher forward, student forward + "
               "backward, bank update and optimiser. With --set teacher.cache=DIR (a folder "
               "written by lgd reinforce) the step reads cached embeddings instead of running "
               "the teacher, as lgd train does");
  train->add_option("--config", tb->options.args.config, "Run config (YAML)")->required()->check(CLI::ExistingFile);
  train->add_option("--set", tb->options.args.overrides, "Override a key: --set data.batch_size=64");
  train->add_option("--steps", tb->options.steps, "Timed steps")->capture_default_str()->check(CLI::PositiveNumber);
  train->add_option("--warmup", tb->options.warmup, "Untimed steps first")->capture_default_str()->check(CLI::NonNegativeNumber);
  train->add_flag("--json", tb->json, "Print the result as one JSON object on stdout");
  train->add_option("--trace", tb->options.trace,
                    "Also write a Chrome trace (chrome://tracing, Perfetto) of --trace-steps more "
                    "steps after the timed ones: LibTorch's operators, and the CUDA kernels where "
                    "LibTorch 2.x runs on a GPU");
  train->add_option("--trace-steps", tb->options.trace_steps, "Steps in the trace")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  commands.push_back({train, [tb] {
    const auto r = engine::bench_train(tb->options);
    if (tb->json) {
      std::printf("{\"impl\": \"lgd\", \"device\": \"%s\", \"arch\": \"%s\", \"method\": \"%s\", "
                  "\"teacher\": \"%s\", \"keys\": \"%s\", \"amp\": \"%s\", \"photometric\": \"%s\", \"channels_last\": %s, "
                  "\"batch\": %lld, \"image_size\": %lld, \"threads\": %lld, "
                  "\"steps\": %lld, \"step_ms\": %.3f, \"images_per_s\": %.2f, \"teacher_ms\": %.3f, "
                  "\"student_ms\": %.3f, \"update_ms\": %.3f, \"optimizer_ms\": %.3f}\n",
                  r.device.c_str(), r.arch.c_str(), r.method.c_str(), r.teacher.c_str(),
                  r.keys.c_str(), r.amp.c_str(), r.photometric.c_str(), r.channels_last ? "true" : "false",
                  static_cast<long long>(r.batch), static_cast<long long>(r.image_size),
                  static_cast<long long>(r.threads), static_cast<long long>(r.steps), r.step_ms,
                  r.images_per_s, r.teacher_ms, r.student_ms, r.update_ms, r.optimizer_ms);
    } else {
      std::printf("train step, %s + %s teacher (%s), %s, batch %lld at %lld px on %s (%lld threads, "
                  "autocast %s, %s, colour work %s):\n"
                  "  %.1f ms/step, %.1f images/s\n"
                  "  split (synchronised): teacher %.1f ms, student fwd+bwd %.1f ms, bank update "
                  "%.2f ms, optimiser %.1f ms\n",
                  r.arch.c_str(), r.teacher.c_str(),
                  r.keys == "cache" ? "embeddings from teacher.cache" : "forward every step", r.method.c_str(),
                  static_cast<long long>(r.batch),
                  static_cast<long long>(r.image_size), r.device.c_str(),
                  static_cast<long long>(r.threads), r.amp.c_str(),
                  r.channels_last ? "channels_last" : "contiguous",
                  r.photometric == "device" ? "on the device, in the step"
                  : r.photometric == "host" ? "in the loader, not in the step"
                                            : "none",
                  r.step_ms, r.images_per_s, r.teacher_ms, r.student_ms, r.update_ms, r.optimizer_ms);
    }
    return 0;
  }});
}

}  // namespace lgd::cli
