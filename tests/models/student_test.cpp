#include "lgd/models/student.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "lgd/core/errors.h"
#include "lgd/models/architectures.h"
#include "lgd/models/state_dict.h"

namespace lgd::models {
namespace {

// torchvision's published parameter counts, with the 1000-class classifier.
const std::map<std::string, std::int64_t> kTorchvisionParams = {
    {"resnet18", 11689512},       {"resnet34", 21797672},          {"resnet50", 25557032},
    {"mobilenet_v2", 3504872},    {"mobilenet_v3_large", 5483032}, {"mobilenet_v3_small", 2542856},
    {"efficientnet_b0", 5288548},
};

class EveryStudent : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryStudent, ParameterCountMatchesTorchvision) {
  const auto model = create_student(GetParam(), {1000});
  EXPECT_EQ(parameter_count(*model), kTorchvisionParams.at(GetParam()));
}

TEST_P(EveryStudent, PooledFeatureWidthAndClassifierSwitch) {
  torch::manual_seed(0);
  const auto info = architecture(GetParam());
  auto backbone = create_student(GetParam(), {0});
  auto classifier = create_student(GetParam(), {10});
  backbone->eval();
  classifier->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 3, 64, 64});
  EXPECT_EQ(backbone->forward(x).sizes(), torch::IntArrayRef({2, info.feature_dim}));
  EXPECT_EQ(classifier->forward(x).sizes(), torch::IntArrayRef({2, 10}));
  // The backbone's keys are exactly the classifier model's keys minus the classifier.
  auto with = state_dict(*classifier);
  auto without = state_dict(*backbone);
  std::vector<std::string> expected;
  for (const auto& [k, v] : with)
    if (k.rfind(classifier->classifier_prefix(), 0) != 0) expected.push_back(k);
  std::vector<std::string> got;
  for (const auto& [k, v] : without) got.push_back(k);
  EXPECT_EQ(got, expected);
}

TEST_P(EveryStudent, SaveLoadRoundTripGivesTheSameOutput) {
  torch::manual_seed(1);
  auto a = create_student(GetParam(), {5});
  torch::manual_seed(2);
  auto b = create_student(GetParam(), {5});
  // Move BatchNorm statistics away from their initial values.
  a->train();
  {
    torch::NoGradGuard no_grad;
    a->forward(torch::randn({4, 3, 64, 64}));
  }
  load_state_dict(*b, state_dict(*a), "a");
  a->eval();
  b->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 3, 64, 64});
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
}

INSTANTIATE_TEST_SUITE_P(Zoo, EveryStudent, ::testing::ValuesIn(architecture_names()),
                         [](const auto& p) { return p.param; });

TEST(StateDict, StrictLoadingNamesTheKeys) {
  auto model = create_student("resnet18", {0});
  auto tensors = state_dict(*model);
  auto missing = tensors;
  missing.erase(missing.begin());
  try {
    load_state_dict(*model, missing, "w.pth");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_STREQ(e.what(), "w.pth: missing 1 key(s): conv1.weight");
  }
  auto extra = tensors;
  extra.emplace_back("fc.weight", torch::zeros({10, 512}));
  try {
    load_state_dict(*model, extra, "w.pth");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_STREQ(e.what(), "w.pth: unexpected 1 key(s): fc.weight");
  }
  auto wrong = tensors;
  wrong[0].second = torch::zeros({64, 3, 3, 3});
  try {
    load_state_dict(*model, wrong, "w.pth");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_STREQ(e.what(), "w.pth: conv1.weight: shape [64, 3, 3, 3], expected [64, 3, 7, 7]");
  }
}

TEST(ProjectionHead, ShapesAndNames) {
  auto head = make_projection_head(512, 1024);
  std::vector<std::string> keys;
  for (const auto& [k, v] : state_dict(*head, "head.")) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"head.0.weight", "head.0.bias", "head.2.weight",
                                            "head.2.bias"}));
  auto y = head->forward(torch::randn({3, 512}));
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({3, 1024}));
}

TEST(Registry, UnknownNameListsTheValidOnes) {
  try {
    create_student("resnet181", {});
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "unknown student architecture 'resnet181' (did you mean resnet18?); expected one "
                 "of resnet18, resnet34, resnet50, mobilenet_v2, mobilenet_v3_large, "
                 "mobilenet_v3_small, efficientnet_b0");
  }
}

}  // namespace
}  // namespace lgd::models
