#include "lgd/engine/metrics.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "lgd/core/errors.h"

namespace lgd::engine {

MetricsLog::MetricsLog(const std::string& run_dir)
    : jsonl_path_((std::filesystem::path(run_dir) / "metrics.jsonl").string()) {
  jsonl_ = std::fopen(jsonl_path_.c_str(), "ab");
  if (!jsonl_) throw IoError(jsonl_path_ + ": cannot open for appending");
  events_ = std::make_unique<EventWriter>((std::filesystem::path(run_dir) / "tb").string());
}

MetricsLog::~MetricsLog() {
  if (jsonl_) std::fclose(jsonl_);
}

void MetricsLog::write(const std::string& kind, std::int64_t step, std::int64_t epoch,
                       const Scalars& scalars) {
  const double now = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  std::fprintf(jsonl_, "{\"kind\": \"%s\", \"step\": %lld, \"epoch\": %lld, \"time\": %.3f",
               kind.c_str(), static_cast<long long>(step), static_cast<long long>(epoch), now);
  for (const auto& [name, value] : scalars) {
    if (std::isfinite(value))
      std::fprintf(jsonl_, ", \"%s\": %.9g", name.c_str(), value);
    else
      std::fprintf(jsonl_, ", \"%s\": null", name.c_str());
    events_->scalar(kind + "/" + name, value, step);
  }
  std::fprintf(jsonl_, "}\n");
  flush();
}

void MetricsLog::flush() {
  std::fflush(jsonl_);
  events_->flush();
}

}  // namespace lgd::engine
