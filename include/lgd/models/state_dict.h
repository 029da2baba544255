#pragma once
// State dicts with PyTorch's key order and strict loading.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

namespace lgd::models {

// Ordered (name, tensor) pairs, as Python's OrderedDict state_dict.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Parameters and buffers in the order nn.Module.state_dict() lists them: each module's own
// parameters, then its own buffers, then its children depth-first. Tensors are detached
// views of the module's storage.
NamedTensors state_dict(const torch::nn::Module& module, const std::string& prefix = "");

// Copies `tensors` into the module. Strict: every key of the module must be present with
// its shape, and no other key may be; otherwise an IoError names `source` and the keys.
void load_state_dict(torch::nn::Module& module, const NamedTensors& tensors,
                     const std::string& source);

// The entries whose keys start with `prefix`, with the prefix removed.
NamedTensors with_prefix_removed(const NamedTensors& tensors, const std::string& prefix);

}  // namespace lgd::models
