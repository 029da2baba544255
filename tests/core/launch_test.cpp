#include "lgd/dist/launch.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "lgd/core/errors.h"

namespace lgd::dist {
namespace {

// detect_launch over a given environment instead of the process's.
LaunchInfo detect(const std::map<std::string, std::string>& env, RendezvousDefaults defaults = {}) {
  return detect_launch(defaults, [&env](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(Launch, NoLauncherMeansOneProcess) {
  const auto info = detect({});
  EXPECT_FALSE(info.multi());
  EXPECT_EQ(info.rank, 0);
  EXPECT_EQ(info.world_size, 1);
  EXPECT_TRUE(detect({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).launcher == "torchrun");
  EXPECT_FALSE(detect({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).multi());
}

TEST(Launch, TorchrunVariables) {
  const auto info = detect({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                            {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29400"}},
                           {"ignored", 1234});
  EXPECT_EQ(info.launcher, "torchrun");
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.world_size, 8);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.local_world_size, 4);
  EXPECT_EQ(info.master_addr, "node0");  // torchrun's own address wins over the config
  EXPECT_EQ(info.master_port, 29400);
}

TEST(Launch, SlurmVariablesWithAddressFromConfigEnvironmentOrNodeList) {
  const std::map<std::string, std::string> slurm{{"SLURM_PROCID", "3"},
                                                 {"SLURM_NTASKS", "4"},
                                                 {"SLURM_LOCALID", "1"},
                                                 {"SLURM_TASKS_PER_NODE", "2(x2)"},
                                                 {"SLURM_JOB_NODELIST", "gpu[07-08]"}};
  auto info = detect(slurm);
  EXPECT_EQ(info.launcher, "slurm");
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.world_size, 4);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.local_world_size, 2);
  EXPECT_EQ(info.master_addr, "gpu07");
  EXPECT_EQ(info.master_port, 29500);
  auto env = slurm;
  env["MASTER_ADDR"] = "10.0.0.1";
  env["MASTER_PORT"] = "30000";
  info = detect(env);
  EXPECT_EQ(info.master_addr, "10.0.0.1");
  EXPECT_EQ(info.master_port, 30000);
  info = detect(env, {"head", 31000});
  EXPECT_EQ(info.master_addr, "head");
  EXPECT_EQ(info.master_port, 31000);
}

TEST(Launch, OpenMpiVariables) {
  const auto info = detect({{"OMPI_COMM_WORLD_RANK", "2"},
                            {"OMPI_COMM_WORLD_SIZE", "3"},
                            {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                            {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"},
                            {"MASTER_ADDR", "h1"}});
  EXPECT_EQ(info.launcher, "mpirun");
  EXPECT_EQ(info.rank, 2);
  EXPECT_EQ(info.world_size, 3);
  EXPECT_EQ(info.local_world_size, 1);
  EXPECT_EQ(info.master_addr, "h1");
  EXPECT_EQ(info.master_port, 29500);
  // No address anywhere: an error naming what to set.
  try {
    detect({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("MASTER_ADDR"), std::string::npos) << e.what();
  }
}

TEST(Launch, MalformedValuesNameTheVariable) {
  const std::map<std::string, std::string> base{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"},
                                                {"MASTER_PORT", "29500"}};
  auto expect_error = [&](const std::string& key, const std::string& value, const std::string& needle) {
    auto env = base;
    if (value.empty()) env.erase(key); else env[key] = value;
    try {
      detect(env);
      FAIL() << key << "=" << value << ": expected ConfigError";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("MASTER_PORT", "http", "MASTER_PORT: 'http' is not a TCP port");
  expect_error("MASTER_PORT", "70000", "MASTER_PORT: '70000' is not a TCP port");
  expect_error("MASTER_PORT", "", "MASTER_PORT: not set");
  expect_error("MASTER_ADDR", "", "MASTER_ADDR: not set");
  expect_error("RANK", "2", "RANK: 2 is not below WORLD_SIZE");
  expect_error("RANK", "one", "RANK: 'one' is not a non-negative integer");
}

TEST(Launch, FirstSlurmHost) {
  EXPECT_EQ(first_slurm_host("node1"), "node1");
  EXPECT_EQ(first_slurm_host("node1,node2"), "node1");
  EXPECT_EQ(first_slurm_host("node[03-05,9],gpu1"), "node03");
  EXPECT_EQ(first_slurm_host("rack[2,4]-n[1-2]"), "rack2-n1");
}

}  // namespace
}  // namespace lgd::dist
