// torchvision.models.mobilenet_v2 (width 1.0).
#include "layers.h"
#include "zoo.h"

namespace lgd::models::detail {
namespace {

// torchvision's InvertedResidual: self.conv = [expand 1x1] -> depthwise 3x3 -> project 1x1 -> BN.
class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(std::int64_t in, std::int64_t out, std::int64_t stride, std::int64_t expand)
      : use_residual_(stride == 1 && in == out) {
    const std::int64_t hidden = in * expand;
    Stack conv;
    if (expand != 1) conv->push_back(conv_norm_act(in, hidden, 1, 1, 1, Act::kReLU6));
    conv->push_back(conv_norm_act(hidden, hidden, 3, stride, /*groups=*/hidden, Act::kReLU6));
    conv->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(hidden, out, 1).bias(false)));
    conv->push_back(torch::nn::BatchNorm2d(out));
    conv_ = register_module("conv", conv);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = conv_->forward(x);
    return use_residual_ ? x + y : y;
  }

 private:
  bool use_residual_;
  Stack conv_{nullptr};
};

class MobileNetV2 : public FeaturesClassifierStudent {
 public:
  explicit MobileNetV2(std::int64_t num_classes)
      : FeaturesClassifierStudent("mobilenet_v2", 1280, num_classes) {
    // t (expansion), c (channels), n (repeats), s (first stride)
    const std::int64_t settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2},
                                         {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2},
                                         {6, 320, 1, 1}};
    std::int64_t in = make_divisible(32);
    Stack features;
    features->push_back(conv_norm_act(3, in, 3, 2, 1, Act::kReLU6));
    for (const auto& s : settings) {
      const std::int64_t out = make_divisible(static_cast<double>(s[1]));
      for (std::int64_t i = 0; i < s[2]; ++i) {
        features->push_back(
            std::make_shared<InvertedResidualImpl>(in, out, i == 0 ? s[3] : 1, s[0]));
        in = out;
      }
    }
    features->push_back(conv_norm_act(in, 1280, 1, 1, 1, Act::kReLU6));
    Stack classifier{nullptr};
    if (num_classes > 0) {
      classifier = Stack(torch::nn::Dropout(0.2), torch::nn::Linear(1280, num_classes));
    }
    set_stacks(features, classifier);
    init_conv_and_norm(*this);
    init_linear_normal(*this, /*std=*/0.01);
  }
};

}  // namespace

std::shared_ptr<Student> make_mobilenet_v2(std::int64_t num_classes) {
  return std::make_shared<MobileNetV2>(num_classes);
}

}  // namespace lgd::models::detail
