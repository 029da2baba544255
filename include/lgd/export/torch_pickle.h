#pragma once
// PyTorch's torch.save format (a zip archive: data.pkl + data/<storage key>) for state dicts.
#include <string>
#include <vector>

#include "lgd/models/state_dict.h"

namespace lgd::exporting {

// A torch.save archive of a dict {name: tensor} in the given order; Python's torch.load
// returns a dict that nn.Module.load_state_dict accepts.
std::vector<char> torch_save_bytes(const models::NamedTensors& tensors);

// Reads the tensors of a state dict saved by Python's torch.save (the zip format of torch
// 1.6 and later, or the legacy format before it, which _use_new_zipfile_serialization=False
// still writes): a dict or OrderedDict of tensors, or a checkpoint dict holding one under
// "state_dict", "model" or "student". A "module." prefix on every key (DDP) is removed.
// Only the pickle opcodes and classes that state dicts use are understood; anything else
// is an IoError naming the file.
models::NamedTensors read_torch_state_dict(const std::string& path);

// True when the bytes start with a zip local-file header.
bool looks_like_zip(const std::vector<char>& bytes);

// True when the bytes start with the legacy torch.save magic number's pickle.
bool looks_like_legacy_torch_save(const std::vector<char>& bytes);

}  // namespace lgd::exporting
