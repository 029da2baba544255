// torchvision.models.resnet{18,34,50}: ResNet v1.5 (stride on the 3x3 conv of bottlenecks).
#include <string>
#include <vector>

#include "layers.h"
#include "zoo.h"

namespace lgd::models::detail {
namespace {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;

Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride) {
  return Conv2d(Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

// Registration order follows torchvision: conv1, bn1, (relu), conv2, bn2, downsample.
class BasicBlockImpl : public torch::nn::Module {
 public:
  static constexpr std::int64_t kExpansion = 1;
  BasicBlockImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride,
                 torch::nn::Sequential downsample) {
    conv1_ = register_module("conv1", conv(inplanes, planes, 3, stride));
    bn1_ = register_module("bn1", BatchNorm2d(planes));
    conv2_ = register_module("conv2", conv(planes, planes, 3, 1));
    bn2_ = register_module("bn2", BatchNorm2d(planes));
    if (downsample) downsample_ = register_module("downsample", downsample);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = bn1_->forward(conv1_->forward(x)).relu_();
    out = bn2_->forward(conv2_->forward(out));
    return (out + (downsample_ ? downsample_->forward(x) : x)).relu_();
  }

 private:
  Conv2d conv1_{nullptr}, conv2_{nullptr};
  BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::Sequential downsample_{nullptr};
};

// conv1, bn1, conv2, bn2, conv3, bn3, (relu), downsample.
class BottleneckImpl : public torch::nn::Module {
 public:
  static constexpr std::int64_t kExpansion = 4;
  BottleneckImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride,
                 torch::nn::Sequential downsample) {
    conv1_ = register_module("conv1", conv(inplanes, planes, 1, 1));
    bn1_ = register_module("bn1", BatchNorm2d(planes));
    conv2_ = register_module("conv2", conv(planes, planes, 3, stride));
    bn2_ = register_module("bn2", BatchNorm2d(planes));
    conv3_ = register_module("conv3", conv(planes, planes * kExpansion, 1, 1));
    bn3_ = register_module("bn3", BatchNorm2d(planes * kExpansion));
    if (downsample) downsample_ = register_module("downsample", downsample);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = bn1_->forward(conv1_->forward(x)).relu_();
    out = bn2_->forward(conv2_->forward(out)).relu_();
    out = bn3_->forward(conv3_->forward(out));
    return (out + (downsample_ ? downsample_->forward(x) : x)).relu_();
  }

 private:
  Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
  torch::nn::Sequential downsample_{nullptr};
};

class ResNet : public Student {
 public:
  template <typename BlockImpl>
  static std::shared_ptr<ResNet> build(const std::string& arch, const std::vector<int>& depths,
                                       std::int64_t num_classes) {
    auto net = std::make_shared<ResNet>(arch, 512 * BlockImpl::kExpansion, num_classes);
    net->conv1_ = net->register_module(
        "conv1", Conv2d(Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)));
    net->bn1_ = net->register_module("bn1", BatchNorm2d(64));
    std::int64_t inplanes = 64;
    const std::int64_t planes[4] = {64, 128, 256, 512};
    for (int i = 0; i < 4; ++i) {
      torch::nn::Sequential layer;
      const std::int64_t stride = i == 0 ? 1 : 2;
      for (int b = 0; b < depths[i]; ++b) {
        torch::nn::Sequential downsample{nullptr};
        const std::int64_t out = planes[i] * BlockImpl::kExpansion;
        if (b == 0 && (stride != 1 || inplanes != out)) {
          downsample = torch::nn::Sequential(conv(inplanes, out, 1, stride), BatchNorm2d(out));
        }
        layer->push_back(
            std::make_shared<BlockImpl>(inplanes, planes[i], b == 0 ? stride : 1, downsample));
        inplanes = out;
      }
      net->layers_.push_back(net->register_module("layer" + std::to_string(i + 1), layer));
    }
    if (num_classes > 0)
      net->fc_ = net->register_module("fc", torch::nn::Linear(inplanes, num_classes));
    init_conv_and_norm(*net);  // the fc keeps nn.Linear's default initialisation
    return net;
  }

  using Student::Student;

  torch::Tensor features(const torch::Tensor& images) override {
    auto x = bn1_->forward(conv1_->forward(images)).relu_();
    x = torch::max_pool2d(x, /*kernel_size=*/3, /*stride=*/2, /*padding=*/1);
    for (auto& layer : layers_) x = layer->forward(x);
    return global_pool(x);
  }

 protected:
  torch::Tensor classify(const torch::Tensor& f) override { return fc_->forward(f); }

 private:
  Conv2d conv1_{nullptr};
  BatchNorm2d bn1_{nullptr};
  std::vector<torch::nn::Sequential> layers_;
  torch::nn::Linear fc_{nullptr};
};

}  // namespace

std::shared_ptr<Student> make_resnet(const std::string& arch, std::int64_t num_classes) {
  if (arch == "resnet18") return ResNet::build<BasicBlockImpl>(arch, {2, 2, 2, 2}, num_classes);
  if (arch == "resnet34") return ResNet::build<BasicBlockImpl>(arch, {3, 4, 6, 3}, num_classes);
  return ResNet::build<BottleneckImpl>(arch, {3, 4, 6, 3}, num_classes);
}

}  // namespace lgd::models::detail
