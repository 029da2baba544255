// torchvision.models.mobilenet_v3_large / mobilenet_v3_small (width 1.0, no dilation).
#include <vector>

#include "layers.h"
#include "zoo.h"

namespace lgd::models::detail {
namespace {

constexpr BatchNormSpec kBn{/*eps=*/0.001, /*momentum=*/0.01};

struct BlockConfig {
  std::int64_t in, kernel, expanded, out;
  bool use_se;
  bool hardswish;  // "HS" (else "RE")
  std::int64_t stride;
};

// torchvision's mobilenetv3.InvertedResidual: self.block = [expand] -> depthwise -> [SE] ->
// project.
class InvertedResidualImpl : public torch::nn::Module {
 public:
  explicit InvertedResidualImpl(const BlockConfig& c)
      : use_residual_(c.stride == 1 && c.in == c.out) {
    const Act act = c.hardswish ? Act::kHardswish : Act::kReLU;
    Stack block;
    if (c.expanded != c.in) block->push_back(conv_norm_act(c.in, c.expanded, 1, 1, 1, act, kBn));
    block->push_back(
        conv_norm_act(c.expanded, c.expanded, c.kernel, c.stride, c.expanded, act, kBn));
    if (c.use_se) {
      block->push_back(SqueezeExcitation(c.expanded, make_divisible(c.expanded / 4), Act::kReLU,
                                         Act::kHardsigmoid));
    }
    block->push_back(conv_norm_act(c.expanded, c.out, 1, 1, 1, Act::kNone, kBn));
    block_ = register_module("block", block);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = block_->forward(x);
    return use_residual_ ? x + y : y;
  }

 private:
  bool use_residual_;
  Stack block_{nullptr};
};

const std::vector<BlockConfig> kLarge = {
    {16, 3, 16, 16, false, false, 1},  {16, 3, 64, 24, false, false, 2},
    {24, 3, 72, 24, false, false, 1},  {24, 5, 72, 40, true, false, 2},
    {40, 5, 120, 40, true, false, 1},  {40, 5, 120, 40, true, false, 1},
    {40, 3, 240, 80, false, true, 2},  {80, 3, 200, 80, false, true, 1},
    {80, 3, 184, 80, false, true, 1},  {80, 3, 184, 80, false, true, 1},
    {80, 3, 480, 112, true, true, 1},  {112, 3, 672, 112, true, true, 1},
    {112, 5, 672, 160, true, true, 2}, {160, 5, 960, 160, true, true, 1},
    {160, 5, 960, 160, true, true, 1},
};
const std::vector<BlockConfig> kSmall = {
    {16, 3, 16, 16, true, false, 2},  {16, 3, 72, 24, false, false, 2},
    {24, 3, 88, 24, false, false, 1}, {24, 5, 96, 40, true, true, 2},
    {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
    {40, 5, 120, 48, true, true, 1},  {48, 5, 144, 48, true, true, 1},
    {48, 5, 288, 96, true, true, 2},  {96, 5, 576, 96, true, true, 1},
    {96, 5, 576, 96, true, true, 1},
};

class MobileNetV3 : public FeaturesClassifierStudent {
 public:
  MobileNetV3(bool large, std::int64_t num_classes)
      : FeaturesClassifierStudent(large ? "mobilenet_v3_large" : "mobilenet_v3_small",
                                  large ? 960 : 576, num_classes) {
    const auto& blocks = large ? kLarge : kSmall;
    const std::int64_t last_channel = large ? 1280 : 1024;
    Stack features;
    features->push_back(conv_norm_act(3, blocks.front().in, 3, 2, 1, Act::kHardswish, kBn));
    for (const auto& c : blocks) features->push_back(std::make_shared<InvertedResidualImpl>(c));
    const std::int64_t last_in = blocks.back().out;
    features->push_back(conv_norm_act(last_in, 6 * last_in, 1, 1, 1, Act::kHardswish, kBn));
    Stack classifier{nullptr};
    if (num_classes > 0) {
      classifier = Stack(torch::nn::Linear(6 * last_in, last_channel), Activation(Act::kHardswish),
                         torch::nn::Dropout(0.2), torch::nn::Linear(last_channel, num_classes));
    }
    set_stacks(features, classifier);
    init_conv_and_norm(*this);
    init_linear_normal(*this, /*std=*/0.01);
  }
};

}  // namespace

std::shared_ptr<Student> make_mobilenet_v3(bool large, std::int64_t num_classes) {
  return std::make_shared<MobileNetV3>(large, num_classes);
}

}  // namespace lgd::models::detail
