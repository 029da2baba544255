#include "lgd/engine/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/core/version.h"
#include "lgd/export/safetensors.h"

namespace fs = std::filesystem;

namespace lgd::engine {

models::NamedTensors Checkpoint::section(const std::string& prefix) const {
  return models::with_prefix_removed(tensors, prefix);
}

std::int64_t Checkpoint::integer(const std::string& key, const std::string& source) const {
  const auto it = meta.find(key);
  if (it == meta.end()) throw IoError(source + ": checkpoint has no '" + key + "'");
  try {
    std::size_t used = 0;
    const std::int64_t v = std::stoll(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (...) {
  }
  throw IoError(source + ": checkpoint field '" + key + "' is '" + it->second +
                "', expected an integer");
}

void save_checkpoint(const std::string& path, const Checkpoint& checkpoint) {
  exporting::Metadata meta(checkpoint.meta.begin(), checkpoint.meta.end());
  meta["lgd_checkpoint"] = "1";
  meta["lgd_version"] = version();
  write_file_atomic(path, exporting::safetensors_bytes(checkpoint.tensors, meta));
}

Checkpoint load_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw IoError(path + ": checkpoint not found");
  const std::vector<char> bytes = read_file(path);
  if (!exporting::looks_like_safetensors(bytes))
    throw IoError(path + ": not an lgd checkpoint (expected a safetensors file written by lgd train)");
  auto file = exporting::parse_safetensors(bytes, path);
  if (file.metadata.count("lgd_checkpoint") == 0)
    throw IoError(path + ": a safetensors file but not an lgd checkpoint (no lgd_checkpoint in "
                  "its metadata)");
  Checkpoint c;
  c.tensors = std::move(file.tensors);
  c.meta.insert(file.metadata.begin(), file.metadata.end());
  return c;
}

CheckpointDir::CheckpointDir(std::string dir, int keep) : dir_(std::move(dir)), keep_(std::max(1, keep)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw IoError(dir_ + ": cannot create checkpoint folder (" + ec.message() + ")");
}

std::string CheckpointDir::save(const Checkpoint& checkpoint, std::int64_t step, bool periodic) {
  const std::string last_path = (fs::path(dir_) / "last.ckpt").string();
  save_checkpoint(last_path, checkpoint);
  if (!periodic) return last_path;
  char name[64];
  std::snprintf(name, sizeof name, "step_%010lld.ckpt", static_cast<long long>(step));
  const std::string path = (fs::path(dir_) / name).string();
  save_checkpoint(path, checkpoint);
  // Keep the newest `keep` periodic files (names sort by step).
  std::vector<std::string> periodic_files;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    const std::string n = entry.path().filename().string();
    if (n.rfind("step_", 0) == 0 && entry.path().extension() == ".ckpt")
      periodic_files.push_back(entry.path().string());
  }
  std::sort(periodic_files.begin(), periodic_files.end());
  for (std::size_t i = 0; i + keep_ < periodic_files.size(); ++i) {
    std::error_code ec;
    fs::remove(periodic_files[i], ec);
  }
  return path;
}

std::optional<std::string> CheckpointDir::last() const {
  const fs::path p = fs::path(dir_) / "last.ckpt";
  std::error_code ec;
  if (fs::is_regular_file(p, ec)) return p.string();
  return std::nullopt;
}

}  // namespace lgd::engine
