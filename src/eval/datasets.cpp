// lgd eval: the training set the probes learn from (or its class-balanced label subset) and
// the evaluation set they are scored on; the loaders over them.
#include "evaluation.h"
#include "lgd/core/errors.h"
#include "lgd/core/logging.h"
#include "lgd/data/pipeline.h"
#include "lgd/eval/probe.h"

namespace lgd::eval {

bool Evaluation::needs_train() const {
  for (const auto& p : o.protocols)
    if (p != "zero-shot") return true;
  return false;
}

void Evaluation::open_data() {
  const auto& cfg = run_config;
  const std::string format = first_of({o.format, yaml_string(cfg, "data", "dataset"), "image_folder"});
  const std::string root = first_of({o.data, yaml_string(cfg, "data", "root")});
  const std::string classnames = first_of({o.classnames, o.data.empty() ? yaml_string(cfg, "data", "classnames") : ""});
  if (root.empty())
    throw UsageError("lgd eval: --data is required (the labelled dataset to evaluate on)");
  train_opts = {format, root, first_of({o.train_split, o.data.empty() ? yaml_string(cfg, "data", "split") : "", "train"}),
                classnames};
  std::string val_root = first_of({o.val_data, o.data.empty() ? yaml_string(cfg, "data", "val_root") : ""});
  if (val_root.empty()) {
    if (format != "idx" && format != "cifar")
      throw UsageError("lgd eval: --val-data is required for " + format +
                       " datasets (the images the protocols are scored on)");
    val_root = root;
  }
  val_opts = {format, val_root,
              first_of({o.val_split, o.data.empty() ? yaml_string(cfg, "data", "val_split") : "", "test"}), classnames};
  val_set = data::open_dataset(val_opts);
  if (needs_train()) {
    std::shared_ptr<const data::Dataset> full = data::open_dataset(train_opts);
    if (full->num_classes() != val_set->num_classes())
      throw IoError(val_opts.root + ": evaluation set has " + std::to_string(val_set->num_classes()) +
                    " classes, the training set " + train_opts.root + " " + std::to_string(full->num_classes()) +
                    " (expected the same classes in the same order)");
    if (o.subset_percent > 0) {
      std::vector<std::int64_t> labels(static_cast<std::size_t>(full->size()));
      for (std::int64_t i = 0; i < full->size(); ++i) labels[static_cast<std::size_t>(i)] = full->label(i);
      auto idx = class_balanced_subset(labels, full->num_classes(), o.subset_percent / 100.0,
                                       static_cast<std::uint64_t>(o.seed));
      subset_key = fmt::format("{}%/seed {}/{} samples", o.subset_percent, o.seed, idx.size());
      spdlog::info("[eval] label subset: {} of {} training samples ({}% per class, seed {})", idx.size(),
                   full->size(), o.subset_percent, o.seed);
      train_set = data::subset(full, std::move(idx));
    } else {
      train_set = full;
    }
  }
}

data::LoaderOptions Evaluation::loader(std::int64_t batch, bool shuffle) const {
  data::LoaderOptions lo;
  lo.batch_size = batch;
  lo.workers = o.workers;
  lo.seed = static_cast<std::uint64_t>(o.seed);
  lo.shuffle = shuffle;
  lo.drop_last = false;
  lo.pin_memory = cuda;
  lo.max_bad_fraction = 0;  // an unreadable image stops the evaluation with its path
  return lo;
}

torch::Tensor Evaluation::input(const torch::Tensor& images) const {
  return data::to_model_input(images, mean, std, device, channels_last);
}

}  // namespace lgd::eval
