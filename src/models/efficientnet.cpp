// torchvision.models.efficientnet_b0 (width 1.0, depth 1.0, stochastic depth 0.2).
#include <cmath>
#include <vector>

#include "layers.h"
#include "zoo.h"

namespace lgd::models::detail {
namespace {

// torchvision.ops.StochasticDepth(p, "row"): in training, drops the residual branch per
// sample with probability p and scales survivors by 1 / (1 - p); identity in eval.
torch::Tensor stochastic_depth(const torch::Tensor& x, double p, bool training) {
  if (!training || p == 0.0) return x;
  const double survival = 1.0 - p;
  std::vector<std::int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  auto noise = torch::empty(shape, x.options()).bernoulli_(survival);
  if (survival > 0.0) noise.div_(survival);
  return x * noise;
}

class MBConvImpl : public torch::nn::Module {
 public:
  MBConvImpl(std::int64_t expand, std::int64_t kernel, std::int64_t stride, std::int64_t in,
             std::int64_t out, double drop_prob)
      : use_residual_(stride == 1 && in == out), drop_prob_(drop_prob) {
    const std::int64_t expanded = make_divisible(static_cast<double>(in * expand));
    Stack block;
    if (expanded != in) block->push_back(conv_norm_act(in, expanded, 1, 1, 1, Act::kSiLU));
    block->push_back(conv_norm_act(expanded, expanded, kernel, stride, expanded, Act::kSiLU));
    block->push_back(
        SqueezeExcitation(expanded, std::max<std::int64_t>(1, in / 4), Act::kSiLU, Act::kSigmoid));
    block->push_back(conv_norm_act(expanded, out, 1, 1, 1, Act::kNone));
    block_ = register_module("block", block);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = block_->forward(x);
    if (!use_residual_) return y;
    return stochastic_depth(y, drop_prob_, is_training()) + x;
  }

 private:
  bool use_residual_;
  double drop_prob_;
  Stack block_{nullptr};
};

struct StageConfig {
  std::int64_t expand, kernel, stride, in, out, layers;
};

const std::vector<StageConfig> kB0 = {
    {1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},   {6, 5, 2, 24, 40, 2},   {6, 3, 2, 40, 80, 3},
    {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1},
};
constexpr double kStochasticDepth = 0.2;

class EfficientNet : public FeaturesClassifierStudent {
 public:
  explicit EfficientNet(std::int64_t num_classes)
      : FeaturesClassifierStudent("efficientnet_b0", 1280, num_classes) {
    Stack features;
    features->push_back(conv_norm_act(3, kB0.front().in, 3, 2, 1, Act::kSiLU));
    std::int64_t total_blocks = 0;
    for (const auto& s : kB0) total_blocks += s.layers;
    std::int64_t block_id = 0;
    for (const auto& s : kB0) {
      Stack stage;
      for (std::int64_t i = 0; i < s.layers; ++i) {
        const double p = kStochasticDepth * static_cast<double>(block_id) / total_blocks;
        stage->push_back(std::make_shared<MBConvImpl>(s.expand, s.kernel, i == 0 ? s.stride : 1,
                                                      i == 0 ? s.in : s.out, s.out, p));
        ++block_id;
      }
      features->push_back(stage);
    }
    const std::int64_t last_in = kB0.back().out;
    features->push_back(conv_norm_act(last_in, 4 * last_in, 1, 1, 1, Act::kSiLU));
    Stack classifier{nullptr};
    if (num_classes > 0) {
      classifier = Stack(torch::nn::Dropout(0.2), torch::nn::Linear(4 * last_in, num_classes));
    }
    set_stacks(features, classifier);
    init_conv_and_norm(*this);
    torch::NoGradGuard no_grad;
    for (auto& module : modules(/*include_self=*/false)) {
      if (auto* linear = module->as<torch::nn::Linear>()) {
        const double range = 1.0 / std::sqrt(static_cast<double>(linear->weight.size(0)));
        torch::nn::init::uniform_(linear->weight, -range, range);
        linear->bias.zero_();
      }
    }
  }
};

}  // namespace

std::shared_ptr<Student> make_efficientnet_b0(std::int64_t num_classes) {
  return std::make_shared<EfficientNet>(num_classes);
}

}  // namespace lgd::models::detail
