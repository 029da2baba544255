#include <functional>

#include "lgd/core/errors.h"
#include "lgd/core/text_distance.h"
#include "lgd/models/architectures.h"
#include "lgd/models/student.h"
#include "zoo.h"

namespace lgd::models {

const std::vector<ArchitectureInfo>& architectures() {
  static const std::vector<ArchitectureInfo> kAll = {
      {"resnet18", 512, "resnet", "fc."},
      {"resnet34", 512, "resnet", "fc."},
      {"resnet50", 2048, "resnet", "fc."},
      {"mobilenet_v2", 1280, "mobilenet_v2", "classifier."},
      {"mobilenet_v3_large", 960, "mobilenet_v3", "classifier."},
      {"mobilenet_v3_small", 576, "mobilenet_v3", "classifier."},
      {"efficientnet_b0", 1280, "efficientnet", "classifier."},
  };
  return kAll;
}

std::vector<std::string> architecture_names() {
  std::vector<std::string> names;
  for (const auto& a : architectures()) names.push_back(a.name);
  return names;
}

const ArchitectureInfo& architecture(const std::string& name) {
  for (const auto& a : architectures())
    if (a.name == name) return a;
  std::string message = "unknown student architecture '" + name + "'";
  if (auto near = nearest(name, architecture_names())) message += " (did you mean " + *near + "?)";
  throw UsageError(message + "; expected one of " + join(architecture_names()));
}

std::shared_ptr<Student> create_student(const std::string& arch, const StudentOptions& options) {
  const ArchitectureInfo& info = architecture(arch);
  if (options.num_classes < 0)
    throw UsageError("num_classes must be >= 0, got " + std::to_string(options.num_classes));
  std::shared_ptr<Student> student;
  if (info.family == "resnet")
    student = detail::make_resnet(arch, options.num_classes);
  else if (info.family == "mobilenet_v2")
    student = detail::make_mobilenet_v2(options.num_classes);
  else if (info.family == "mobilenet_v3")
    student = detail::make_mobilenet_v3(arch == "mobilenet_v3_large", options.num_classes);
  else
    student = detail::make_efficientnet_b0(options.num_classes);
  return student;
}

std::string Student::classifier_prefix() const { return architecture(arch_).classifier_prefix; }

torch::Tensor Student::forward(const torch::Tensor& images) {
  auto f = features(images);
  return num_classes_ > 0 ? classify(f) : f;
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
}

std::int64_t parameter_count(const torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace lgd::models
