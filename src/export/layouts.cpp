// torchvision -> timm key renaming for the seven students. timm's ResNets use torchvision's
// names. Its MobileNetV2, MobileNetV3 and EfficientNet (timm/models/efficientnet.py and
// mobilenetv3.py, built from _efficientnet_blocks.py) hold the same layers in the same order
// under other names: conv_stem / bn1, then blocks.<stage>.<block> (DepthwiseSeparableConv:
// conv_dw, bn1, [se], conv_pw, bn2; InvertedResidual: conv_pw, bn1, conv_dw, bn2, [se],
// conv_pwl, bn3; ConvBnAct: conv, bn1; se: conv_reduce, conv_expand), then conv_head / bn2
// and classifier. torchvision numbers its blocks flat (features.<i>) or per stage
// (EfficientNet: features.<stage>.<block>); the stage sizes below come from timm's
// architecture definitions (_gen_mobilenet_v2, _gen_mobilenet_v3, _gen_efficientnet). Within a
// block the layers are renamed in order, by kind. tests/python/timm_layout_test.py loads each
// result into timm with strict=True and compares the outputs with torchvision's.
//
// torchvision -> detectron2 for the ResNets follows detectron2's own converter
// (tools/convert-torchvision-to-d2.py): keys outside layer1-4 go under "stem.", layerN is
// res(N+1), bnK is convK.norm, downsample.0 / .1 are shortcut / shortcut.norm. The classifier
// (and lgd's head) has no place in detectron2's backbone and is left out; num_batches_tracked
// too (detectron2's FrozenBatchNorm2d has none).
#include "lgd/export/layouts.h"

#include <torch/torch.h>

#include <map>
#include <sstream>

#include "lgd/core/errors.h"
#include "lgd/models/architectures.h"

namespace lgd::exporting {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

struct TimmPlan {
  std::string model;
  std::vector<int> stages;   // blocks per stage (torchvision's flat feature indices 1..)
  bool nested = false;       // torchvision numbers blocks features.<stage>.<block> (EfficientNet)
  bool head_in_features = true;  // the last features.<i> is timm's conv_head + bn2
  std::string classifier;    // torchvision's final Linear
  std::string head_linear;   // MobileNetV3: torchvision's classifier.0, timm's conv_head (1x1)
};

const std::map<std::string, TimmPlan>& timm_plans() {
  static const std::map<std::string, TimmPlan> plans{
      {"mobilenet_v2", {"mobilenetv2_100", {1, 2, 3, 4, 3, 3, 1}, false, true, "classifier.1", ""}},
      {"mobilenet_v3_large",
       {"mobilenetv3_large_100", {1, 2, 3, 4, 2, 3, 1}, false, false, "classifier.3", "classifier.0"}},
      {"mobilenet_v3_small",
       {"mobilenetv3_small_100", {1, 2, 3, 2, 3, 1}, false, false, "classifier.3", "classifier.0"}},
      {"efficientnet_b0", {"efficientnet_b0", {1, 2, 2, 3, 3, 4, 1}, true, true, "classifier.1", ""}},
  };
  return plans;
}

// The layers of one torchvision block in order: module path -> its parameters and buffers.
struct Layer {
  std::string path;
  std::vector<std::pair<std::string, torch::Tensor>> entries;  // (leaf name, tensor)
  bool is_bn = false;
  bool is_se = false;
};

// timm's names for a block's layers, from the sequence of layer kinds.
std::vector<std::string> timm_layer_names(const std::vector<Layer>& layers, const std::string& where) {
  int convs = 0;
  for (const auto& l : layers) convs += !l.is_bn && !l.is_se;
  std::vector<std::string> conv_names;
  if (convs == 1) conv_names = {"conv"};
  else if (convs == 2) conv_names = {"conv_dw", "conv_pw"};
  else if (convs == 3) conv_names = {"conv_pw", "conv_dw", "conv_pwl"};
  else throw IoError(where + ": a block of " + std::to_string(convs) + " convolutions has no timm layout");
  std::vector<std::string> names;
  int conv = 0, bn = 0, se = 0;
  for (const auto& l : layers) {
    if (l.is_se) names.push_back(se++ == 0 ? "se.conv_reduce" : "se.conv_expand");
    else if (l.is_bn) names.push_back("bn" + std::to_string(++bn));
    else names.push_back(conv_names[conv++]);
  }
  return names;
}

models::NamedTensors to_timm(const std::string& arch, const models::NamedTensors& tensors) {
  const auto& info = models::architecture(arch);
  if (info.family == "resnet") return tensors;  // timm's ResNet keys are torchvision's
  const TimmPlan& plan = timm_plans().at(arch);
  // Stage and position of each torchvision block.
  std::map<std::string, std::string> block_name;  // "features.<i>" (or ".<s>.<b>") -> "blocks.<s>.<b>"
  int flat = 1;
  for (std::size_t s = 0; s < plan.stages.size(); ++s)
    for (int b = 0; b < plan.stages[s]; ++b, ++flat) {
      const std::string tv = plan.nested ? "features." + std::to_string(s + 1) + "." + std::to_string(b)
                                         : "features." + std::to_string(flat);
      block_name[tv] = "blocks." + std::to_string(s) + "." + std::to_string(b);
    }
  const std::string head_features = "features." + std::to_string(plan.nested ? plan.stages.size() + 1 : flat);

  // Group the features' keys by block, keeping each block's layer order.
  std::map<std::string, std::vector<Layer>> blocks;
  models::NamedTensors out;
  auto block_of = [&](const std::string& key) -> std::string {
    for (const auto& [tv, timm] : block_name)
      if (starts_with(key, tv + ".")) return tv;
    return "";
  };
  std::vector<std::string> block_order;
  for (const auto& [key, tensor] : tensors) {
    const std::string block = block_of(key);
    if (block.empty()) continue;
    const auto dot = key.rfind('.');
    const std::string path = key.substr(0, dot), leaf = key.substr(dot + 1);
    auto& layers = blocks[block];
    if (layers.empty()) block_order.push_back(block);
    if (layers.empty() || layers.back().path != path) {
      Layer l;
      l.path = path;
      l.is_se = path.find(".fc1") != std::string::npos || path.find(".fc2") != std::string::npos;
      layers.push_back(std::move(l));
    }
    layers.back().is_bn = layers.back().is_bn || leaf == "running_mean";
    layers.back().entries.emplace_back(leaf, tensor);
  }
  std::map<std::string, models::NamedTensors> renamed;
  for (const auto& block : block_order) {
    const auto& layers = blocks[block];
    const auto names = timm_layer_names(layers, arch + " " + block);
    for (std::size_t i = 0; i < layers.size(); ++i)
      for (const auto& [leaf, tensor] : layers[i].entries)
        renamed[block].emplace_back(block_name[block] + "." + names[i] + "." + leaf, tensor);
  }

  // In torchvision's order: stem, blocks, head convolution, classifier, then the rest (head.*).
  for (const auto& [key, tensor] : tensors) {
    std::string name;
    if (starts_with(key, "features.0.0.")) name = "conv_stem." + key.substr(13);
    else if (starts_with(key, "features.0.1.")) name = "bn1." + key.substr(13);
    else if (plan.head_in_features && starts_with(key, head_features + ".0."))
      name = "conv_head." + key.substr(head_features.size() + 3);
    else if (plan.head_in_features && starts_with(key, head_features + ".1."))
      name = "bn2." + key.substr(head_features.size() + 3);
    else if (!plan.head_linear.empty() && starts_with(key, plan.head_linear + ".")) {
      // Linear(960, 1280) after the pool is timm's 1x1 conv_head on the pooled map.
      const std::string leaf = key.substr(plan.head_linear.size() + 1);
      out.emplace_back("conv_head." + leaf, leaf == "weight" ? tensor.reshape({tensor.size(0), tensor.size(1), 1, 1})
                                                            : tensor);
      continue;
    } else if (starts_with(key, plan.classifier + ".")) name = "classifier." + key.substr(plan.classifier.size() + 1);
    else if (starts_with(key, "head.")) name = key;
    else if (const std::string block = block_of(key); !block.empty()) {
      auto& list = renamed[block];
      if (!list.empty()) {
        for (auto& entry : list) out.push_back(std::move(entry));
        list.clear();
      }
      continue;
    } else {
      throw IoError(arch + ": key " + key + " has no timm name");
    }
    out.emplace_back(name, tensor);
  }
  return out;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

void require_resnet(const std::string& arch, const std::string& layout) {
  if (models::architecture(arch).family != "resnet")
    throw UsageError("lgd export: --layout " + layout + " has no model of " + arch +
                     " (detectron2's backbones: resnet18, resnet34, resnet50; --layout timm or torchvision take every student)");
}

models::NamedTensors to_detectron2(const std::string& arch, const models::NamedTensors& tensors) {
  require_resnet(arch, "detectron2");
  models::NamedTensors out;
  for (const auto& [key, tensor] : tensors) {
    if (starts_with(key, "fc.") || starts_with(key, "head.")) continue;
    std::string k = key;
    if (k.find("num_batches_tracked") != std::string::npos) continue;
    if (k.find("layer") == std::string::npos) k = "stem." + k;
    for (int t = 1; t <= 4; ++t) replace_all(k, "layer" + std::to_string(t), "res" + std::to_string(t + 1));
    for (int t = 1; t <= 3; ++t) replace_all(k, "bn" + std::to_string(t), "conv" + std::to_string(t) + ".norm");
    replace_all(k, "downsample.0", "shortcut");
    replace_all(k, "downsample.1", "shortcut.norm");
    out.emplace_back(k, tensor);
  }
  return out;
}

}  // namespace

std::vector<std::string> layout_names() { return {"torchvision", "timm", "detectron2"}; }

Layout parse_layout(const std::string& name) {
  if (name == "torchvision") return Layout::kTorchvision;
  if (name == "timm") return Layout::kTimm;
  if (name == "detectron2") return Layout::kDetectron2;
  throw UsageError("unknown layout '" + name + "'; expected one of torchvision, timm, detectron2");
}

std::string layout_model_name(Layout layout, const std::string& arch) {
  const auto& info = models::architecture(arch);
  if (layout == Layout::kTorchvision) return arch;
  if (layout == Layout::kDetectron2) return info.family == "resnet" ? "R-" + arch.substr(6) : arch;
  const auto it = timm_plans().find(arch);
  return it == timm_plans().end() ? arch : it->second.model;
}

models::NamedTensors to_layout(Layout layout, const std::string& arch, const models::NamedTensors& tensors) {
  if (layout == Layout::kTorchvision) return tensors;
  if (layout == Layout::kDetectron2) return to_detectron2(arch, tensors);
  return to_timm(arch, tensors);
}

std::string detectron2_config(const std::string& arch, const std::string& weights_file, const std::string& mean,
                              const std::string& std) {
  require_resnet(arch, "detectron2");
  const std::string depth = arch.substr(6);
  auto scaled = [](const std::string& csv) {
    std::stringstream in(csv), out;
    out.precision(6);
    std::string item;
    int n = 0;
    for (; std::getline(in, item, ','); ++n) {
      std::size_t used = 0;
      double v = 0;
      try {
        v = std::stod(item, &used);
      } catch (const std::exception&) {
      }
      if (used == 0 || used != item.size()) throw IoError("mean / std '" + csv + "' in the weights' metadata are not numbers");
      out << (n ? ", " : "") << v * 255.0;
    }
    if (n != 3) throw IoError("mean / std '" + csv + "' in the weights' metadata are not 3 numbers");
    return "[" + out.str() + "]";
  };
  std::string y;
  y += "# detectron2 config for " + weights_file + " (lgd export --layout detectron2): merge into your\n";
  y += "# config (cfg.merge_from_file) or copy the keys. torchvision's ResNets put the stride in the\n";
  y += "# 3x3 convolution and take RGB input.\n";
  y += "MODEL:\n";
  y += "  WEIGHTS: \"" + weights_file + "\"\n";
  if (!mean.empty() && !std.empty()) {
    y += "  PIXEL_MEAN: " + scaled(mean) + "  # the training mean, in 0-255 units\n";
    y += "  PIXEL_STD: " + scaled(std) + "\n";
  } else {
    y += "  # PIXEL_MEAN / PIXEL_STD: not recorded in the weights this came from (export from an lgd checkpoint)\n";
  }
  y += "  RESNETS:\n";
  y += "    DEPTH: " + depth + "\n";
  y += "    STRIDE_IN_1X1: False\n";
  y += "    STEM_OUT_CHANNELS: 64\n";
  y += "    RES2_OUT_CHANNELS: " + std::string(depth == "50" ? "256" : "64") + "\n";
  y += "INPUT:\n";
  y += "  FORMAT: \"RGB\"\n";
  return y;
}

}  // namespace lgd::exporting
