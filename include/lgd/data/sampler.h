#pragma once
// Which sample indices a process visits in an epoch: PyTorch's DistributedSampler semantics
// (permutation drawn from torch.randperm with a generator seeded seed + epoch, padding by
// repetition or dropping the tail so every rank gets the same count, rank r taking every
// world-th index from r), with a start position for exact resume within an epoch.
#include <cstdint>
#include <vector>

namespace lgd::data {

struct SamplerOptions {
  std::int64_t dataset_size = 0;
  std::int64_t rank = 0;
  std::int64_t world_size = 1;
  std::int64_t seed = 0;
  bool shuffle = true;
  bool drop_last = false;  // drop the tail that does not divide by world_size (else pad)
  // false: no padding and no dropping; rank r takes every world-th index from r, so ranks
  // may get counts differing by one (evaluation: each sample counted exactly once).
  bool even = true;
};

class DistributedSampler {
 public:
  // UsageError for an empty dataset or a rank outside [0, world_size).
  explicit DistributedSampler(SamplerOptions options);

  // Samples of this rank per epoch (equal on every rank unless even is false).
  std::int64_t num_samples() const { return num_samples_; }

  // This rank's indices for `epoch`, from position `start` on (0 <= start <= num_samples()).
  // Identical to Python's list(DistributedSampler(...)) after set_epoch(epoch), minus the
  // first `start` entries.
  std::vector<std::int64_t> indices(std::int64_t epoch, std::int64_t start = 0) const;

 private:
  SamplerOptions options_;
  std::int64_t num_samples_ = 0;
};

}  // namespace lgd::data
