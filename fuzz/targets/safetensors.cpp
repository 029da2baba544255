// safetensors bytes -> parse_safetensors (exported weights, checkpoints, text banks).
#include <torch/torch.h>

#include <vector>

#include "../fuzz_target.h"
#include "lgd/export/safetensors.h"

LGD_FUZZ_TARGET(safetensors) {
  const std::vector<char> bytes(data, data + size);
  if (!lgd::exporting::looks_like_safetensors(bytes)) return;
  const auto file = lgd::exporting::parse_safetensors(bytes, "input.safetensors");
  for (const auto& [name, tensor] : file.tensors) (void)tensor.clone();  // every element read
}
