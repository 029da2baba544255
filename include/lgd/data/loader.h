#pragma once
// The loader: worker threads decode and augment samples into a bounded window of batches
// (uint8 [B, S, S, 3], in pinned memory when asked and CUDA is present) that the training
// thread takes in order.
//
// Work is handed out per sample, not per batch: every worker takes the next sample of the
// window, so one slow file holds up a single worker while the others fill the rest of the
// batch and the batches after it. Each sample's random draws come from (seed, epoch,
// dataset index), so a batch's content is the same for any number of workers and any
// timing. An unreadable sample is logged once with its path, replaced by a sample chosen
// from (seed, epoch, index, attempt), and counted; more than max_bad_fraction of an epoch
// stops the run. Any other error in a worker reaches the caller of next().
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "lgd/data/dataset.h"
#include "lgd/data/photometric.h"
#include "lgd/data/transforms.h"

namespace lgd::data {

struct LoaderOptions {
  std::int64_t batch_size = 256;
  int workers = 0;  // 0: one per core
  std::uint64_t seed = 0;
  bool shuffle = true;
  bool drop_last = true;  // drop an epoch's last incomplete batch
  std::int64_t rank = 0;
  std::int64_t world_size = 1;
  // Gradient accumulation: each rank's batches come from shards_per_rank virtual replicas
  // (rank r, micro-batch j reads replica r x shards_per_rank + j of world_size x
  // shards_per_rank), so N ranks x accumulation A see the same batches as 1 rank x N*A.
  std::int64_t shards_per_rank = 1;
  // Evaluation (drop_last false): shard without padding, each sample seen once over ranks.
  bool even_shards = true;
  int prefetch_batches = 0;  // batches decoded ahead; 0: max(2, workers / 4 + 2)
  bool pin_memory = false;   // honoured when CUDA is available
  double max_bad_fraction = 0.01;
  // > 0: epoch e draws its views (and bad-sample replacements) as epoch e mod view_cycle
  // does, in epoch e's sample order: the views a teacher.cache of view_cycle views holds.
  std::int64_t view_cycle = 0;
};

struct Batch {
  at::Tensor images;   // uint8 [B, S, S, 3]
  at::Tensor labels;   // int64 [B]
  at::Tensor indices;  // int64 [B]: the dataset index each row was made from
  // int64 [B]: the dataset index the sampler chose for each row (differs from `indices`
  // where an unreadable sample was replaced); the row is a function of (seed, epoch, it).
  at::Tensor sampled;
  // float [B, kPhotometricParams] on the host when the view leaves its colour jitter,
  // grayscale and blur to the device (ViewOptions::photometric_on_device); else undefined.
  at::Tensor photometric;
  std::int64_t epoch = 0;
  std::int64_t step = 0;  // position of the batch within the epoch
  std::int64_t bad = 0;   // replaced samples in this batch
};

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, Transform transform, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  std::int64_t batches_per_epoch() const;
  std::int64_t samples_per_epoch() const;  // this rank's share (DistributedSampler padding)
  // start_epoch's start_batch must be a multiple of shards_per_rank (a whole step).
  int workers() const;
  const Dataset& dataset() const;

  // Starts (or restarts) an epoch at batch `start_batch`; batches of an unfinished epoch
  // are dropped.
  void start_epoch(std::int64_t epoch, std::int64_t start_batch = 0);

  // The next batch of the epoch in order, or nullopt at its end. Rethrows a worker's error.
  std::optional<Batch> next();

  // Samples replaced in the current epoch so far.
  std::int64_t bad_samples() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace lgd::data
