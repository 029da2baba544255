#pragma once
// Reading and writing student weights in the formats users hand to other frameworks.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "lgd/export/safetensors.h"
#include "lgd/models/state_dict.h"
#include "lgd/models/student.h"

namespace lgd::exporting {

enum class WeightsFormat { kTorchvision, kSafetensors };

// "torchvision" | "safetensors"; UsageError otherwise.
WeightsFormat parse_format(const std::string& name);

struct WeightsFile {
  models::NamedTensors tensors;
  Metadata metadata;  // safetensors only
};

// Reads a .pth written by torch.save or a .safetensors file, told apart by content. An lgd
// training checkpoint (a .safetensors file too) gives its student's keys and its head's
// "head.*" keys, with the checkpoint's metadata (arch, ...).
WeightsFile read_weights(const std::string& path);

// Writes atomically (temporary file + rename). Metadata is stored by safetensors only.
void write_weights(const std::string& path, const models::NamedTensors& tensors,
                   WeightsFormat format, const Metadata& metadata);

// A student and, optionally, its projection head, as loaded from weights.
struct StudentWeights {
  std::shared_ptr<models::Student> student;
  torch::nn::Sequential head{nullptr};
  Metadata metadata;  // the file's (safetensors, an lgd checkpoint)
};

// The JSON file written beside an exported .pth (which has no room for metadata): x.pth ->
// x.json. It holds `metadata` with numbers as numbers and mean / std as lists.
std::string sidecar_path(const std::string& weights_path);
void write_sidecar(const std::string& path, const Metadata& metadata);

// Builds `arch` and loads `path` into it strictly. num_classes: the classifier to build;
// nullopt takes it from the file (its classifier's output width, or none). A file with a
// classifier loaded into a model without one drops the classifier keys; keys under "head."
// fill a projection head when present.
StudentWeights load_student_weights(const std::string& arch, const std::string& path,
                                    std::optional<std::int64_t> num_classes);
// The same from a file already read (`path` names it in errors).
StudentWeights load_student_weights(const std::string& arch, WeightsFile file, const std::string& path,
                                    std::optional<std::int64_t> num_classes);

// The tensors to export: the student's state dict in torchvision's order, then the head's
// keys under "head." when a head is given.
models::NamedTensors export_tensors(const models::Student& student,
                                    const torch::nn::Sequential& head);

}  // namespace lgd::exporting
