#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <map>
#include <set>

#include "data_test_util.h"
#include "lgd/core/errors.h"
#include "lgd/data/decode.h"
#include "lgd/data/loader.h"
#include "lgd/data/pipeline.h"

namespace lgd::data {
namespace {

using lgd::testing::TempDir;

// An image folder of `per_class` varied JPEGs in each of 3 classes.
std::shared_ptr<const Dataset> jpeg_folder(const TempDir& dir, int per_class) {
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < per_class; ++i)
      lgd::testing::write_pattern(dir / ("c" + std::to_string(c) + "/" + std::to_string(i) + ".jpg"),
                                  40 + i, 30 + c, c * 31 + i);
  DatasetOptions o;
  o.root = dir.str();
  return open_dataset(o);
}

std::vector<Batch> epoch_batches(Loader& loader, std::int64_t epoch, std::int64_t start = 0) {
  loader.start_epoch(epoch, start);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(*b);
  return out;
}

LoaderOptions options(int workers, std::int64_t batch = 4) {
  LoaderOptions o;
  o.batch_size = batch;
  o.workers = workers;
  o.seed = 11;
  return o;
}

Transform mocov2(int size = 24) { return Transform(view_defaults("mocov2", size)); }

TEST(Loader, SameSeedGivesIdenticalBatchesForAnyWorkerCount) {
  TempDir dir("loader_det");
  const auto ds = jpeg_folder(dir, 6);
  Loader one(ds, mocov2(), options(1));
  auto o2 = options(2);
  o2.prefetch_batches = 1;
  Loader two(ds, mocov2(), o2);
  Loader three(ds, mocov2(), options(3));
  for (std::int64_t epoch : {0, 1}) {
    const auto a = epoch_batches(one, epoch), b = epoch_batches(two, epoch),
               c = epoch_batches(three, epoch);
    ASSERT_EQ(a.size(), 4u);  // 18 samples, batch 4, last incomplete batch dropped
    ASSERT_EQ(b.size(), a.size());
    ASSERT_EQ(c.size(), a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].step, static_cast<std::int64_t>(i));
      EXPECT_EQ(a[i].images.sizes(), torch::IntArrayRef({4, 24, 24, 3}));
      EXPECT_EQ(a[i].images.scalar_type(), torch::kUInt8);
      EXPECT_TRUE(torch::equal(a[i].images, b[i].images));
      EXPECT_TRUE(torch::equal(a[i].images, c[i].images));
      EXPECT_TRUE(torch::equal(a[i].indices, b[i].indices));
      EXPECT_TRUE(torch::equal(a[i].labels, c[i].labels));
      for (std::int64_t k = 0; k < 4; ++k) {
        const std::int64_t index = a[i].indices[k].item<std::int64_t>();
        EXPECT_EQ(a[i].labels[k].item<std::int64_t>(), ds->label(index));
        // Each row is the view of its own sample, made here independently.
        auto source = ds->open(index);
        SampleRng rng(11, epoch, index);
        const Image expected = mocov2().apply(*source, rng);
        const auto row = a[i].images[k].contiguous();
        ASSERT_EQ(std::memcmp(row.data_ptr<std::uint8_t>(), expected.pixels.data(), expected.pixels.size()), 0)
            << "batch " << i << " row " << k;
      }
    }
  }
  // Another epoch draws another order and other views.
  const auto e0 = epoch_batches(one, 0), e1 = epoch_batches(one, 1);
  EXPECT_FALSE(torch::equal(e0[0].indices, e1[0].indices));
}

TEST(Loader, StartBatchResumesMidEpochExactly) {
  TempDir dir("loader_resume");
  const auto ds = jpeg_folder(dir, 6);
  Loader loader(ds, mocov2(), options(2));
  const auto whole = epoch_batches(loader, 3);
  const auto tail = epoch_batches(loader, 3, 2);
  ASSERT_EQ(tail.size(), whole.size() - 2);
  for (std::size_t i = 0; i < tail.size(); ++i) {
    EXPECT_EQ(tail[i].step, whole[i + 2].step);
    EXPECT_TRUE(torch::equal(tail[i].images, whole[i + 2].images));
    EXPECT_TRUE(torch::equal(tail[i].indices, whole[i + 2].indices));
  }
  // Restarting in the middle of an epoch drops what was prefetched.
  loader.start_epoch(3);
  ASSERT_TRUE(loader.next().has_value());
  const auto again = epoch_batches(loader, 3);
  EXPECT_TRUE(torch::equal(again[0].images, whole[0].images));
}

// Every index once per epoch over the ranks: with DistributedSampler's padding when the world
// divides the dataset, and with uneven (evaluation) shards when it does not.
TEST(Loader, ShardsCoverEveryIndexExactlyOncePerEpoch) {
  TempDir dir("loader_shard");
  const auto ds = jpeg_folder(dir, 4);  // 12 samples
  for (const auto& [world, even] : std::vector<std::pair<std::int64_t, bool>>{{2, true}, {3, true}, {5, false}, {7, false}}) {
    std::multiset<std::int64_t> seen;
    for (std::int64_t rank = 0; rank < world; ++rank) {
      auto o = options(2, 5);
      o.rank = rank;
      o.world_size = world;
      o.drop_last = false;
      o.even_shards = even;
      Loader loader(ds, Transform(view_defaults("eval", 16)), o);
      for (const auto& b : epoch_batches(loader, 7)) {
        for (std::int64_t k = 0; k < b.indices.size(0); ++k) seen.insert(b.indices[k].item<std::int64_t>());
      }
    }
    ASSERT_EQ(seen.size(), 12u) << "world " << world;
    for (std::int64_t i = 0; i < 12; ++i) EXPECT_EQ(seen.count(i), 1u) << "index " << i << ", world " << world;
  }
}

// N ranks x accumulation A must see the batches 1 rank x N*A would, micro-batch for
// micro-batch: (rank r, micro-batch j) reads virtual replica r*A + j.
TEST(Loader, AccumulationShardsGiveRanksTheBatchesOfAWiderWorld) {
  TempDir dir("loader_accumulate");
  const auto ds = jpeg_folder(dir, 6);  // 18 samples
  auto indices_of = [&](std::int64_t rank, std::int64_t world, std::int64_t accumulate, std::int64_t start) {
    auto o = options(2, 2);
    o.rank = rank;
    o.world_size = world;
    o.shards_per_rank = accumulate;
    Loader loader(ds, Transform(view_defaults("eval", 16)), o);
    std::vector<std::vector<std::int64_t>> out;
    for (const auto& b : epoch_batches(loader, 5, start)) {
      out.emplace_back();
      for (std::int64_t k = 0; k < b.indices.size(0); ++k) out.back().push_back(b.indices[k].item<std::int64_t>());
    }
    return out;
  };
  // The reference: 4 plain ranks (PyTorch's DistributedSampler), 18 -> 5 per rank, 2 batches of 2.
  std::vector<std::vector<std::vector<std::int64_t>>> wide;
  for (std::int64_t q = 0; q < 4; ++q) wide.push_back(indices_of(q, 4, 1, 0));
  ASSERT_EQ(wide[0].size(), 2u);
  for (std::int64_t world : {1, 2}) {
    const std::int64_t a = 4 / world;
    for (std::int64_t r = 0; r < world; ++r) {
      const auto mine = indices_of(r, world, a, 0);
      ASSERT_EQ(static_cast<std::int64_t>(mine.size()), 2 * a) << "world " << world;
      for (std::int64_t k = 0; k < 2; ++k)
        for (std::int64_t j = 0; j < a; ++j)
          EXPECT_EQ(mine[k * a + j], wide[r * a + j][k]) << "world " << world << " rank " << r << " step " << k;
      // Resuming at step 1 (batch a) continues exactly.
      const auto resumed = indices_of(r, world, a, a);
      ASSERT_EQ(static_cast<std::int64_t>(resumed.size()), a);
      for (std::int64_t j = 0; j < a; ++j) EXPECT_EQ(resumed[j], wide[r * a + j][1]);
    }
  }
  auto o = options(1, 2);
  o.shards_per_rank = 2;
  Loader loader(ds, Transform(view_defaults("eval", 16)), o);
  EXPECT_THROW(loader.start_epoch(0, 1), UsageError);  // not a step boundary
}

TEST(Loader, BadFilesAreReplacedCountedAndStopTheRunPastTheThreshold) {
  TempDir dir("loader_bad");
  for (int i = 0; i < 17; ++i)
    lgd::testing::write_pattern(dir / ("a/" + std::to_string(i) + ".jpg"), 32, 32, i);
  // Cut inside the entropy-coded data: the header reads, the pixels end early.
  lgd::testing::write_pattern(dir / "big.jpg", 200, 150, 3);
  auto jpeg = lgd::testing::read_bytes(dir / "big.jpg");
  jpeg.resize(jpeg.size() * 7 / 10);
  lgd::testing::write_bytes(dir / "a/truncated.jpg", jpeg);
  lgd::testing::write_bytes(dir / "a/zero.jpg", {});
  lgd::testing::write_text(dir / "a/text.jpg", "this is not a JPEG\n");
  DatasetOptions dopts;
  dopts.root = dir.str();
  std::shared_ptr<const Dataset> ds = open_dataset(dopts);
  ASSERT_EQ(ds->size(), 20);
  std::set<std::string> bad_paths{dir / "a/truncated.jpg", dir / "a/zero.jpg", dir / "a/text.jpg"};

  auto o = options(2, 5);
  o.shuffle = false;
  o.max_bad_fraction = 0.5;
  Loader loader(ds, mocov2(), o);
  for (std::int64_t epoch : {0, 1}) {
    std::int64_t bad_in_batches = 0;
    for (const auto& b : epoch_batches(loader, epoch)) {
      bad_in_batches += b.bad;
      for (std::int64_t k = 0; k < b.indices.size(0); ++k)
        EXPECT_EQ(bad_paths.count(ds->describe(b.indices[k].item<std::int64_t>())), 0u);
    }
    EXPECT_EQ(loader.bad_samples(), 3) << "epoch " << epoch;
    EXPECT_EQ(bad_in_batches, 3);
  }

  o.max_bad_fraction = 0.01;
  Loader strict(ds, mocov2(), o);
  strict.start_epoch(0);
  try {
    while (strict.next()) {
    }
    FAIL() << "expected the bad-sample threshold to stop the epoch";
  } catch (const IoError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("more than data.max_bad_fraction"), std::string::npos) << m;
    EXPECT_NE(m.find(dir / "a/"), std::string::npos) << m;
  }
}

// A dataset whose sample 3 fails with an error that is not a bad file.
class FailingDataset final : public Dataset {
 public:
  FailingDataset() { class_names_ = {"x"}; }
  std::int64_t size() const override { return 8; }
  std::int64_t label(std::int64_t) const override { return 0; }
  std::string describe(std::int64_t i) const override { return "sample-" + std::to_string(i); }
  std::unique_ptr<ImageSource> open(std::int64_t i) const override {
    if (i == 3) throw std::runtime_error("device not ready");
    return memory_source(Image(8, 8));
  }
};

TEST(Loader, WorkerErrorsReachTheCallerWithTheSampleName) {
  auto o = options(2, 2);
  o.shuffle = false;
  Loader loader(std::make_shared<FailingDataset>(), mocov2(8), o);
  loader.start_epoch(0);
  try {
    while (loader.next()) {
    }
    FAIL() << "expected the worker's error";
  } catch (const IoError& e) {
    EXPECT_STREQ(e.what(), "sample-3: device not ready");
  }
}

TEST(Loader, StopsCleanlyWhenDestroyedMidEpochOrBeforeStarting) {
  TempDir dir("loader_stop");
  const auto ds = jpeg_folder(dir, 8);
  { Loader idle(ds, mocov2(), options(2)); }
  {
    Loader busy(ds, mocov2(), options(2, 2));
    busy.start_epoch(0);
    ASSERT_TRUE(busy.next().has_value());
  }
  SUCCEED();
}

TEST(Loader, ToModelInputNormalisesOnTheDevice) {
  auto images = torch::randint(0, 256, {2, 5, 4, 3}, torch::kUInt8);
  const std::vector<double> mean{0.48145466, 0.4578275, 0.40821073}, sd{0.26862954, 0.26130258, 0.27577711};
  auto x = to_model_input(images, mean, sd, torch::Device(torch::kCPU), false);
  auto expected = images.permute({0, 3, 1, 2}).to(torch::kFloat32) / 255.0;
  expected = (expected - torch::tensor(mean, torch::kFloat32).view({1, 3, 1, 1}).to(torch::kFloat32)) /
             torch::tensor(sd, torch::kFloat32).view({1, 3, 1, 1}).to(torch::kFloat32);
  EXPECT_EQ(x.sizes(), torch::IntArrayRef({2, 3, 5, 4}));
  EXPECT_TRUE(x.is_contiguous());
  EXPECT_TRUE(torch::allclose(x, expected, 1e-5, 1e-5));
  auto cl = to_model_input(images, mean, sd, torch::Device(torch::kCPU), true);
  EXPECT_TRUE(cl.is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::allclose(cl, expected, 1e-5, 1e-5));
}

// data.photometric: device. The loader's batch is the crop and flip of the very draws the
// host view makes, with each sample's colour parameters beside it; to_model_input applies
// them before normalising.
TEST(Loader, ColourWorkLeftToTheDeviceKeepsEachSamplesDraws) {
  TempDir dir("loader_photometric");
  const auto ds = jpeg_folder(dir, 6);
  auto device_view = view_defaults("mocov2", 24);
  device_view.photometric_on_device = true;
  Loader on_device(ds, Transform(device_view), options(2));
  Loader host(ds, mocov2(), options(2));
  const auto a = epoch_batches(on_device, 1), b = epoch_batches(host, 1);
  ASSERT_EQ(a.size(), b.size());
  int jittered = 0, grey = 0, blurred = 0, plain_samples = 0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    ASSERT_TRUE(a[k].photometric.defined());
    EXPECT_FALSE(b[k].photometric.defined());
    EXPECT_TRUE(torch::equal(a[k].indices, b[k].indices));
    for (std::int64_t i = 0; i < a[k].images.size(0); ++i) {
      const auto index = a[k].indices[i].item<std::int64_t>();
      // The row holds what the host view draws for this sample.
      SampleRng rng(11, 1, index);
      auto src = ds->open(index);
      std::vector<std::uint8_t> pixels(24 * 24 * 3);
      const ViewDraw d = mocov2().apply(*src, rng, pixels.data());
      std::vector<float> row(kPhotometricParams);
      photometric_params(d, row.data());
      const auto got = a[k].photometric[i];
      for (int c = 0; c < kPhotometricParams; ++c) EXPECT_EQ(got[c].item<float>(), row[c]) << c;
      jittered += d.jitter;
      grey += d.grayscale;
      blurred += d.blur;
      // A sample without colour ops: the loader's pixels are the host view's, bit for bit.
      if (!d.jitter && !d.grayscale && !d.blur) {
        ++plain_samples;
        EXPECT_TRUE(torch::equal(a[k].images[i], b[k].images[i])) << "sample " << index;
      }
    }
    // to_model_input applies the colour work, then normalises (here with mean 0, std 1).
    const auto x = to_model_input(a[k].images, {0, 0, 0}, {1, 1, 1}, torch::Device(torch::kCPU), false,
                                  a[k].photometric, device_view);
    const auto plain = a[k].images.permute({0, 3, 1, 2}).to(torch::kFloat32) / 255.0;
    EXPECT_TRUE(torch::allclose(x, apply_photometric(plain.contiguous(), a[k].photometric, device_view),
                                1e-6, 1e-6));
  }
  EXPECT_GT(jittered, 0);
  EXPECT_GT(grey + blurred, 0);
  EXPECT_GT(plain_samples, 0);
}

// The random draws of the MoCo v2 view have the distributions of torchvision's transforms.
TEST(Views, MocoV2DrawsFollowTheRecipe) {
  const int n = 20000;
  Image tiny(16, 12);
  for (std::size_t i = 0; i < tiny.pixels.size(); ++i) tiny.pixels[i] = static_cast<std::uint8_t>(i * 37);
  Transform t(view_defaults("mocov2", 8));
  std::vector<std::uint8_t> out(8 * 8 * 3);
  int jitter = 0, grey = 0, blur = 0, flip = 0;
  double bsum = 0, csum = 0, ssum = 0, hsum = 0, sigsum = 0;
  std::map<std::array<int, 4>, int> orders;
  for (int i = 0; i < n; ++i) {
    auto src = memory_source(tiny);
    SampleRng rng(5, 0, i);
    const ViewDraw d = t.apply(*src, rng, out.data());
    if (d.jitter) {
      ++jitter;
      ++orders[d.order];
      ASSERT_TRUE(d.brightness >= 0.6 && d.brightness < 1.4);
      ASSERT_TRUE(d.contrast >= 0.6 && d.contrast < 1.4);
      ASSERT_TRUE(d.saturation >= 0.6 && d.saturation < 1.4);
      ASSERT_TRUE(d.hue >= -0.1 && d.hue < 0.1);
      bsum += d.brightness, csum += d.contrast, ssum += d.saturation, hsum += d.hue;
    }
    if (d.blur) {
      ++blur;
      ASSERT_TRUE(d.sigma >= 0.1 && d.sigma < 2.0);
      sigsum += d.sigma;
    }
    grey += d.grayscale;
    flip += d.flip;
  }
  // Bernoulli rates within ~5 standard errors; uniform means likewise.
  EXPECT_NEAR(jitter / double(n), 0.8, 0.015);
  EXPECT_NEAR(grey / double(n), 0.2, 0.015);
  EXPECT_NEAR(blur / double(n), 0.5, 0.018);
  EXPECT_NEAR(flip / double(n), 0.5, 0.018);
  EXPECT_NEAR(bsum / jitter, 1.0, 0.01);
  EXPECT_NEAR(csum / jitter, 1.0, 0.01);
  EXPECT_NEAR(ssum / jitter, 1.0, 0.01);
  EXPECT_NEAR(hsum / jitter, 0.0, 0.003);
  EXPECT_NEAR(sigsum / blur, 1.05, 0.02);
  ASSERT_EQ(orders.size(), 24u);  // every order of the four jitter ops occurs
  for (const auto& [order, count] : orders) EXPECT_NEAR(count / double(jitter), 1.0 / 24, 0.01);
  // The draws are a function of (seed, epoch, index) alone.
  SampleRng a(5, 2, 9), b(5, 2, 9), c(5, 2, 10), d(5, 3, 9);
  const auto va = a.next();
  EXPECT_EQ(va, b.next());
  EXPECT_NE(va, c.next());
  EXPECT_NE(va, d.next());
}

}  // namespace
}  // namespace lgd::data
