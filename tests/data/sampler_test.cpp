#include "lgd/data/sampler.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <set>
#include <sstream>

#include "lgd/core/errors.h"

namespace lgd::data {
namespace {

// Runs Python's DistributedSampler for the cases in tests/python/sampler_reference.py.
std::string python_reference() {
  const std::string command =
      std::string(LGD_PYTHON) + " " + LGD_SOURCE_DIR + "/tests/python/sampler_reference.py";
  struct Close {
    void operator()(FILE* f) const { pclose(f); }
  };
  std::unique_ptr<FILE, Close> pipe(popen(command.c_str(), "r"));
  std::string out;
  char buffer[4096];
  while (pipe && std::fgets(buffer, sizeof buffer, pipe.get())) out += buffer;
  return out;
}

TEST(DistributedSampler, EqualsPyTorchsSampler) {
  std::istringstream lines(python_reference());
  int cases = 0;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream in(line);
    SamplerOptions o;
    std::int64_t epoch = 0, shuffle = 0, drop_last = 0;
    std::string colon;
    in >> o.dataset_size >> o.world_size >> o.rank >> o.seed >> epoch >> shuffle >> drop_last >>
        colon;
    o.shuffle = shuffle != 0;
    o.drop_last = drop_last != 0;
    std::vector<std::int64_t> expected;
    for (std::int64_t id; in >> id;) expected.push_back(id);
    const DistributedSampler sampler(o);
    EXPECT_EQ(sampler.indices(epoch), expected) << line;
    EXPECT_EQ(sampler.num_samples(), static_cast<std::int64_t>(expected.size())) << line;
    ++cases;
  }
  EXPECT_EQ(cases, 7);
}

TEST(DistributedSampler, RanksCoverEveryIndexOncePerEpoch) {
  const std::int64_t n = 1003, world = 4;
  std::multiset<std::int64_t> seen;
  for (std::int64_t rank = 0; rank < world; ++rank) {
    const DistributedSampler sampler({n, rank, world, /*seed=*/9, true, /*drop_last=*/true});
    for (auto i : sampler.indices(3)) seen.insert(i);
  }
  EXPECT_EQ(static_cast<std::int64_t>(seen.size()), (n / world) * world);
  for (auto i : seen) EXPECT_EQ(seen.count(i), 1u);
}

TEST(DistributedSampler, StartPositionResumesMidEpoch) {
  const DistributedSampler sampler({50, 1, 2, 5, true, false});
  const auto all = sampler.indices(4);
  const auto rest = sampler.indices(4, 10);
  EXPECT_EQ(rest, std::vector<std::int64_t>(all.begin() + 10, all.end()));
  EXPECT_NE(sampler.indices(5), all);  // another epoch, another order
  EXPECT_THROW(sampler.indices(4, 26), UsageError);
  EXPECT_THROW(DistributedSampler({0, 0, 1, 0, true, false}), UsageError);
  EXPECT_THROW(DistributedSampler({10, 2, 2, 0, true, false}), UsageError);
}

}  // namespace
}  // namespace lgd::data
