// lgd eval --protocol zero-shot: the student's projected, normalised feature against the
// Textual Semantics Bank (--bank, the run's tsb.safetensors, or built with --teacher).
#include <filesystem>

#include "evaluation.h"
#include "lgd/core/errors.h"
#include "lgd/core/logging.h"
#include "lgd/distill/teacher.h"
#include "lgd/eval/probe.h"

namespace lgd::eval {
namespace fs = std::filesystem;

text::TextBank Evaluation::find_tsb() {
  if (!o.bank.empty()) {
    spdlog::info("[eval] zero-shot TSB from {}", o.bank);
    return text::load_text_bank(o.bank);
  }
  if (!o.checkpoint.empty() || meta.count("lgd_checkpoint")) {
    const fs::path ck = fs::absolute(!o.checkpoint.empty() ? o.checkpoint : o.weights);
    for (const auto& dir : {ck.parent_path(), ck.parent_path().parent_path()}) {
      const auto file = dir / "tsb.safetensors";
      if (fs::is_regular_file(file)) {
        spdlog::info("[eval] zero-shot TSB of the run: {}", file.string());
        return text::load_text_bank(file.string());
      }
    }
  }
  if (o.teacher.empty())
    throw UsageError("lgd eval: zero-shot needs a TSB: --bank FILE, a checkpoint whose run folder holds "
                     "tsb.safetensors, or --teacher DIR to build one");
  auto teacher = distill::Teacher::load(o.teacher);
  const auto& m = teacher->manifest();
  std::vector<std::string> templates;
  if (!o.templates.empty())
    templates = text::read_templates(o.templates);
  else if (!m.templates.empty())
    templates = text::read_templates((fs::path(teacher->dir()) / m.templates).string());
  else
    templates = text::default_templates();
  spdlog::info("[eval] building the zero-shot TSB with teacher {}: {} classes x {} templates", m.name,
               val_set->num_classes(), templates.size());
  auto bank = text::build_text_bank(val_set->class_names(), templates,
                                    [&](const std::vector<std::string>& t) { return teacher->encode_texts(t); });
  bank.teacher = m.name;
  return bank;
}

ProtocolResult Evaluation::zero_shot() {
  ProtocolResult r;
  r.protocol = "zero-shot";
  if (!head)
    throw UsageError("lgd eval: zero-shot needs the student's projection head: evaluate an lgd checkpoint or "
                     "weights exported with --with-head (" + source + " has no head.* keys)");
  const auto bank = find_tsb();
  const auto D = head->children().back()->parameters()[0].size(0);
  if (bank.weights.size(0) != D)
    throw IoError("zero-shot: the TSB has width " + std::to_string(bank.weights.size(0)) + ", the student's head " +
                  std::to_string(D) + " (built with another teacher?)");
  if (bank.weights.size(1) != num_classes())
    throw IoError("zero-shot: the TSB has " + std::to_string(bank.weights.size(1)) + " classes, the evaluation set " +
                  val_opts.root + " " + std::to_string(num_classes()) + " (expected the same classes in the same order)");
  const auto& va = val_features(&r.features);
  torch::Tensor scores;
  {
    torch::NoGradGuard no_grad;
    scores = zero_shot_scores(head->forward(va.x.to(device)), bank.weights);
  }
  finish(r, scores, va.labels);
  r.details["tsb_teacher"] = bank.teacher;
  r.details["templates"] = bank.templates.size();
  return r;
}

}  // namespace lgd::eval
