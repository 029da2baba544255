#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "lgd/core/errors.h"
#include "lgd/core/logging.h"
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

namespace {

struct LayoutCheck {
  bool agrees = true;
  std::string detail;
};

LayoutCheck check_cpu_channels_last() {
  struct Case {
    std::int64_t cin, cout, kernel, stride, groups, size;
  };
  // ResNet's stage transitions (3x3 / 1x1 stride 2), a plain 3x3, the stem, MobileNet's
  // depthwise and pointwise convolutions.
  const Case cases[] = {{256, 512, 1, 2, 1, 4}, {128, 256, 3, 2, 1, 6}, {64, 64, 3, 1, 1, 6},
                        {3, 32, 3, 2, 1, 12},   {96, 96, 3, 2, 96, 8},  {96, 24, 1, 1, 1, 6}};
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(20240611);
  LayoutCheck result;
  for (const auto& c : cases) {
    const auto x = torch::randn({2, c.cin, c.size, c.size}, gen, torch::kFloat64);
    const auto w = torch::randn({c.cout, c.cin / c.groups, c.kernel, c.kernel}, gen, torch::kFloat64) /
                   std::sqrt(static_cast<double>(c.cin / c.groups * c.kernel * c.kernel));
    const std::int64_t pad = c.kernel / 2;
    // float64 convolutions run LibTorch's own kernels, never oneDNN's.
    const auto reference = at::conv2d(x, w, {}, c.stride, pad, 1, c.groups);
    const auto cl = at::MemoryFormat::ChannelsLast;
    const auto got = at::conv2d(x.to(torch::kFloat32).contiguous(cl), w.to(torch::kFloat32).contiguous(cl), {},
                                c.stride, pad, 1, c.groups);
    const double scale = reference.abs().max().item<double>();
    const double err = (got.to(torch::kFloat64) - reference).abs().max().item<double>() / std::max(scale, 1e-12);
    if (err > 1e-4) {
      result.agrees = false;
      result.detail = fmt::format("a {}x{} stride-{} convolution {} -> {}{} on {}x{} inputs is off by {:.2g} of its "
                                  "largest output",
                                  c.kernel, c.kernel, c.stride, c.cin, c.cout, c.groups > 1 ? " (depthwise)" : "",
                                  c.size, c.size, err);
      break;
    }
  }
  return result;
}

}  // namespace

bool cpu_channels_last_agrees(std::string* detail) {
  static const LayoutCheck check = check_cpu_channels_last();
  if (detail) *detail = check.detail;
  return check.agrees;
}

bool use_channels_last(const torch::Device& device, bool wants, const char* who) {
  std::string why;
  if (!wants || !device.is_cpu() || cpu_channels_last_agrees(&why)) return wants;
  spdlog::warn("[{}] this LibTorch's CPU convolutions are wrong in channels_last ({}): using the contiguous layout "
               "instead (ONEDNN_MAX_CPU_ISA=AVX2 is another way round it)",
               who, why);
  return false;
}

std::int64_t parameter_count(const torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace lgd::models
