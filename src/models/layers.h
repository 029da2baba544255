#pragma once
// Building blocks shared by the torchvision-compatible students (src/models only).
#include <torch/torch.h>

#include <cstdint>

#include "lgd/models/student.h"

namespace lgd::models::detail {

enum class Act { kNone, kReLU, kReLU6, kHardswish, kSiLU, kSigmoid, kHardsigmoid };

torch::Tensor activate(Act act, const torch::Tensor& x);
// ReLU and ReLU6 in place (as torchvision's inplace=True: one kernel each way, no new
// tensor); the others as activate().
torch::Tensor activate_(Act act, torch::Tensor& x);

// A parameter-free activation that occupies its index in a Sequential, as torchvision's do.
// In place only where its input is a fresh tensor nobody else reads (after a BatchNorm).
class ActivationImpl : public torch::nn::Module {
 public:
  explicit ActivationImpl(Act act, bool inplace = false) : act_(act), inplace_(inplace) {}
  torch::Tensor forward(torch::Tensor x) { return inplace_ ? activate_(act_, x) : activate(act_, x); }

 private:
  Act act_;
  bool inplace_;
};
TORCH_MODULE(Activation);

// nn.Sequential that can itself sit inside a Sequential (LibTorch needs a non-template
// forward for that).
class StackImpl : public torch::nn::SequentialImpl {
 public:
  using SequentialImpl::SequentialImpl;
  torch::Tensor forward(torch::Tensor x) { return SequentialImpl::forward(std::move(x)); }
};
TORCH_MODULE(Stack);

// torchvision.ops.SqueezeExcitation: avgpool -> fc1 (1x1 conv) -> act -> fc2 -> scale_act.
class SqueezeExcitationImpl : public torch::nn::Module {
 public:
  SqueezeExcitationImpl(std::int64_t channels, std::int64_t squeeze, Act act, Act scale_act);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d fc1_{nullptr}, fc2_{nullptr};
  Act act_, scale_act_;
};
TORCH_MODULE(SqueezeExcitation);

struct BatchNormSpec {
  double eps = 1e-5;
  double momentum = 0.1;
};

// torchvision.ops.Conv2dNormActivation: Conv2d(bias=False) -> BatchNorm2d [-> activation],
// padding (k - 1) / 2 * dilation.
Stack conv_norm_act(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                    std::int64_t groups, Act act, BatchNormSpec bn = {}, std::int64_t dilation = 1);

// torchvision's _make_divisible.
std::int64_t make_divisible(double value, std::int64_t divisor = 8);

// torchvision's init loop for convolutions and batch norms: kaiming_normal_(fan_out, relu)
// on conv weights, zero conv biases, BN weight 1 and bias 0.
void init_conv_and_norm(torch::nn::Module& root);

// Linear layers: weight ~ N(0, std), bias 0 (torchvision's MobileNets).
void init_linear_normal(torch::nn::Module& root, double std);

// Global average pool + flatten: [B, C, H, W] -> [B, C].
torch::Tensor global_pool(const torch::Tensor& x);

// A student laid out as torchvision's MobileNets and EfficientNets: `features` (a stack
// ending in the last feature map), global average pool, optional `classifier` stack.
class FeaturesClassifierStudent : public Student {
 public:
  using Student::Student;
  torch::Tensor features(const torch::Tensor& images) override {
    return global_pool(features_->forward(images));
  }

 protected:
  // Registers both stacks (the classifier only when it is non-null) in torchvision's order.
  void set_stacks(Stack features, Stack classifier) {
    features_ = register_module("features", std::move(features));
    if (classifier) classifier_ = register_module("classifier", std::move(classifier));
  }
  torch::Tensor classify(const torch::Tensor& f) override { return classifier_->forward(f); }

 private:
  Stack features_{nullptr};
  Stack classifier_{nullptr};
};

}  // namespace lgd::models::detail
