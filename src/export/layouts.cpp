// torchvision -> timm / mmdet / mmseg / detectron2 key renaming, as one plan per (layout,
// architecture) that runs both ways (export, and reading such files back in).
//
// timm's ResNets use torchvision's names; so do mmdetection's and mmsegmentation's ResNet
// (style='pytorch'), which have no classifier. The MobileNets and EfficientNet hold the same
// layers in the same order under other names. torchvision numbers its blocks flat
// (features.<i>) or per stage (EfficientNet: features.<stage>.<block>); each framework groups
// them in its own stages:
//   timm (timm/models/efficientnet.py, mobilenetv3.py, _efficientnet_blocks.py): conv_stem /
//     bn1, blocks.<stage>.<block>, conv_head / bn2, classifier. Block layers by kind:
//     DepthwiseSeparableConv conv_dw, bn1, [se], conv_pw, bn2; InvertedResidual conv_pw, bn1,
//     conv_dw, bn2, [se], conv_pwl, bn3; ConvBnAct conv, bn1; se conv_reduce / conv_expand.
//     MobileNetV3's Linear(960, 1280) after the pool is timm's 1x1 conv_head.
//   mmdet (mmdet/models/backbones/mobilenet_v2.py, efficientnet.py, layers/inverted_residual.py):
//     MobileNetV2 conv1, layer<s>.<b>, conv2; EfficientNet layers.0, layers.<s>.<b> in five
//     stages (1, 2, 2, 6, 5 blocks: torchvision's stages 4+5 and 6+7 merged), layers.6. Blocks:
//     expand_conv, depthwise_conv, [se.conv1, se.conv2], linear_conv, each a ConvModule
//     (.conv, .bn).
//   mmseg (mmseg/models/backbones/mobilenet_v2.py, mobilenet_v3.py, utils/inverted_residual.py):
//     MobileNetV2 conv1, layer<s>.<b>.conv.<i> (ConvModules in a Sequential), no 1280-wide
//     last convolution; MobileNetV3 layer0, layer1 ... layer<N> flat, named as mmdet's blocks.
// The stage sizes come from each framework's architecture tables. Within a block the layers
// are renamed in order, by kind (convolution, BatchNorm, squeeze-excitation).
// tests/python/timm_layout_test.py and openmmlab_layout_test.py load the results into the
// frameworks' own models with strict=True and compare their outputs with torchvision's.
//
// torchvision -> detectron2 for the ResNets follows detectron2's own converter
// (tools/convert-torchvision-to-d2.py): keys outside layer1-4 go under "stem.", layerN is
// res(N+1), bnK is convK.norm, downsample.0 / .1 are shortcut / shortcut.norm. The classifier
// (and lgd's head) has no place in detectron2's backbone and is left out; num_batches_tracked
// too (detectron2's FrozenBatchNorm2d has none).
#include "lgd/export/layouts.h"

#include <torch/torch.h>

#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "lgd/core/errors.h"
#include "lgd/models/architectures.h"
#include "lgd/models/student.h"

namespace lgd::exporting {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// torchvision's side of a MobileNet / EfficientNet: blocks per stage after the stem
// (features.0), whether they are numbered per stage, whether a last features.<i> is the head
// convolution, the classifier's final Linear and MobileNetV3's Linear before it.
struct TorchvisionBlocks {
  std::vector<int> stages;
  bool nested = false;
  bool head_conv = true;
  std::string classifier;
  std::string head_linear;
};

const std::map<std::string, TorchvisionBlocks>& torchvision_blocks() {
  static const std::map<std::string, TorchvisionBlocks> blocks{
      {"mobilenet_v2", {{1, 2, 3, 4, 3, 3, 1}, false, true, "classifier.1", ""}},
      {"mobilenet_v3_large", {{1, 2, 3, 4, 2, 3, 1}, false, false, "classifier.3", "classifier.0"}},
      {"mobilenet_v3_small", {{1, 2, 3, 2, 3, 1}, false, false, "classifier.3", "classifier.0"}},
      {"efficientnet_b0", {{1, 2, 2, 3, 3, 4, 1}, true, true, "classifier.1", ""}},
  };
  return blocks;
}

// How a framework names the layers inside a block.
enum class Naming {
  kTimm,       // conv_pw / conv_dw / conv_pwl / conv, bn1.., se.conv_reduce / se.conv_expand
  kMmModules,  // expand_conv / depthwise_conv / linear_conv (or the block itself), each .conv / .bn
  kMmSequence  // conv.<i>.conv / conv.<i>.bn
};

// A framework's side of a MobileNet / EfficientNet.
struct FrameworkBlocks {
  std::string model;
  std::vector<int> stages;  // blocks per stage; empty: torchvision's
  std::string prefix;       // block names: <prefix><stage + base>.<block>, or <prefix><i + 1> when flat
  int base = 0;
  bool flat = false;
  std::string stem_conv, stem_bn;  // torchvision's features.0
  std::string head_conv, head_bn;  // torchvision's last features.<i> ("": not in the framework)
  Naming naming = Naming::kTimm;
  bool classifier = true;  // the framework's model has the classifier
};

const std::map<std::pair<Layout, std::string>, FrameworkBlocks>& framework_blocks() {
  using L = Layout;
  static const std::map<std::pair<Layout, std::string>, FrameworkBlocks> blocks{
      {{L::kTimm, "mobilenet_v2"},
       {"mobilenetv2_100", {}, "blocks.", 0, false, "conv_stem", "bn1", "conv_head", "bn2", Naming::kTimm, true}},
      {{L::kTimm, "mobilenet_v3_large"},
       {"mobilenetv3_large_100", {}, "blocks.", 0, false, "conv_stem", "bn1", "", "", Naming::kTimm, true}},
      {{L::kTimm, "mobilenet_v3_small"},
       {"mobilenetv3_small_100", {}, "blocks.", 0, false, "conv_stem", "bn1", "", "", Naming::kTimm, true}},
      {{L::kTimm, "efficientnet_b0"},
       {"efficientnet_b0", {}, "blocks.", 0, false, "conv_stem", "bn1", "conv_head", "bn2", Naming::kTimm, true}},
      {{L::kMmdet, "mobilenet_v2"},
       {"MobileNetV2", {}, "layer", 1, false, "conv1.conv", "conv1.bn", "conv2.conv", "conv2.bn",
        Naming::kMmModules, false}},
      {{L::kMmdet, "efficientnet_b0"},
       {"EfficientNet", {1, 2, 2, 6, 5}, "layers.", 1, false, "layers.0.conv", "layers.0.bn", "layers.6.conv",
        "layers.6.bn", Naming::kMmModules, false}},
      {{L::kMmseg, "mobilenet_v2"},
       {"MobileNetV2", {}, "layer", 1, false, "conv1.conv", "conv1.bn", "", "", Naming::kMmSequence, false}},
      {{L::kMmseg, "mobilenet_v3_large"},
       {"MobileNetV3", {}, "layer", 0, true, "layer0.conv", "layer0.bn", "", "", Naming::kMmModules, false}},
      {{L::kMmseg, "mobilenet_v3_small"},
       {"MobileNetV3", {}, "layer", 0, true, "layer0.conv", "layer0.bn", "", "", Naming::kMmModules, false}},
  };
  return blocks;
}

bool has_model(Layout layout, const std::string& arch) {
  if (layout == Layout::kTorchvision) return true;
  if (models::architecture(arch).family == "resnet") return true;  // all four frameworks have ResNets
  return framework_blocks().count({layout, arch}) > 0;
}

// One key of the plan: torchvision's name and the framework's ("" : left out); a Linear whose
// weight becomes a 1x1 convolution's.
struct Rename {
  std::string from, to;
  bool linear_to_conv = false;
};
using Plan = std::vector<Rename>;

// The layers of one torchvision block in order: module path, its leaves, its kind.
struct Layer {
  std::string path;
  std::vector<std::string> keys;
  bool is_bn = false;
  bool is_se = false;
};

// The framework's names for a block's layers, from the sequence of layer kinds.
std::vector<std::string> layer_names(Naming naming, const std::vector<Layer>& layers, const std::string& where) {
  int convs = 0;
  for (const auto& l : layers) convs += !l.is_bn && !l.is_se;
  std::vector<std::string> conv_names;
  const bool timm = naming == Naming::kTimm;
  if (convs == 1) conv_names = {timm ? "conv" : ""};
  else if (convs == 2) conv_names = timm ? std::vector<std::string>{"conv_dw", "conv_pw"}
                                         : std::vector<std::string>{"depthwise_conv", "linear_conv"};
  else if (convs == 3) conv_names = timm ? std::vector<std::string>{"conv_pw", "conv_dw", "conv_pwl"}
                                         : std::vector<std::string>{"expand_conv", "depthwise_conv", "linear_conv"};
  else throw IoError(where + ": a block of " + std::to_string(convs) + " convolutions has no such layout");
  std::vector<std::string> names;
  int conv = 0, bn = 0, se = 0;
  std::string last_conv;
  for (const auto& l : layers) {
    if (naming == Naming::kTimm) {
      if (l.is_se) names.push_back(se++ == 0 ? "se.conv_reduce" : "se.conv_expand");
      else if (l.is_bn) names.push_back("bn" + std::to_string(++bn));
      else names.push_back(conv_names[conv++]);
    } else if (naming == Naming::kMmSequence) {
      if (l.is_se) throw IoError(where + ": mmseg's MobileNetV2 blocks have no squeeze-excitation");
      names.push_back("conv." + std::to_string(l.is_bn ? conv - 1 : conv) + (l.is_bn ? ".bn" : ".conv"));
      if (!l.is_bn) ++conv;
    } else {
      const auto dot = [](const std::string& s) { return s.empty() ? s : s + "."; };
      if (l.is_se) names.push_back(se++ == 0 ? "se.conv1.conv" : "se.conv2.conv");
      else if (l.is_bn) names.push_back(dot(last_conv) + "bn");
      else names.push_back(dot(last_conv = conv_names[conv++]) + "conv");
    }
  }
  return names;
}

std::string join(const std::string& parent, const std::string& child) {
  return child.empty() ? parent : parent + "." + child;
}

Plan mobilenet_plan(Layout layout, const std::string& arch, const std::vector<std::string>& keys) {
  const TorchvisionBlocks& tv = torchvision_blocks().at(arch);
  const FrameworkBlocks& fw = framework_blocks().at({layout, arch});
  const std::vector<int>& stages = fw.stages.empty() ? tv.stages : fw.stages;
  // torchvision's block prefixes in order, and the framework's name of each.
  std::map<std::string, std::string> block_name;
  int flat = 0, total = 0;
  for (int n : tv.stages) total += n;
  for (std::size_t s = 0; s < tv.stages.size(); ++s)
    for (int b = 0; b < tv.stages[s]; ++b, ++flat) {
      const std::string name = tv.nested ? "features." + std::to_string(s + 1) + "." + std::to_string(b)
                                         : "features." + std::to_string(flat + 1);
      // The framework's stage and index of the flat-th block.
      std::size_t fs = 0;
      int fb = flat;
      while (fs < stages.size() && fb >= stages[fs]) fb -= stages[fs++];
      block_name[name] = fw.flat ? fw.prefix + std::to_string(flat + 1)
                                 : fw.prefix + std::to_string(fs + fw.base) + "." + std::to_string(fb);
    }
  const std::string head = "features." + std::to_string(tv.nested ? tv.stages.size() + 1 : total + 1);
  auto block_of = [&](const std::string& key) -> std::string {
    for (const auto& [name, unused] : block_name)
      if (starts_with(key, name + ".")) return name;
    return "";
  };

  // Group each block's keys into layers, then name the layers.
  std::map<std::string, std::vector<Layer>> blocks;
  for (const auto& key : keys) {
    const std::string block = block_of(key);
    if (block.empty()) continue;
    const auto dot = key.rfind('.');
    const std::string path = key.substr(0, dot), leaf = key.substr(dot + 1);
    auto& layers = blocks[block];
    if (layers.empty() || layers.back().path != path) {
      Layer l;
      l.path = path;
      l.is_se = path.find(".fc1") != std::string::npos || path.find(".fc2") != std::string::npos;
      layers.push_back(std::move(l));
    }
    layers.back().is_bn = layers.back().is_bn || leaf == "running_mean";
    layers.back().keys.push_back(key);
  }
  std::map<std::string, std::string> renamed;
  for (const auto& [block, layers] : blocks) {
    const auto names = layer_names(fw.naming, layers, arch + " " + block);
    for (std::size_t i = 0; i < layers.size(); ++i)
      for (const auto& key : layers[i].keys)
        renamed[key] = join(block_name[block], names[i]) + key.substr(layers[i].path.size());
  }

  Plan plan;
  auto under = [](const std::string& key, const std::string& path, const std::string& to) {
    return to.empty() ? std::string() : to + key.substr(path.size());
  };
  for (const auto& key : keys) {
    if (auto it = renamed.find(key); it != renamed.end()) plan.push_back({key, it->second});
    else if (starts_with(key, "features.0.0.")) plan.push_back({key, under(key, "features.0.0", fw.stem_conv)});
    else if (starts_with(key, "features.0.1.")) plan.push_back({key, under(key, "features.0.1", fw.stem_bn)});
    else if (tv.head_conv && starts_with(key, head + ".0.")) plan.push_back({key, under(key, head + ".0", fw.head_conv)});
    else if (tv.head_conv && starts_with(key, head + ".1.")) plan.push_back({key, under(key, head + ".1", fw.head_bn)});
    else if (!tv.head_linear.empty() && starts_with(key, tv.head_linear + "."))
      plan.push_back({key, fw.classifier ? under(key, tv.head_linear, "conv_head") : "", true});
    else if (starts_with(key, tv.classifier + "."))
      plan.push_back({key, fw.classifier ? under(key, tv.classifier, "classifier") : ""});
    else if (starts_with(key, "head.")) plan.push_back({key, layout == Layout::kTimm ? key : ""});
    else throw IoError(arch + ": key " + key + " has no " + layout_name(layout) + " name");
  }
  return plan;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

Plan resnet_plan(Layout layout, const std::vector<std::string>& keys) {
  Plan plan;
  for (const auto& key : keys) {
    const bool classifier = starts_with(key, "fc.") || starts_with(key, "head.");
    if (layout == Layout::kTimm) {
      plan.push_back({key, key});
    } else if (layout != Layout::kDetectron2) {  // mmdet / mmseg: torchvision's names, no classifier
      plan.push_back({key, classifier ? "" : key});
    } else if (classifier || key.find("num_batches_tracked") != std::string::npos) {
      plan.push_back({key, ""});
    } else {
      std::string k = key.find("layer") == std::string::npos ? "stem." + key : key;
      for (int t = 1; t <= 4; ++t) replace_all(k, "layer" + std::to_string(t), "res" + std::to_string(t + 1));
      for (int t = 1; t <= 3; ++t) replace_all(k, "bn" + std::to_string(t), "conv" + std::to_string(t) + ".norm");
      replace_all(k, "downsample.0", "shortcut");
      replace_all(k, "downsample.1", "shortcut.norm");
      plan.push_back({key, k});
    }
  }
  return plan;
}

void require_model(Layout layout, const std::string& arch) {
  if (!has_model(layout, arch))
    throw UsageError("lgd export: --layout " + layout_name(layout) + " has no model of " + arch + " (" +
                     layout_pairs(layout) + "; --layout timm or torchvision take every student)");
}

Plan make_plan(Layout layout, const std::string& arch, const std::vector<std::string>& keys) {
  require_model(layout, arch);
  if (models::architecture(arch).family == "resnet") return resnet_plan(layout, keys);
  return mobilenet_plan(layout, arch, keys);
}

std::vector<std::string> key_names(const models::NamedTensors& tensors) {
  std::vector<std::string> keys;
  for (const auto& entry : tensors) keys.push_back(entry.first);
  return keys;
}

// mean / std (0-1 units, comma-separated) in 0-255 units: "[123.675, 116.28, 103.53]".
std::string scaled_255(const std::string& csv) {
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
}

}  // namespace

std::vector<std::string> layout_names() { return {"torchvision", "timm", "detectron2", "mmdet", "mmseg"}; }

std::string layout_name(Layout layout) {
  return layout_names().at(static_cast<std::size_t>(layout));
}

Layout parse_layout(const std::string& name) {
  const auto names = layout_names();
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<Layout>(i);
  throw UsageError("unknown layout '" + name + "'; expected one of torchvision, timm, detectron2, mmdet, mmseg");
}

std::string layout_pairs(Layout layout) {
  std::string out = layout_name(layout) + "'s backbones:";
  const char* sep = " ";
  for (const auto& arch : models::architecture_names())
    if (has_model(layout, arch)) {
      out += sep + arch;
      sep = ", ";
    }
  return out;
}

std::string layout_model_name(Layout layout, const std::string& arch) {
  const auto& info = models::architecture(arch);
  if (layout == Layout::kTorchvision) return arch;
  if (info.family == "resnet") {
    if (layout == Layout::kDetectron2) return "R-" + arch.substr(6);
    if (layout == Layout::kMmdet || layout == Layout::kMmseg) return "ResNet";
    return arch;
  }
  const auto it = framework_blocks().find({layout, arch});
  return it == framework_blocks().end() ? arch : it->second.model;
}

models::NamedTensors to_layout(Layout layout, const std::string& arch, const models::NamedTensors& tensors) {
  if (layout == Layout::kTorchvision) return tensors;
  const Plan plan = make_plan(layout, arch, key_names(tensors));
  models::NamedTensors out;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    if (plan[i].to.empty()) continue;
    const torch::Tensor& t = tensors[i].second;
    const bool reshape = plan[i].linear_to_conv && t.dim() == 2;
    out.emplace_back(plan[i].to, reshape ? t.reshape({t.size(0), t.size(1), 1, 1}) : t);
  }
  return out;
}

namespace {

// The student's own keys and tensors (with a classifier), built without moving torch's default
// generator: loading weights must not change what a seeded initialisation after it draws.
models::NamedTensors reference_state(const std::string& arch) {
  auto generator = at::detail::getDefaultCPUGenerator();
  at::Tensor saved;
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    saved = generator.get_state();
  }
  auto student = models::create_student(arch, {1});
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(saved);
  }
  return models::state_dict(*student);
}

}  // namespace

bool from_any_layout(const std::string& arch, models::NamedTensors& tensors, Layout& layout) {
  // torchvision's stem convolution, a name no other layout gives: no reference student needed.
  const std::string stem = models::architecture(arch).family == "resnet" ? "conv1.weight" : "features.0.0.weight";
  for (const auto& entry : tensors)
    if (entry.first == stem) {
      layout = Layout::kTorchvision;
      return true;
    }
  const auto reference = reference_state(arch);
  const std::vector<std::string> keys = key_names(reference);
  const std::set<std::string> own(keys.begin(), keys.end());
  for (const auto& entry : tensors)
    if (own.count(entry.first)) {
      layout = Layout::kTorchvision;
      return true;
    }
  auto aside = [](const std::string& key) {
    return starts_with(key, "head.") || key.find("num_batches_tracked") != std::string::npos;
  };
  for (const Layout candidate : {Layout::kTimm, Layout::kMmdet, Layout::kMmseg, Layout::kDetectron2}) {
    if (!has_model(candidate, arch)) continue;
    std::map<std::string, const Rename*> inverse;
    const Plan plan = make_plan(candidate, arch, keys);
    for (const auto& r : plan)
      if (!r.to.empty()) inverse[r.to] = &r;
    bool all = true, any = false;
    for (const auto& entry : tensors) {
      if (aside(entry.first) && !inverse.count(entry.first)) continue;
      any = true;
      all = all && inverse.count(entry.first);
    }
    if (!all || !any) continue;
    // In torchvision's order (a safetensors file lists its keys sorted), then "head.*".
    std::map<std::string, torch::Tensor> given;
    for (auto& [key, t] : tensors) given[key] = t;
    models::NamedTensors out;
    for (std::size_t i = 0; i < plan.size(); ++i) {
      const auto it = plan[i].to.empty() ? given.end() : given.find(plan[i].to);
      if (it != given.end()) {
        const torch::Tensor& t = it->second;
        const bool reshape = plan[i].linear_to_conv && t.dim() == 4;
        out.emplace_back(plan[i].from, reshape ? t.reshape({t.size(0), t.size(1)}) : t);
      } else if (plan[i].from.find("num_batches_tracked") != std::string::npos) {
        // detectron2's files have none; torchvision's BatchNorm starts them at 0.
        out.emplace_back(plan[i].from, torch::zeros_like(reference[i].second));
      }
    }
    for (auto& [key, t] : tensors)
      if (starts_with(key, "head.")) out.emplace_back(key, t);
    tensors = std::move(out);
    layout = candidate;
    return true;
  }
  return false;
}

std::string detectron2_config(const std::string& arch, const std::string& weights_file, const std::string& mean,
                              const std::string& std) {
  require_model(Layout::kDetectron2, arch);
  const std::string depth = arch.substr(6);
  std::string y;
  y += "# detectron2 config for " + weights_file + " (lgd export --layout detectron2): merge into your\n";
  y += "# config (cfg.merge_from_file) or copy the keys. torchvision's ResNets put the stride in the\n";
  y += "# 3x3 convolution and take RGB input.\n";
  y += "MODEL:\n";
  y += "  WEIGHTS: \"" + weights_file + "\"\n";
  if (!mean.empty() && !std.empty()) {
    y += "  PIXEL_MEAN: " + scaled_255(mean) + "  # the training mean, in 0-255 units\n";
    y += "  PIXEL_STD: " + scaled_255(std) + "\n";
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

std::string openmmlab_config(Layout layout, const std::string& arch, const std::string& weights_file,
                             const std::string& mean, const std::string& std) {
  if (layout != Layout::kMmdet && layout != Layout::kMmseg)
    throw UsageError("openmmlab_config: not an OpenMMLab layout");
  require_model(layout, arch);
  const bool det = layout == Layout::kMmdet;
  const std::string type = layout_model_name(layout, arch);
  std::string y;
  y += "# " + std::string(det ? "mmdetection" : "mmsegmentation") + " config for " + weights_file +
       " (lgd export --layout " + layout_name(layout) + "):\n";
  y += "# merge into your config (mmengine merges these dicts into the base's). The arguments make\n";
  y += "# the backbone torchvision's network, which the weights were trained as.\n";
  y += "model = dict(\n";
  if (!mean.empty() && !std.empty()) {
    y += "    # the training mean / std in 0-255 units; OpenMMLab reads images as BGR\n";
    y += "    data_preprocessor=dict(mean=" + scaled_255(mean) + ", std=" + scaled_255(std) + ", bgr_to_rgb=True),\n";
  } else {
    y += "    # mean / std: not recorded in the weights this came from (export from an lgd checkpoint);\n";
    y += "    # the input is RGB, OpenMMLab reads images as BGR\n";
    y += "    data_preprocessor=dict(bgr_to_rgb=True),\n";
  }
  y += "    backbone=dict(\n";
  y += "        type='" + type + "',\n";
  if (models::architecture(arch).family == "resnet") {
    y += "        depth=" + arch.substr(6) + ",\n";
    y += "        style='pytorch',  # the stride in the 3x3 convolution\n";
  } else if (arch == "mobilenet_v2") {
    y += "        widen_factor=1.0,\n";
    y += "        act_cfg=dict(type='ReLU6'),\n";
    y += "        norm_cfg=dict(type='BN', eps=1e-05),  # SyncBN on several GPUs\n";
  } else if (arch == "efficientnet_b0") {
    y += "        arch='b0',\n";
    y += "        conv_cfg=None,  # torchvision pads symmetrically (mmdet's default pads as TensorFlow)\n";
    y += "        act_cfg=dict(type='Swish'),\n";
    y += "        norm_cfg=dict(type='BN', requires_grad=True, eps=1e-05),\n";
  } else {
    y += "        arch='" + std::string(arch == "mobilenet_v3_large" ? "large" : "small") + "',\n";
    y += "        norm_cfg=dict(type='BN', eps=0.001),  # SyncBN on several GPUs\n";
    y += "        # mmseg's MobileNetV3 dilates its last stages (output stride 8) and pads its stride-2\n";
    y += "        # convolutions as TensorFlow's 'same' (torchvision's padding where the size is odd)\n";
  }
  y += "        init_cfg=dict(type='Pretrained', checkpoint='" + weights_file + "')))\n";
  return y;
}

}  // namespace lgd::exporting
