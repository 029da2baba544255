#include "lgd/engine/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "../data/data_test_util.h"
#include "lgd/core/errors.h"
#include "lgd/core/version.h"

namespace lgd::engine {
namespace {

using lgd::testing::TempDir;

Checkpoint sample(std::int64_t step) {
  Checkpoint c;
  c.tensors = {{"student.conv1.weight", torch::randn({4, 3, 3, 3})},
               {"head.0.bias", torch::arange(5, torch::kFloat32) * step},
               {"method.vsb.initialised", torch::tensor({true, false, true})},
               {"rng.cpu", torch::randint(0, 255, {16}, torch::kUInt8)},
               {"optim.step", torch::tensor({step}, torch::kInt64)}};
  c.meta = {{"step", std::to_string(step)}, {"epoch", "2"}, {"config", "student:\n  arch: resnet18\n"}};
  return c;
}

TEST(Checkpoint, RoundTripsTensorsAndMetadataExactly) {
  TempDir dir("ckpt");
  const auto c = sample(7);
  save_checkpoint(dir / "a.ckpt", c);
  const auto back = load_checkpoint(dir / "a.ckpt");
  ASSERT_EQ(back.tensors.size(), c.tensors.size());
  for (std::size_t i = 0; i < c.tensors.size(); ++i) {
    EXPECT_EQ(back.tensors[i].first, c.tensors[i].first);
    EXPECT_EQ(back.tensors[i].second.scalar_type(), c.tensors[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(back.tensors[i].second, c.tensors[i].second)) << c.tensors[i].first;
  }
  EXPECT_EQ(back.meta.at("config"), c.meta.at("config"));
  EXPECT_EQ(back.meta.at("lgd_version"), version());
  EXPECT_EQ(back.integer("step", "a.ckpt"), 7);
  EXPECT_THROW(back.integer("position", "a.ckpt"), IoError);
  const auto student = back.section("student.");
  ASSERT_EQ(student.size(), 1u);
  EXPECT_EQ(student[0].first, "conv1.weight");
  EXPECT_FALSE(std::filesystem::exists(dir / "a.ckpt.tmp"));
}

TEST(Checkpoint, CorruptTruncatedAndForeignFilesAreErrorsNamingThePath) {
  TempDir dir("ckpt_bad");
  save_checkpoint(dir / "good.ckpt", sample(1));
  auto bytes = lgd::testing::read_bytes(dir / "good.ckpt");
  bytes.resize(bytes.size() - 100);
  lgd::testing::write_bytes(dir / "short.ckpt", bytes);
  lgd::testing::write_text(dir / "text.ckpt", "not a checkpoint at all");
  for (const std::string name : {"short.ckpt", "text.ckpt", "missing.ckpt"}) {
    try {
      load_checkpoint(dir / name);
      FAIL() << name;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(dir / name), std::string::npos) << e.what();
    }
  }
}

TEST(CheckpointDir, KeepsLastAndTheNewestPeriodicFiles) {
  TempDir dir("ckpt_dir");
  CheckpointDir ckpts(dir / "checkpoints", 2);
  EXPECT_FALSE(ckpts.last().has_value());
  for (std::int64_t step : {100, 200, 300, 400}) ckpts.save(sample(step), step, true);
  ckpts.save(sample(450), 450, false);  // e.g. on SIGTERM: last.ckpt only
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir / "checkpoints"))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"last.ckpt", "step_0000000300.ckpt", "step_0000000400.ckpt"}));
  ASSERT_TRUE(ckpts.last().has_value());
  EXPECT_EQ(load_checkpoint(*ckpts.last()).integer("step", "last"), 450);
}

}  // namespace
}  // namespace lgd::engine
