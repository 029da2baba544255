// A training checkpoint file -> load_checkpoint, and its integer fields as resume reads them.
#include <torch/torch.h>

#include "../fuzz_target.h"
#include "lgd/engine/checkpoint.h"

LGD_FUZZ_TARGET(checkpoint) {
  const std::string path = lgd::fuzz::write_scratch("last.ckpt", data, size);
  const auto checkpoint = lgd::engine::load_checkpoint(path);
  for (const char* key : {"step", "epoch", "seed"})
    if (checkpoint.meta.count(key)) (void)checkpoint.integer(key, path);
  for (const auto& [name, tensor] : checkpoint.tensors) (void)tensor.clone();
}
