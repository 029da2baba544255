#pragma once
// Training checkpoints: named tensors (student, head, optimiser state, method state, RNG
// states) plus string metadata (step, epoch, position in the epoch, resolved config, lgd
// version) in one safetensors file, written to a temporary file, flushed and renamed.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "lgd/models/state_dict.h"

namespace lgd::engine {

struct Checkpoint {
  models::NamedTensors tensors;
  std::map<std::string, std::string> meta;

  // The entries under `prefix` (e.g. "student."), with the prefix removed, in file order.
  models::NamedTensors section(const std::string& prefix) const;
  // meta[key] as an integer; IoError naming `source` when absent or malformed.
  std::int64_t integer(const std::string& key, const std::string& source) const;
};

// Adds meta lgd_checkpoint = "1" and lgd_version, then writes atomically.
void save_checkpoint(const std::string& path, const Checkpoint& checkpoint);

// IoError for a missing, truncated or corrupt file, or a safetensors file that is not an
// lgd checkpoint.
Checkpoint load_checkpoint(const std::string& path);

// A run's checkpoint folder: `last.ckpt` always holds the newest checkpoint; periodic
// saves also go to `step_<step>.ckpt`, of which the newest `keep` are kept.
class CheckpointDir {
 public:
  CheckpointDir(std::string dir, int keep);
  // Returns the path written (the periodic file when periodic, else last.ckpt).
  std::string save(const Checkpoint& checkpoint, std::int64_t step, bool periodic);
  std::optional<std::string> last() const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int keep_;
};

}  // namespace lgd::engine
