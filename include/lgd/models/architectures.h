#pragma once
// The student zoo's names and facts, without LibTorch (config validation and --help use it).
#include <cstdint>
#include <string>
#include <vector>

namespace lgd::models {

struct ArchitectureInfo {
  std::string name;               // torchvision's constructor name, e.g. "resnet18"
  std::int64_t feature_dim;       // width F of the pooled feature
  std::string family;             // resnet | mobilenet_v2 | mobilenet_v3 | efficientnet
  std::string classifier_prefix;  // state-dict prefix of torchvision's classifier
};

const std::vector<ArchitectureInfo>& architectures();
std::vector<std::string> architecture_names();

// Throws UsageError listing the valid names (and the nearest one) for an unknown name.
const ArchitectureInfo& architecture(const std::string& name);

}  // namespace lgd::models
