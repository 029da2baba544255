#include "layers.h"

namespace lgd::models::detail {

torch::Tensor activate(Act act, const torch::Tensor& x) {
  switch (act) {
    case Act::kNone:
      return x;
    case Act::kReLU:
      return torch::relu(x);
    case Act::kReLU6:  // hardtanh as nn.ReLU6: gradient 0 at exactly 0 and 6, as torchvision's
      return torch::hardtanh(x, 0.0, 6.0);
    case Act::kHardswish:
      return torch::hardswish(x);
    case Act::kSiLU:
      return torch::silu(x);
    case Act::kSigmoid:
      return torch::sigmoid(x);
    case Act::kHardsigmoid:
      return torch::hardsigmoid(x);
  }
  return x;
}

torch::Tensor activate_(Act act, torch::Tensor& x) {
  switch (act) {
    case Act::kReLU:
      return x.relu_();
    case Act::kReLU6:
      return torch::hardtanh_(x, 0.0, 6.0);
    default:
      return activate(act, x);
  }
}

SqueezeExcitationImpl::SqueezeExcitationImpl(std::int64_t channels, std::int64_t squeeze, Act act,
                                             Act scale_act)
    : act_(act), scale_act_(scale_act) {
  fc1_ = register_module("fc1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, squeeze, 1)));
  fc2_ = register_module("fc2", torch::nn::Conv2d(torch::nn::Conv2dOptions(squeeze, channels, 1)));
}

torch::Tensor SqueezeExcitationImpl::forward(const torch::Tensor& x) {
  auto scale = torch::adaptive_avg_pool2d(x, {1, 1});
  scale = activate(scale_act_, fc2_->forward(activate(act_, fc1_->forward(scale))));
  return scale * x;
}

Stack conv_norm_act(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                    std::int64_t groups, Act act, BatchNormSpec bn, std::int64_t dilation) {
  Stack seq;
  seq->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                       .stride(stride)
                                       .padding((kernel - 1) / 2 * dilation)
                                       .dilation(dilation)
                                       .groups(groups)
                                       .bias(false)));
  seq->push_back(
      torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(bn.eps).momentum(bn.momentum)));
  if (act != Act::kNone) seq->push_back(Activation(act, /*inplace=*/true));
  return seq;
}

std::int64_t make_divisible(double value, std::int64_t divisor) {
  std::int64_t rounded = static_cast<std::int64_t>(value + divisor / 2.0) / divisor * divisor;
  rounded = std::max(divisor, rounded);
  if (rounded < 0.9 * value) rounded += divisor;
  return rounded;
}

void init_conv_and_norm(torch::nn::Module& root) {
  torch::NoGradGuard no_grad;
  for (auto& module : root.modules(/*include_self=*/false)) {
    if (auto* conv = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, /*a=*/0, torch::kFanOut, torch::kReLU);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      bn->weight.fill_(1.0);
      bn->bias.zero_();
    }
  }
}

void init_linear_normal(torch::nn::Module& root, double std) {
  torch::NoGradGuard no_grad;
  for (auto& module : root.modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::Linear>()) {
      torch::nn::init::normal_(linear->weight, 0, std);
      linear->bias.zero_();
    }
  }
}

torch::Tensor global_pool(const torch::Tensor& x) {
  return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
}

}  // namespace lgd::models::detail
