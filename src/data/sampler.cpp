#include "lgd/data/sampler.h"

#include <torch/torch.h>

#include "lgd/core/errors.h"

namespace lgd::data {

DistributedSampler::DistributedSampler(SamplerOptions options) : options_(options) {
  const auto n = options.dataset_size, world = options.world_size;
  if (n <= 0) throw UsageError("sampler: the dataset is empty");
  if (world < 1 || options.rank < 0 || options.rank >= world)
    throw UsageError("sampler: rank " + std::to_string(options.rank) + " is outside [0, " +
                     std::to_string(world) + ")");
  if (!options.even) {
    num_samples_ = (n - options.rank + world - 1) / world;
  } else if (options.drop_last && n % world != 0) {
    num_samples_ = (n - world + world - 1) / world;  // ceil((n - world) / world)
  } else {
    num_samples_ = (n + world - 1) / world;
  }
  if (num_samples_ <= 0 && options.even)
    throw UsageError("sampler: " + std::to_string(n) + " samples cannot be split over " +
                     std::to_string(world) + " ranks with drop_last");
}

std::vector<std::int64_t> DistributedSampler::indices(std::int64_t epoch,
                                                      std::int64_t start) const {
  if (start < 0 || start > num_samples_)
    throw UsageError("sampler: start position " + std::to_string(start) + " is outside [0, " +
                     std::to_string(num_samples_) + "]");
  const std::int64_t n = options_.dataset_size;
  std::vector<std::int64_t> order(n);
  if (options_.shuffle) {
    // torch.Generator().manual_seed(seed + epoch); torch.randperm(n, generator=g)
    auto generator =
        at::detail::createCPUGenerator(static_cast<std::uint64_t>(options_.seed + epoch));
    const auto perm = torch::randperm(n, generator, torch::kInt64);
    const auto* p = perm.data_ptr<std::int64_t>();
    std::copy(p, p + n, order.begin());
  } else {
    for (std::int64_t i = 0; i < n; ++i) order[i] = i;
  }
  const std::int64_t total = options_.even ? num_samples_ * options_.world_size : n;
  if (total > n) {  // pad by repeating from the start
    for (std::int64_t i = 0; static_cast<std::int64_t>(order.size()) < total; ++i)
      order.push_back(order[i % n]);
  } else {
    order.resize(total);
  }
  std::vector<std::int64_t> mine;
  mine.reserve(num_samples_ - start);
  for (std::int64_t i = options_.rank + start * options_.world_size; i < total;
       i += options_.world_size)
    mine.push_back(order[i]);
  return mine;
}

}  // namespace lgd::data
