#include "lgd/export/weights_io.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <nlohmann/json.hpp>

#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/export/layouts.h"
#include "lgd/export/torch_pickle.h"
#include "lgd/models/architectures.h"

namespace lgd::exporting {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// The classifier's output width in `tensors`, 0 when it has none.
std::int64_t classifier_width(const models::NamedTensors& tensors, const std::string& prefix) {
  std::int64_t width = 0;
  for (const auto& [key, tensor] : tensors) {
    if (starts_with(key, prefix) && tensor.dim() == 2) width = tensor.size(0);  // last Linear wins
  }
  return width;
}

// Checkpoints of self-supervised training code hold the student beside other models: SEED's
// and LGD's official code save {"state_dict": DDP(model).state_dict(), ...} with the student
// under "module.student." (the teacher under "module.teacher.", the queue as "module.queue"),
// MoCo's under "module.encoder_q.". The torch.save reader has already unwrapped "state_dict"
// and removed a "module." common to every key. The student's keys are taken and the prefix
// returned; its projection MLP (fc = Linear(F, F), ReLU, Linear(F, D)) becomes lgd's head,
// a single fc Linear (a projection, not a classifier) is dropped, as MoCo's linear probe does.
std::string take_student(models::NamedTensors& tensors, const std::string& classifier_prefix) {
  for (const std::string prefix : {"student.", "encoder_q."}) {
    bool found = false, plain = false;
    for (const auto& entry : tensors) {
      found = found || starts_with(entry.first, prefix);
      plain = plain || starts_with(entry.first, "conv1.") || starts_with(entry.first, "features.");
    }
    if (!found || plain) continue;
    models::NamedTensors student;
    bool mlp = false;
    for (auto& [key, value] : tensors)
      if (starts_with(key, prefix)) {
        student.emplace_back(key.substr(prefix.size()), value);
        mlp = mlp || student.back().first == classifier_prefix + "2.weight";
      }
    models::NamedTensors out;
    for (auto& [key, value] : student) {
      if (!starts_with(key, classifier_prefix)) {
        out.emplace_back(key, value);
      } else if (mlp) {
        const std::string rest = key.substr(classifier_prefix.size());  // "0.weight", "2.bias"
        if (rest[0] == '0' || rest[0] == '2') out.emplace_back("head." + rest, value);
      }
    }
    tensors = std::move(out);
    return prefix;
  }
  return "";
}

// A few of the file's keys, for an error about keys that do not fit.
std::string sample_keys(const models::NamedTensors& tensors) {
  std::string out;
  const std::size_t n = std::min<std::size_t>(tensors.size(), 4);
  for (std::size_t i = 0; i < n; ++i) out += (i ? ", " : "") + tensors[i].first;
  if (tensors.size() > n) out += ", ... (" + std::to_string(tensors.size()) + " in all)";
  return out.empty() ? "none" : out;
}

}  // namespace

WeightsFormat parse_format(const std::string& name) {
  if (name == "torchvision") return WeightsFormat::kTorchvision;
  if (name == "safetensors") return WeightsFormat::kSafetensors;
  throw UsageError("unknown export format '" + name + "'; expected torchvision or safetensors");
}

WeightsFile read_weights(const std::string& path) {
  const std::vector<char> bytes = read_file(path);
  if (looks_like_zip(bytes) || looks_like_legacy_torch_save(bytes)) return WeightsFile{read_torch_state_dict(path), {}};
  if (looks_like_safetensors(bytes)) {
    SafetensorsFile file = parse_safetensors(bytes, path);
    if (file.metadata.count("lgd_checkpoint")) {
      // A training checkpoint: the student's keys ("student.*", prefix removed) and the
      // projection head's ("head.*"); optimiser and bank state are left out.
      models::NamedTensors tensors;
      for (auto& [key, value] : file.tensors) {
        if (starts_with(key, "student."))
          tensors.emplace_back(key.substr(8), value);
        else if (starts_with(key, "head."))
          tensors.emplace_back(key, value);
      }
      if (tensors.empty()) throw IoError(path + ": checkpoint holds no student.* tensors");
      return WeightsFile{std::move(tensors), std::move(file.metadata)};
    }
    return WeightsFile{std::move(file.tensors), std::move(file.metadata)};
  }
  throw IoError(path +
                ": unknown weights format (expected a torch.save .pth, zip or legacy, or a "
                ".safetensors file)");
}

void write_weights(const std::string& path, const models::NamedTensors& tensors,
                   WeightsFormat format, const Metadata& metadata) {
  if (format == WeightsFormat::kSafetensors) {
    write_file_atomic(path, safetensors_bytes(tensors, metadata));
  } else {
    write_file_atomic(path, torch_save_bytes(tensors));
  }
}

StudentWeights load_student_weights(const std::string& arch, const std::string& path,
                                    std::optional<std::int64_t> num_classes) {
  return load_student_weights(arch, read_weights(path), path, num_classes);
}

StudentWeights load_student_weights(const std::string& arch, WeightsFile file, const std::string& path,
                                    std::optional<std::int64_t> num_classes) {
  if (auto it = file.metadata.find("arch"); it != file.metadata.end() && it->second != arch)
    throw IoError(path + ": holds weights of " + it->second + ", expected " + arch);

  const std::string file_keys = sample_keys(file.tensors);
  const std::string guessed = take_student(file.tensors, models::architecture(arch).classifier_prefix);
  // Keys in timm's, mmdet's, mmseg's or detectron2's layout are renamed back to torchvision's.
  Layout layout = Layout::kTorchvision;
  const bool renamed = from_any_layout(arch, file.tensors, layout) && layout != Layout::kTorchvision;
  const std::string hint = " (the file's keys: " + file_keys +
                           (guessed.empty() ? "; no student prefix found"
                                            : "; the student taken from under '" + guessed + "'") +
                           (renamed ? "; read as " + layout_name(layout) + "'s layout" : "") + ")";

  // Split the head (keys "head.*") from the student's keys.
  models::NamedTensors student_keys, head_keys;
  for (auto& entry : file.tensors) {
    if (starts_with(entry.first, "head."))
      head_keys.emplace_back(entry.first.substr(5), entry.second);
    else
      student_keys.push_back(entry);
  }

  StudentWeights out;
  out.metadata = file.metadata;
  const std::string prefix = models::architecture(arch).classifier_prefix;
  const std::int64_t in_file = classifier_width(student_keys, prefix);
  const std::int64_t classes = num_classes.value_or(in_file);
  if (classes == 0 && in_file > 0) {
    models::NamedTensors kept;
    for (auto& entry : student_keys)
      if (!starts_with(entry.first, prefix)) kept.push_back(entry);
    student_keys = std::move(kept);
  }
  out.student = models::create_student(arch, {classes});
  if (classes > 0 && in_file == 0) {
    // Weights without a classifier (a pre-trained backbone) and a class count: the new
    // classifier keeps the fresh initialisation create_student gave it (torchvision's scheme,
    // from the current random seed), ready to fine-tune.
    for (auto& entry : models::state_dict(*out.student))
      if (starts_with(entry.first, prefix)) student_keys.push_back(std::move(entry));
  }
  try {
    models::load_state_dict(*out.student, student_keys, path);
  } catch (const IoError& e) {
    throw IoError(e.what() + hint);
  }

  if (!head_keys.empty()) {
    const auto& last = head_keys.back().second;  // "2.bias" [D] or "2.weight" [D, F]
    std::int64_t embed_dim = last.size(0);
    out.head = models::make_projection_head(out.student->feature_dim(), embed_dim);
    models::load_state_dict(*out.head, head_keys, path + " (head.*)");
  }
  return out;
}

models::NamedTensors export_tensors(const models::Student& student,
                                    const torch::nn::Sequential& head) {
  models::NamedTensors out = models::state_dict(student);
  if (head) {
    for (auto& entry : models::state_dict(*head, "head.")) out.push_back(std::move(entry));
  }
  return out;
}

std::string sidecar_path(const std::string& weights_path) {
  return std::filesystem::path(weights_path).replace_extension(".json").string();
}

void write_sidecar(const std::string& path, const Metadata& metadata) {
  nlohmann::ordered_json j;
  for (const auto& [key, value] : metadata) try {
    if (key == "format") continue;
    if (key == "image_mean" || key == "image_std") {
      std::vector<double> values;
      std::stringstream ss(value);
      for (std::string item; std::getline(ss, item, ',');) values.push_back(std::stod(item));
      j[key == "image_mean" ? "mean" : "std"] = values;
    } else if (key == "num_classes" || key == "feature_dim" || key == "image_size" || key == "embed_dim") {
      j[key] = std::stoll(value);
    } else {
      j[key] = value;
    }
  } catch (const std::exception&) {  // std::stod / std::stoll on metadata that came from a file
    throw IoError(path + ": metadata " + key + " = '" + value + "' is not a number or a list of numbers");
  }
  const std::string text = j.dump(2) + "\n";
  write_file_atomic(path, std::vector<char>(text.begin(), text.end()));
}

}  // namespace lgd::exporting
