// lgd bench data: throughput of the data pipeline (decode + view + batching).
#include <chrono>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "lgd/config/run_config.h"
#include "lgd/core/errors.h"
#include "lgd/core/logging.h"
#include "lgd/data/pipeline.h"

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
}

}  // namespace lgd::cli
