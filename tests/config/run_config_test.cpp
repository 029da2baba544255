#include "lgd/config/run_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lgd/core/config_yaml.h"
#include "lgd/core/errors.h"

namespace lgd::config {
namespace {

namespace fs = std::filesystem;

std::string write_temp(const std::string& name, const std::string& text) {
  const fs::path path =
      fs::temp_directory_path() / ("lgd_cfg_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(path) << text;
  return path.string();
}

TEST(RunConfig, EveryShippedConfigLoads) {
  std::size_t count = 0;
  for (const auto& entry : fs::recursive_directory_iterator(fs::path(LGD_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    const auto loaded = load_run_config(entry.path().string(), {});
    EXPECT_FALSE(loaded.config.student.arch.empty());
    ++count;
  }
  EXPECT_GT(count, 0u);
}

TEST(RunConfig, DefaultsFollowTheReferenceRecipe) {
  const auto path = write_temp("min.yaml", "student:\n  arch: resnet18\n");
  const auto c = load_run_config(path, {}).config;
  EXPECT_DOUBLE_EQ(c.method.alpha, 0.5);
  EXPECT_DOUBLE_EQ(c.method.student_temp, 0.2);
  EXPECT_DOUBLE_EQ(c.method.teacher_temp, 0.01);
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.03);
  EXPECT_DOUBLE_EQ(c.optim.momentum, 0.9);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 1e-4);
  EXPECT_EQ(c.optim.warmup_epochs, 5);
  EXPECT_EQ(c.run.name, fs::path(path).stem().string());
}

TEST(RunConfig, PrecedenceDefaultsFileOverride) {
  const auto path =
      write_temp("prec.yaml", "student:\n  arch: resnet18\noptim:\n  lr: 0.1\n  epochs: 9\n");
  const auto c = load_run_config(path, {"optim.lr=0.2"}).config;
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.2);  // override beats file
  EXPECT_EQ(c.optim.epochs, 9);       // file beats default
  EXPECT_EQ(c.optim.accumulate, 1);   // default
}

TEST(RunConfig, ArchitectureIsCheckedAgainstTheZoo) {
  const auto path = write_temp("arch.yaml", "student:\n  arch: resnet19\n");
  try {
    load_run_config(path, {});
    FAIL();
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(":2:9: student.arch: expected one of resnet18, resnet34"), std::string::npos)
        << m;
    EXPECT_NE(m.find("(did you mean resnet18?)"), std::string::npos) << m;
  }
}

TEST(RunConfig, CrossFieldChecks) {
  const auto path = write_temp("cross.yaml", "student:\n  arch: resnet18\n  init: weights\n");
  EXPECT_THROW(load_run_config(path, {}), ConfigError);
  EXPECT_THROW(load_run_config(path, {"student.init=random", "optim.warmup_epochs=300"}),
               ConfigError);
  EXPECT_NO_THROW(load_run_config(path, {"student.weights=w.pth"}));
  auto with = [](std::vector<std::string> extra) {
    extra.insert(extra.begin(), "student.weights=w.pth");
    return extra;
  };
  EXPECT_THROW(load_run_config(path, with({"bank.classnames=n.txt", "bank.class_list=[a, b]"})),
               ConfigError);
  EXPECT_THROW(load_run_config(path, with({"bank.template_list=[a photo]"})), ConfigError);
  const auto c = load_run_config(path, with({"bank.template_list=['a {}.', 'my {}!']"})).config;
  EXPECT_EQ(c.bank.template_list, (std::vector<std::string>{"a {}.", "my {}!"}));
}

TEST(RunConfig, ResolvedConfigReloadsIdentically) {
  const auto path =
      write_temp("round.yaml", "student:\n  arch: mobilenet_v2\nmethod:\n  alpha: 1\n");
  const auto first = load_run_config(path, {"optim.lr=0.07"});
  const auto resolved = write_temp("resolved.yaml", to_yaml(first.config));
  const auto second = load_run_config(resolved, {});
  EXPECT_EQ(to_yaml(first.config), to_yaml(second.config));
}

}  // namespace
}  // namespace lgd::config
