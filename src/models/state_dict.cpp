#include "lgd/models/state_dict.h"

#include <torch/torch.h>

#include <map>

#include "lgd/core/errors.h"
#include "lgd/core/shape_string.h"
#include "lgd/core/text_distance.h"

namespace lgd::models {
namespace {

void collect(const torch::nn::Module& module, const std::string& prefix, NamedTensors& out) {
  for (const auto& p : module.named_parameters(/*recurse=*/false))
    out.emplace_back(prefix + p.key(), p.value().detach());
  for (const auto& b : module.named_buffers(/*recurse=*/false))
    out.emplace_back(prefix + b.key(), b.value().detach());
  for (const auto& child : module.named_children())
    collect(*child.value(), prefix + child.key() + ".", out);
}

std::string key_list(const std::vector<std::string>& keys) {
  constexpr std::size_t kShown = 6;
  std::vector<std::string> shown(keys.begin(), keys.begin() + std::min(keys.size(), kShown));
  std::string s = join(shown);
  if (keys.size() > kShown) s += " and " + std::to_string(keys.size() - kShown) + " more";
  return s;
}

}  // namespace

NamedTensors state_dict(const torch::nn::Module& module, const std::string& prefix) {
  NamedTensors out;
  collect(module, prefix, out);
  return out;
}

void load_state_dict(torch::nn::Module& module, const NamedTensors& tensors,
                     const std::string& source) {
  std::map<std::string, const torch::Tensor*> given;
  for (const auto& [key, tensor] : tensors) given[key] = &tensor;
  const NamedTensors own = state_dict(module);
  std::vector<std::string> missing, unexpected;
  for (const auto& [key, target] : own)
    if (!given.count(key)) missing.push_back(key);
  std::map<std::string, bool> known;
  for (const auto& [key, target] : own) known[key] = true;
  for (const auto& [key, tensor] : tensors)
    if (!known.count(key)) unexpected.push_back(key);
  if (!missing.empty())
    throw IoError(source + ": missing " + std::to_string(missing.size()) +
                  " key(s): " + key_list(missing));
  if (!unexpected.empty())
    throw IoError(source + ": unexpected " + std::to_string(unexpected.size()) +
                  " key(s): " + key_list(unexpected));
  torch::NoGradGuard no_grad;
  for (const auto& [key, target] : own) {
    const torch::Tensor& value = *given[key];
    if (!value.sizes().equals(target.sizes()))
      throw IoError(source + ": " + key + ": shape " + shape_string(value.sizes()) + ", expected " +
                    shape_string(target.sizes()));
    target.copy_(value.to(target.dtype()));
  }
}

NamedTensors with_prefix_removed(const NamedTensors& tensors, const std::string& prefix) {
  NamedTensors out;
  for (const auto& [key, tensor] : tensors)
    if (key.compare(0, prefix.size(), prefix) == 0)
      out.emplace_back(key.substr(prefix.size()), tensor);
  return out;
}

}  // namespace lgd::models
