#pragma once
// The teacher-embedding cache that `lgd reinforce` writes and `lgd train --set
// teacher.cache=DIR` reads: the frozen teacher's L2-normalised image embeddings of K training
// views of every image, view k of image i being the view `lgd train` draws for (data.seed,
// epoch k, index i).
//
// A cache folder holds
//   embeddings.bin   [K, N, D] row-major, little-endian float16 | bfloat16 | float32
//                    (numpy.memmap reads it); memory-mapped when read, never loaded whole
//   manifest.json    what the embeddings depend on, written last: a folder without it is
//                    not a cache (an interrupted `lgd reinforce` leaves plan.json instead)
//   plan.json        the manifest of the cache being written; progress.<r>-of-<W>.json
//                    says how far process r of W got (both kept for the record)
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lgd::config {
struct RunConfig;
}
namespace lgd::data {
class Dataset;
}
namespace lgd::distill {
class Teacher;
}

namespace lgd::engine {

// What a cache's embeddings depend on, as (dotted field, value) pairs in the order they are
// compared: the format, the teacher (name, digest of its manifest and image encoder), the
// embedding width, the dataset (format, root, split, size, digest of its file list, labels
// and file sizes), the image size, every key of the training view (where the colour work
// runs included) and the data seed.
using CacheFields = std::vector<std::pair<std::string, std::string>>;
CacheFields cache_fields(const config::RunConfig& cfg, const distill::Teacher& teacher, const data::Dataset& dataset,
                         bool photometric_on_device);

// Bytes per stored value of a cache dtype (float16 | bfloat16 | float32); ConfigError
// naming `option` for another name.
std::int64_t cache_dtype_bytes(const std::string& dtype, const std::string& option);

// The first field of `expected` whose value differs in `actual` (or is missing there), as
// "field: <actual> in the cache, <expected> in this run"; empty when all agree.
std::string first_difference(const CacheFields& actual, const CacheFields& expected);

class EmbeddingCache {
 public:
  // Opens DIR (manifest.json and the mapped embeddings.bin). IoError naming the folder when
  // it is missing, incomplete (an interrupted lgd reinforce) or its file has the wrong size.
  static std::unique_ptr<EmbeddingCache> open(const std::string& dir);
  ~EmbeddingCache();
  EmbeddingCache(const EmbeddingCache&) = delete;
  EmbeddingCache& operator=(const EmbeddingCache&) = delete;

  const std::string& dir() const { return dir_; }
  std::int64_t views() const { return views_; }
  std::int64_t size() const { return size_; }
  std::int64_t dim() const { return dim_; }
  const std::string& dtype() const { return dtype_; }
  const CacheFields& fields() const { return fields_; }

  // float32 [B, D] on the CPU: the embeddings of view `view` of the dataset indices in
  // `indices` (int64 [B]). float32 caches give the stored values bit for bit; float16 and
  // bfloat16 ones are widened and normalised again.
  at::Tensor rows(std::int64_t view, const at::Tensor& indices) const;

 private:
  EmbeddingCache() = default;
  std::string dir_, dtype_;
  std::int64_t views_ = 0, size_ = 0, dim_ = 0, bytes_ = 0;
  CacheFields fields_;
  void* map_ = nullptr;
  std::size_t map_size_ = 0;
};

struct ReinforceArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::int64_t views = 1;
  std::string out;
  std::string dtype = "float16";
};

// `lgd reinforce`: this process's share of the cache (process r of W takes every W-th image
// of each view's sample order), resumable; rank 0 writes manifest.json once every process
// has finished. Returns 0, or 130 / 143 after SIGINT / SIGTERM (progress kept).
int reinforce(const ReinforceArgs& args);

}  // namespace lgd::engine
