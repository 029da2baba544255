// lgd eval: the student, the data, then each protocol in the order given; results.json after
// each (the parts live in the files evaluation.h lists).
#include <algorithm>
#include <filesystem>

#include "evaluation.h"
#include "lgd/core/errors.h"
#include "lgd/core/logging.h"

namespace lgd::eval {
namespace fs = std::filesystem;

EvalReport evaluate(const EvalOptions& o) {
  static const std::vector<std::string> kProtocols{"linear", "linear-fast", "zero-shot", "knn", "finetune"};
  if (o.protocols.empty())
    throw UsageError("lgd eval: no --protocol given (linear, linear-fast, zero-shot, knn, finetune)");
  for (const auto& p : o.protocols)
    if (std::find(kProtocols.begin(), kProtocols.end(), p) == kProtocols.end())
      throw UsageError("lgd eval: unknown protocol '" + p +
                       "'; expected linear, linear-fast, zero-shot, knn or finetune");
  if (o.subset_percent < 0 || o.subset_percent > 100)
    throw UsageError("lgd eval: --subset " + fmt::format("{}", o.subset_percent) + ": expected a percentage in (0, 100]");
  if (o.linear_epochs <= 0 || o.linear_batch <= 0 || o.batch_size <= 0 || o.finetune_epochs <= 0 ||
      o.finetune_batch <= 0)
    throw UsageError("lgd eval: --linear-epochs, --linear-batch, --finetune-epochs, --finetune-batch and "
                     "--batch-size must be positive");

  Evaluation ev(o);
  ev.load_student();
  ev.setup_device();
  ev.setup_input();
  ev.open_data();
  fs::create_directories(o.out);
  spdlog::info("[eval] {} ({}) on {} {} ({} classes, {} evaluation images{}); {} px, normalisation {}", ev.source,
               ev.arch, ev.val_opts.format, ev.val_opts.root, ev.num_classes(), ev.val_set->size(),
               ev.train_set ? fmt::format(", {} training images", ev.train_set->size()) : "", ev.image_size,
               ev.norm_source);

  EvalReport rep;
  rep.student = ev.source;
  rep.arch = ev.arch;
  rep.dataset = ev.val_opts.format + ":" + ev.val_opts.root;
  rep.train_samples = ev.train_set ? ev.train_set->size() : 0;
  rep.val_samples = ev.val_set->size();
  rep.num_classes = ev.num_classes();
  rep.out = o.out;
  for (const auto& p : o.protocols) {
    const auto started = Clock::now();
    ProtocolResult r = p == "linear"        ? ev.linear()
                       : p == "linear-fast" ? ev.linear_fast()
                       : p == "zero-shot"   ? ev.zero_shot()
                       : p == "finetune"    ? ev.finetune()
                                            : ev.knn();
    r.seconds = seconds_since(started);
    spdlog::info("[eval] {}: top-1 {:.2f}%, top-5 {:.2f}% ({:.1f} s)", r.protocol, r.top1, r.top5, r.seconds);
    rep.results.push_back(std::move(r));
    write_results(rep, ev);  // after every protocol, so a long run keeps what it measured
  }
  if (!o.export_classifier.empty()) ev.export_classifier();
  return rep;
}

}  // namespace lgd::eval
