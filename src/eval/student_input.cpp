// lgd eval: which student is evaluated (an lgd checkpoint, exported weights or a random
// initialisation), on which device, at which image size and normalisation.
#include <filesystem>
#include <sstream>
#include <thread>

#include "evaluation.h"
#include "lgd/core/config_yaml.h"
#include "lgd/core/errors.h"
#include "lgd/core/logging.h"
#include "lgd/core/torch_compat.h"
#include "lgd/distill/teacher.h"
#include "lgd/models/architectures.h"

namespace lgd::eval {
namespace fs = std::filesystem;
namespace {

std::vector<double> parse_doubles(const std::string& text, const std::string& what) {
  std::vector<double> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      std::size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw IoError(what + ": '" + text + "' is not a comma-separated list of numbers");
    }
  }
  return out;
}

}  // namespace

std::string yaml_string(const YAML::Node& config, const char* section, const char* key) {
  if (!config || !config[section] || !config[section][key]) return "";
  try {
    return config[section][key].as<std::string>();
  } catch (const YAML::Exception&) {
    return "";
  }
}

std::string first_of(std::initializer_list<std::string> values) {
  for (const auto& v : values)
    if (!v.empty()) return v;
  return "";
}

void Evaluation::load_student() {
  const int given = (o.checkpoint.empty() ? 0 : 1) + (o.weights.empty() ? 0 : 1) + (o.random_init ? 1 : 0);
  if (given != 1)
    throw UsageError("lgd eval: give exactly one of --checkpoint FILE, --weights FILE or --init random");
  const std::string path = !o.checkpoint.empty() ? o.checkpoint : o.weights;
  arch = o.arch;
  if (!path.empty()) {
    if (!fs::is_regular_file(path)) throw IoError(path + ": no such file (the student to evaluate)");
    auto file = exporting::read_weights(path);  // read once: metadata, then the weights
    meta = file.metadata;
    if (!o.checkpoint.empty() && meta.count("lgd_checkpoint") == 0)
      throw IoError(o.checkpoint + ": not an lgd training checkpoint (use --weights for exported weights)");
    if (arch.empty()) {
      const auto it = meta.find("arch");
      if (it == meta.end())
        throw UsageError("lgd eval: " + path + " names no architecture; give --arch");
      arch = it->second;
    }
    models::architecture(arch);
    auto w = exporting::load_student_weights(arch, std::move(file), path, 0);
    student = w.student;
    head = w.head;
    source = path;
    if (meta.count("config")) {
      try {
        config::check_yaml_text(meta.at("config"), path + ": the run config stored in the checkpoint");
        run_config = YAML::Load(meta.at("config"));
      } catch (const YAML::Exception& e) {
        throw IoError(path + ": the run config stored in the checkpoint does not parse: " + e.what());
      }
    }
  } else {
    if (arch.empty()) throw UsageError("lgd eval: --init random needs --arch");
    models::architecture(arch);
    torch::manual_seed(static_cast<std::uint64_t>(o.seed));
    student = models::create_student(arch, {0});
    source = "random init (seed " + std::to_string(o.seed) + ")";
  }
  if (!o.export_classifier.empty() && models::architecture(arch).family == "mobilenet_v3")
    throw UsageError("lgd eval: --export-classifier: torchvision's " + arch +
                     " classifier starts with Linear + Hardswish, so a linear classifier on the pooled "
                     "feature cannot be written as one (supported: resnet, mobilenet_v2, efficientnet)");
  digest = state_digest(*student);
}

void Evaluation::setup_device() {
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  if (o.device != "auto" && o.device != "cpu" && o.device != "cuda")
    throw UsageError("lgd eval: --device " + o.device + ": expected auto, cpu or cuda");
  const bool have = compat::cuda_available();
  if (o.device == "cuda" && !have) throw UsageError("lgd eval: --device cuda, but no CUDA device is visible");
  cuda = o.device == "cuda" || (o.device == "auto" && have);
  device = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  student->to(device);
  channels_last = models::use_channels_last(device, true, "eval");
  if (channels_last) models::to_channels_last(*student);
  student->eval();
  if (head) {
    head->to(device);
    head->eval();
  }
}

void Evaluation::setup_input() {
  if (o.image_size > 0) {
    image_size = o.image_size;
  } else if (meta.count("image_size")) {
    image_size = std::stoll(meta.at("image_size"));
  }
  if (!o.mean.empty() || !o.std.empty()) {
    if (o.mean.size() != 3 || o.std.size() != 3)
      throw UsageError("lgd eval: --mean and --std take three numbers each (R,G,B)");
    mean = o.mean;
    std = o.std;
    norm_source = "--mean/--std";
  } else if (meta.count("image_mean") && meta.count("image_std")) {
    mean = parse_doubles(meta.at("image_mean"), source + " image_mean");
    std = parse_doubles(meta.at("image_std"), source + " image_std");
    norm_source = "the checkpoint's (its teacher's)";
  } else {
    std::string bundle = first_of({o.teacher, yaml_string(run_config, "teacher", "bundle")});
    if (!bundle.empty() && fs::is_regular_file(fs::path(bundle) / "lgd_teacher.yaml")) {
      const auto m = distill::read_manifest(bundle);
      mean = m.image.mean;
      std = m.image.std;
      norm_source = "teacher " + m.name + "'s";
    }
  }
}

}  // namespace lgd::eval
