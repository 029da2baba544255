#include "lgd/data/loader.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "lgd/core/errors.h"
#include "lgd/core/torch_compat.h"
#include "lgd/data/sampler.h"

namespace lgd::data {
namespace {

constexpr int kMaxReplacementAttempts = 100;

struct PendingBatch {
  torch::Tensor images, labels, indices, sampled, photometric;
  std::int64_t size = 0;
  std::int64_t filled = 0;
  std::int64_t bad = 0;
};

}  // namespace

struct Loader::State {
  std::shared_ptr<const Dataset> dataset;
  Transform transform;
  LoaderOptions options;
  std::vector<DistributedSampler> samplers;  // one per virtual replica of this rank
  std::int64_t samples_per_epoch = 0;
  int prefetch = 2;
  std::vector<std::thread> threads;

  mutable std::mutex mutex;
  std::condition_variable work_cv, ready_cv;
  bool stop = false;
  bool active = false;
  std::uint64_t generation = 0;
  std::int64_t epoch = 0;
  std::int64_t first_batch = 0;  // batch number of order[0]
  std::vector<std::int64_t> order;
  std::int64_t total_slots = 0;
  std::int64_t next_slot = 0;
  std::int64_t consumed = 0;  // batches handed out in this run
  std::int64_t run_batches = 0;
  std::map<std::int64_t, std::shared_ptr<PendingBatch>> pending;
  std::int64_t bad = 0;
  std::exception_ptr error;
  std::set<std::int64_t> known_bad;  // dataset indices already logged

  State(std::shared_ptr<const Dataset> ds, Transform t, LoaderOptions o)
      : dataset(std::move(ds)),
        transform(std::move(t)),
        options(o) {
    const std::int64_t a = o.shards_per_rank;
    for (std::int64_t j = 0; j < a; ++j) {
      SamplerOptions so{dataset->size(), o.rank * a + j, o.world_size * a, static_cast<std::int64_t>(o.seed),
                        o.shuffle, false};
      so.even = o.even_shards;
      samplers.emplace_back(so);
      samples_per_epoch += samplers.back().num_samples();
    }
  }

  std::int64_t batch_size_of(std::int64_t run_batch) const {
    const std::int64_t B = options.batch_size;
    return std::min(B, total_slots - run_batch * B);
  }

  // Makes the sample for `index` (or its replacement) into `out`; returns (label, index used,
  // replaced).
  // `params` (kPhotometricParams floats, or null): where the draw of the photometric ops goes.
  std::tuple<std::int64_t, std::int64_t, bool> produce(std::int64_t index, std::int64_t ep,
                                                       std::uint8_t* out, float* params) {
    const std::int64_t n = dataset->size();
    std::int64_t current = index;
    for (int attempt = 0; attempt <= kMaxReplacementAttempts; ++attempt) {
      if (attempt > 0) {
        SampleRng pick(options.seed, ep, index, -attempt);
        current = pick.integer(0, n);
      }
      bool skip = false;
      {
        std::lock_guard<std::mutex> lock(mutex);
        skip = known_bad.count(current) != 0;
      }
      if (!skip) {
        try {
          auto source = dataset->open(current);
          SampleRng rng(options.seed, ep, current, attempt);
          const ViewDraw draw = transform.apply(*source, rng, out);
          if (params) photometric_params(draw, params);
          return {dataset->label(current), current, attempt > 0};
        } catch (const BadSample& e) {
          std::lock_guard<std::mutex> lock(mutex);
          if (known_bad.insert(current).second) {
            spdlog::warn("[data] skipping unreadable sample: {}", e.what());
          }
        }
      }
    }
    throw IoError(dataset->describe(index) + ": no readable replacement found in " +
                  std::to_string(kMaxReplacementAttempts) + " tries (is most of the dataset unreadable?)");
  }

  // Batch memory comes from a small pool: a buffer is reused once nothing outside the pool
  // refers to it: no other handle to its TensorImpl (use_count) and no other tensor on its
  // storage (views), which spares the page faults of fresh memory.
  std::vector<torch::Tensor> image_pool;

  torch::Tensor image_buffer(std::int64_t n, std::int64_t S) {
    for (const auto& t : image_pool) {
      if (t.size(0) == n && t.use_count() == 1 && t.storage().use_count() == 1) return t;
    }
    auto u8 = torch::TensorOptions().dtype(torch::kUInt8);
    if (options.pin_memory && compat::cuda_available()) u8 = u8.pinned_memory(true);
    auto t = torch::empty({n, S, S, 3}, u8);
    if (static_cast<int>(image_pool.size()) < prefetch + 4) image_pool.push_back(t);
    return t;
  }

  void worker() {
    const std::int64_t S = transform.size();
    const std::size_t sample_bytes = static_cast<std::size_t>(S) * S * 3;
    std::unique_lock<std::mutex> lock(mutex);
    while (true) {
      work_cv.wait(lock, [&] {
        return stop || (active && !error && next_slot < total_slots &&
                        next_slot / options.batch_size < consumed + prefetch);
      });
      if (stop) return;
      const std::int64_t slot = next_slot++;
      const std::uint64_t gen = generation;
      const std::int64_t b = slot / options.batch_size;
      const std::int64_t pos = slot % options.batch_size;
      auto& entry = pending[b];
      if (!entry) {
        entry = std::make_shared<PendingBatch>();
        entry->size = batch_size_of(b);
        entry->images = image_buffer(entry->size, S);
        entry->labels = torch::empty({entry->size}, torch::kInt64);
        entry->indices = torch::empty({entry->size}, torch::kInt64);
        entry->sampled = torch::empty({entry->size}, torch::kInt64);
        if (transform.options().photometric_on_device)
          entry->photometric = torch::empty({entry->size, kPhotometricParams}, torch::kFloat32);
      }
      const std::shared_ptr<PendingBatch> batch = entry;
      const std::int64_t index = order[slot];
      const std::int64_t ep = options.view_cycle > 0 ? epoch % options.view_cycle : epoch;
      lock.unlock();

      std::exception_ptr failure;
      std::int64_t label = 0, used = index;
      bool replaced = false;
      try {
        std::tie(label, used, replaced) =
            produce(index, ep, batch->images.data_ptr<std::uint8_t>() + pos * sample_bytes,
                    batch->photometric.defined()
                        ? batch->photometric.data_ptr<float>() + pos * kPhotometricParams
                        : nullptr);
        batch->labels.data_ptr<std::int64_t>()[pos] = label;
        batch->indices.data_ptr<std::int64_t>()[pos] = used;
        batch->sampled.data_ptr<std::int64_t>()[pos] = index;
      } catch (const Error&) {
        failure = std::current_exception();
      } catch (const std::exception& e) {
        failure = std::make_exception_ptr(
            IoError(dataset->describe(index) + ": " + std::string(e.what())));
      }

      lock.lock();
      if (gen != generation) continue;
      if (failure) {
        if (!error) error = failure;
        ready_cv.notify_all();
        continue;
      }
      if (replaced) {
        ++batch->bad;
        ++bad;
        const double limit = options.max_bad_fraction * static_cast<double>(samples_per_epoch);
        if (static_cast<double>(bad) > limit && !error) {
          error = std::make_exception_ptr(IoError(
              options.max_bad_fraction <= 0
                  ? "data: " + dataset->describe(index) + ": not a readable image (every sample must be readable here)"
                  : "data: " + std::to_string(bad) + " unreadable samples in epoch " + std::to_string(ep) + " of " +
                        std::to_string(samples_per_epoch) + ", more than data.max_bad_fraction = " +
                        fmt::format("{}", options.max_bad_fraction) + " allows (last: " + dataset->describe(index) + ")"));
        }
      }
      if (++batch->filled == batch->size) ready_cv.notify_all();
      if (error) ready_cv.notify_all();
    }
  }
};

Loader::Loader(std::shared_ptr<const Dataset> dataset, Transform transform, LoaderOptions options) {
  if (!dataset || dataset->size() == 0) throw IoError("data: empty dataset");
  if (options.batch_size < 1) throw UsageError("data: batch size must be positive");
  if (options.shards_per_rank < 1 || (options.shards_per_rank > 1 && !options.drop_last))
    throw UsageError("data: shards_per_rank must be 1, or more with drop_last");
  int workers = options.workers;
  if (workers <= 0) workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.workers = workers;
  state_ = std::make_unique<State>(std::move(dataset), std::move(transform), options);
  state_->prefetch =
      options.prefetch_batches > 0 ? options.prefetch_batches : std::max(2, workers / 4 + 2);
  if (batches_per_epoch() == 0)
    throw IoError("data: " + std::to_string(samples_per_epoch()) + " samples per process is less "
                  "than one batch of " + std::to_string(options.batch_size) + " (drop_last)");
  for (int i = 0; i < workers; ++i) state_->threads.emplace_back([s = state_.get()] { s->worker(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stop = true;
  }
  state_->work_cv.notify_all();
  for (auto& t : state_->threads) t.join();
}

std::int64_t Loader::samples_per_epoch() const { return state_->samples_per_epoch; }

std::int64_t Loader::batches_per_epoch() const {
  const std::int64_t B = state_->options.batch_size, a = state_->options.shards_per_rank;
  if (a > 1) return a * (state_->samplers[0].num_samples() / B);
  const std::int64_t n = samples_per_epoch();
  return state_->options.drop_last ? n / B : (n + B - 1) / B;
}

int Loader::workers() const { return state_->options.workers; }

const Dataset& Loader::dataset() const { return *state_->dataset; }

void Loader::start_epoch(std::int64_t epoch, std::int64_t start_batch) {
  const std::int64_t total_batches = batches_per_epoch();
  if (start_batch < 0 || start_batch > total_batches)
    throw UsageError("data: start batch " + std::to_string(start_batch) + " outside [0, " +
                     std::to_string(total_batches) + "]");
  const std::int64_t B = state_->options.batch_size, a = state_->options.shards_per_rank;
  if (start_batch % a != 0)
    throw UsageError("data: start batch " + std::to_string(start_batch) + " is not a multiple of the " +
                     std::to_string(a) + " shards per rank");
  std::vector<std::int64_t> order;
  if (a == 1) {
    order = state_->samplers[0].indices(epoch, start_batch * B);
  } else {
    // Step k takes batch k of each virtual replica in turn.
    std::vector<std::vector<std::int64_t>> shard;
    for (const auto& s : state_->samplers) shard.push_back(s.indices(epoch, (start_batch / a) * B));
    const std::int64_t steps = (total_batches - start_batch) / a;
    order.reserve(static_cast<std::size_t>(steps * a * B));
    for (std::int64_t k = 0; k < steps; ++k)
      for (const auto& list : shard) order.insert(order.end(), list.begin() + k * B, list.begin() + (k + 1) * B);
  }
  const std::int64_t run_batches = total_batches - start_batch;
  const std::int64_t slots = std::min<std::int64_t>(static_cast<std::int64_t>(order.size()), run_batches * B);
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    ++state_->generation;
    state_->pending.clear();
    state_->order = std::move(order);
    state_->epoch = epoch;
    state_->first_batch = start_batch;
    state_->total_slots = slots;
    state_->run_batches = run_batches;
    state_->next_slot = 0;
    state_->consumed = 0;
    state_->bad = 0;
    state_->error = nullptr;
    state_->active = true;
  }
  state_->work_cv.notify_all();
}

std::optional<Batch> Loader::next() {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mutex);
  if (!s.active) throw UsageError("data: next() before start_epoch()");
  if (s.error) std::rethrow_exception(s.error);
  if (s.consumed >= s.run_batches) return std::nullopt;
  const std::int64_t b = s.consumed;
  s.ready_cv.wait(lock, [&] {
    if (s.error) return true;
    const auto it = s.pending.find(b);
    return it != s.pending.end() && it->second->filled == it->second->size;
  });
  if (s.error) std::rethrow_exception(s.error);
  const auto entry = s.pending[b];
  s.pending.erase(b);
  ++s.consumed;
  lock.unlock();
  s.work_cv.notify_all();
  Batch batch;
  batch.images = entry->images;
  batch.labels = entry->labels;
  batch.indices = entry->indices;
  batch.sampled = entry->sampled;
  batch.photometric = entry->photometric;
  batch.epoch = s.epoch;
  batch.step = s.first_batch + b;
  batch.bad = entry->bad;
  return batch;
}

std::int64_t Loader::bad_samples() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->bad;
}

}  // namespace lgd::data
