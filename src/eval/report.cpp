// lgd eval's output: per protocol, <out>/<protocol>_per_class.csv and _confusion.csv; for the
// run, <out>/results.json (nlohmann-json), rewritten after every protocol; the Markdown table.
#include <filesystem>

#include "evaluation.h"
#include "lgd/core/file_io.h"
#include "lgd/core/logging.h"
#include "lgd/core/progress.h"
#include "lgd/core/version.h"
#include "lgd/eval/probe.h"

namespace lgd::eval {
namespace fs = std::filesystem;
namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

void Evaluation::finish(ProtocolResult& r, const torch::Tensor& scores, const torch::Tensor& labels) {
  const auto a = accuracy(scores.cpu(), labels, num_classes());
  r.top1 = a.top1;
  r.top5 = a.top5;
  const auto& names = val_set->class_names();
  const auto counts = per_class(a);
  std::string pc = "class,name,samples,correct,accuracy\n";
  for (std::size_t c = 0; c < counts.size(); ++c) {
    const auto [n, ok] = counts[c];
    pc += fmt::format("{},{},{},{},{}\n", c, csv_field(names[c]), n, ok,
                      n ? fmt::format("{:.4f}", 100.0 * static_cast<double>(ok) / static_cast<double>(n)) : "");
  }
  write_file_atomic((fs::path(o.out) / (r.protocol + "_per_class.csv")).string(), pc);
  std::string cm = "true\\predicted";
  for (const auto& n : names) cm += "," + csv_field(n);
  cm += "\n";
  const auto conf = a.confusion.contiguous();
  const auto C = conf.size(0);
  for (std::int64_t i = 0; i < C; ++i) {
    cm += csv_field(names[static_cast<std::size_t>(i)]);
    for (std::int64_t j = 0; j < C; ++j) cm += "," + std::to_string(conf[i][j].item<std::int64_t>());
    cm += "\n";
  }
  write_file_atomic((fs::path(o.out) / (r.protocol + "_confusion.csv")).string(), cm);
}

void write_results(const EvalReport& rep, const Evaluation& ev) {
  using json = nlohmann::ordered_json;
  json j;
  j["lgd_version"] = version();
  j["student"] = rep.student;
  j["arch"] = rep.arch;
  j["dataset"] = {{"format", ev.val_opts.format},
                  {"train", ev.train_set ? ev.train_opts.root + " (" + ev.train_opts.split + ")" : ""},
                  {"val", ev.val_opts.root + " (" + ev.val_opts.split + ")"},
                  {"train_samples", rep.train_samples},
                  {"val_samples", rep.val_samples},
                  {"num_classes", rep.num_classes},
                  {"subset", ev.subset_key}};
  j["image_size"] = ev.image_size;
  j["mean"] = ev.mean;
  j["std"] = ev.std;
  j["device"] = ev.cuda ? "cuda" : "cpu";
  j["threads"] = torch::get_num_threads();
  j["feature_extraction_seconds"] = json::object();
  for (const auto& [k, v] : ev.extraction_seconds) j["feature_extraction_seconds"][k] = v;
  j["results"] = json::array();
  for (const auto& r : rep.results) {
    json entry{{"protocol", r.protocol}, {"top1", r.top1}, {"top5", r.top5}, {"seconds", r.seconds},
               {"features", r.features}};
    for (const auto& [k, v] : r.details.items()) entry[k] = v;
    j["results"].push_back(std::move(entry));
  }
  write_file_atomic((fs::path(rep.out) / "results.json").string(), j.dump(2) + "\n");
}

std::string format_table(const EvalReport& rep) {
  std::string t = fmt::format("{} ({}) on {}: {} evaluation images, {} classes\n\n", rep.student, rep.arch,
                              rep.dataset, rep.val_samples, rep.num_classes);
  t += "| protocol    |  top-1 |  top-5 |     time | features   |\n";
  t += "|-------------|-------:|-------:|---------:|------------|\n";
  for (const auto& r : rep.results)
    t += fmt::format("| {:<11} | {:>6.2f} | {:>6.2f} | {:>8} | {:<10} |\n", r.protocol, r.top1, r.top5,
                     format_duration(r.seconds), r.features);
  return t;
}

}  // namespace lgd::eval
