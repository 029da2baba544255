#include "lgd/export/layouts.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "lgd/core/errors.h"
#include "lgd/models/architectures.h"
#include "lgd/models/student.h"

namespace lgd::exporting {
namespace {

bool same(const models::NamedTensors& a, const models::NamedTensors& b, std::string* why) {
  if (a.size() != b.size()) {
    *why = std::to_string(a.size()) + " vs " + std::to_string(b.size()) + " tensors";
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || !torch::equal(a[i].second, b[i].second)) {
      *why = a[i].first + " vs " + b[i].first;
      return false;
    }
  return true;
}

// Every layout of every student read back gives torchvision's keys and values, in torchvision's
// order, for what the framework's model holds (OpenMMLab's and detectron2's backbones have no
// classifier, mmseg's MobileNetV2 no last convolution; timm keeps everything). The layout is
// recognised from the keys alone.
TEST(Layouts, EveryExportReadsBackAsTorchvisionWeights) {
  for (const auto& arch : models::architecture_names()) {
    torch::manual_seed(0);
    const auto original = models::state_dict(*models::create_student(arch, {10}));
    for (const auto& name : layout_names()) {
      const Layout layout = parse_layout(name);
      models::NamedTensors exported;
      try {
        exported = to_layout(layout, arch, original);
      } catch (const UsageError&) {
        continue;  // a pair the framework has no model of (layouts_test in Python names them)
      }
      Layout found = Layout::kTorchvision;
      ASSERT_TRUE(from_any_layout(arch, exported, found)) << arch << " " << name;
      // timm's, mmdet's and mmseg's ResNets have torchvision's names.
      const bool torchvision_names = models::architecture(arch).family == "resnet" && layout != Layout::kDetectron2;
      EXPECT_EQ(layout_name(found), layout_name(torchvision_names ? Layout::kTorchvision : layout)) << arch;
      models::NamedTensors expected;
      for (const auto& [key, t] : original) {
        const bool kept = std::any_of(exported.begin(), exported.end(), [&](const auto& e) { return e.first == key; });
        if (kept) expected.emplace_back(key, t);
      }
      std::string why;
      EXPECT_TRUE(same(exported, expected, &why)) << arch << " " << name << ": " << why;
      if (layout == Layout::kTimm || layout == Layout::kTorchvision) {  // they keep the classifier too
        EXPECT_EQ(exported.size(), original.size()) << arch << " " << name;
      }
    }
  }
}

TEST(Layouts, ReadingWeightsLeavesTheRandomGeneratorAlone) {
  torch::manual_seed(3);
  const auto want = torch::rand({5});
  torch::manual_seed(0);
  auto tensors = to_layout(Layout::kTimm, "mobilenet_v2", models::state_dict(*models::create_student("mobilenet_v2", {0})));
  torch::manual_seed(3);
  Layout found = Layout::kTorchvision;
  ASSERT_TRUE(from_any_layout("mobilenet_v2", tensors, found));
  EXPECT_EQ(found, Layout::kTimm);
  EXPECT_TRUE(torch::equal(torch::rand({5}), want));
}

TEST(Layouts, KeysOfNoLayoutAreNotRenamed) {
  models::NamedTensors tensors{{"encoder.stem.weight", torch::zeros({2})}};
  Layout found = Layout::kTorchvision;
  EXPECT_FALSE(from_any_layout("resnet18", tensors, found));
  EXPECT_EQ(tensors[0].first, "encoder.stem.weight");
  EXPECT_THROW(parse_layout("mmdetection"), UsageError);
  EXPECT_THROW(to_layout(Layout::kMmdet, "mobilenet_v3_small", {}), UsageError);
  EXPECT_THROW(to_layout(Layout::kMmseg, "efficientnet_b0", {}), UsageError);
}

}  // namespace
}  // namespace lgd::exporting
