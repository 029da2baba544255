#pragma once
// Students: torchvision-identical modules (parameter and buffer names, shapes, order and
// default initialisation) that expose the pooled feature without the classifier.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>

namespace lgd::models {

class Student : public torch::nn::Module {
 public:
  Student(std::string arch, std::int64_t feature_dim, std::int64_t num_classes)
      : arch_(std::move(arch)), feature_dim_(feature_dim), num_classes_(num_classes) {}

  // [B, 3, H, W] float, normalised -> [B, F] pooled feature (global average pool of the
  // last feature map; the classifier is not applied).
  virtual torch::Tensor features(const torch::Tensor& images) = 0;

  // Logits [B, num_classes] when the model has a classifier, else the pooled feature.
  torch::Tensor forward(const torch::Tensor& images);

  const std::string& arch() const { return arch_; }
  std::int64_t feature_dim() const { return feature_dim_; }
  std::int64_t num_classes() const { return num_classes_; }  // 0: no classifier

  // The state-dict key prefix of the classifier ("fc." for ResNets, "classifier." else).
  std::string classifier_prefix() const;

 protected:
  // [B, F] -> [B, num_classes]; only called when num_classes() > 0.
  virtual torch::Tensor classify(const torch::Tensor& features) = 0;

 private:
  std::string arch_;
  std::int64_t feature_dim_;
  std::int64_t num_classes_;
};

struct StudentOptions {
  std::int64_t num_classes = 0;  // 0 builds the model without torchvision's classifier
};

// Builds a student with torchvision's default initialisation drawn from LibTorch's global
// generator (seed it with torch::manual_seed for a reproducible model).
// Throws UsageError for an unknown name.
std::shared_ptr<Student> create_student(const std::string& arch, const StudentOptions& options);

// LGD's projection head: Linear(F, F) -> ReLU -> Linear(F, D), keys "0.*" and "2.*".
torch::nn::Sequential make_projection_head(std::int64_t feature_dim, std::int64_t embed_dim);

// Conv weights in channels_last, as model.to(memory_format=torch.channels_last) does.
void to_channels_last(torch::nn::Module& module);

// Whether this LibTorch's CPU convolutions give the numbers of a float64 reference in the
// channels_last layout. Some builds do not on some CPUs: Debian 13's PyTorch 2.6 (oneDNN
// 3.7) on an AVX-512 AMD EPYC computes the 256 -> 512 1x1 stride-2 convolution of ResNet's
// last stage wrongly in channels_last (errors of the size of the output), and correctly in
// the contiguous layout. Checked once per process on a few small convolutions of the
// students' kinds; when false, `detail` names the one that differed and by how much.
bool cpu_channels_last_agrees(std::string* detail = nullptr);

// Whether `who` ("train", "eval") runs in channels_last on `device` when it `wants` to: not on
// a CPU whose convolutions get it wrong (cpu_channels_last_agrees), which it warns about once.
bool use_channels_last(const torch::Device& device, bool wants, const char* who);

// Number of elements over all parameters (buffers excluded).
std::int64_t parameter_count(const torch::nn::Module& module);

}  // namespace lgd::models
