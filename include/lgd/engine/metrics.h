#pragma once
// A run's metrics: one JSON object per line in <run dir>/metrics.jsonl and the same scalars
// in TensorBoard event files under <run dir>/tb/ (tag "<kind>/<name>").
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lgd/engine/tensorboard.h"

namespace lgd::engine {

using Scalars = std::vector<std::pair<std::string, double>>;

class MetricsLog {
 public:
  // Appends to metrics.jsonl and starts a new event file. A run resumed from a checkpoint at
  // `resumed_step` (>= 0) first drops the records after that step from metrics.jsonl (they
  // are logged again) and tells TensorBoard to drop its own (EventWriter::restart).
  explicit MetricsLog(const std::string& run_dir, std::int64_t resumed_step = -1);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // {"kind": kind, "step": step, "epoch": epoch, "time": unix seconds, name: value, ...};
  // a non-finite value is written as null.
  void write(const std::string& kind, std::int64_t step, std::int64_t epoch,
             const Scalars& scalars);
  void flush();

 private:
  std::FILE* jsonl_ = nullptr;
  std::string jsonl_path_;
  std::unique_ptr<EventWriter> events_;
};

}  // namespace lgd::engine
