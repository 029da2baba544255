#include "lgd/engine/metrics.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"

namespace lgd::engine {

namespace {

// The "step" of one metrics.jsonl record, or -1 when the line is not a whole record (a line
// cut short by a kill).
std::int64_t record_step(const std::string& line) {
  if (line.empty() || line.front() != '{' || line.back() != '}') return -1;
  const auto at = line.find("\"step\": ");
  if (at == std::string::npos) return -1;
  return std::strtoll(line.c_str() + at + 8, nullptr, 10);
}

// Keeps the whole records of steps <= `step`; written through a temporary file.
void truncate_after(const std::string& path, std::int64_t step) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  std::string kept, line;
  std::size_t dropped = 0;
  while (std::getline(in, line)) {
    const std::int64_t s = record_step(line);
    if (s >= 0 && s <= step)
      kept += line + "\n";
    else
      ++dropped;
  }
  if (dropped == 0 && !in.bad()) return;
  write_file_atomic(path, kept);
}

}  // namespace

MetricsLog::MetricsLog(const std::string& run_dir, std::int64_t resumed_step)
    : jsonl_path_((std::filesystem::path(run_dir) / "metrics.jsonl").string()) {
  // A run directory used before: its records after `resumed_step` are dropped, here and (by a
  // restart event) in TensorBoard's view.
  const bool used = resumed_step >= 0 && std::filesystem::exists(jsonl_path_);
  if (used) truncate_after(jsonl_path_, resumed_step);
  jsonl_ = std::fopen(jsonl_path_.c_str(), "ab");
  if (!jsonl_) throw IoError(jsonl_path_ + ": cannot open for appending");
  events_ = std::make_unique<EventWriter>((std::filesystem::path(run_dir) / "tb").string());
  if (used) events_->restart(resumed_step + 1);
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
