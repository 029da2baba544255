#pragma once
// The state of one `lgd eval` run, shared by the files of src/eval/:
//   student_input.cpp   which student (checkpoint, weights, random init), device, image size
//                       and normalisation
//   datasets.cpp        the training / evaluation sets, the label subset, loaders
//   feature_cache.cpp   features extracted once per (student, data, view), cached on disk
//   protocol_knn.cpp, protocol_zero_shot.cpp, protocol_linear.cpp (linear, linear-fast and
//   the exported classifier), protocol_finetune.cpp
//   report.cpp          per-class and confusion CSVs, results.json, the Markdown table
//   evaluate.cpp        the order of it all
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "lgd/data/dataset.h"
#include "lgd/data/loader.h"
#include "lgd/eval/evaluate.h"
#include "lgd/export/weights_io.h"
#include "lgd/models/student.h"
#include "lgd/text/text_bank.h"

namespace lgd::eval {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t);

// A digest of a module's parameters and buffers (names, shapes, values): the cache key of
// its features and the check that a frozen backbone stayed frozen.
std::uint64_t state_digest(const torch::nn::Module& module);
std::uint64_t text_digest(const std::string& text);
std::string hex(std::uint64_t v);

// The first non-empty value.
std::string first_of(std::initializer_list<std::string> values);
// config[section][key] as text; "" where absent or not a scalar.
std::string yaml_string(const YAML::Node& config, const char* section, const char* key);

struct Features {
  torch::Tensor x;       // float32 [N, F], CPU
  torch::Tensor labels;  // int64 [N], CPU
};

struct Evaluation {
  const EvalOptions& o;
  // student
  std::shared_ptr<models::Student> student;
  torch::nn::Sequential head{nullptr};
  std::string arch, source;
  exporting::Metadata meta;
  YAML::Node run_config;
  std::uint64_t digest = 0;
  // input
  torch::Device device{torch::kCPU};
  bool cuda = false;
  bool channels_last = true;  // models::use_channels_last
  std::int64_t image_size = 224;
  std::vector<double> mean{0.485, 0.456, 0.406}, std{0.229, 0.224, 0.225};
  std::string norm_source = "ImageNet's (default)";
  // data
  data::DatasetOptions train_opts, val_opts;
  std::shared_ptr<const data::Dataset> train_set, val_set;
  std::string subset_key = "all";
  // features by cache key, and how each was obtained
  std::map<std::string, Features> features;
  std::map<std::string, double> extraction_seconds;
  // what --export-classifier writes: the whole classifier network (torchvision keys) of the
  // last probe or fine-tuning, and which protocol made it
  models::NamedTensors classifier_network;
  std::string classifier_protocol;

  explicit Evaluation(const EvalOptions& options) : o(options) {}

  std::int64_t num_classes() const { return val_set->num_classes(); }

  // student_input.cpp
  void load_student();
  void setup_device();
  void setup_input();
  // datasets.cpp
  bool needs_train() const;
  void open_data();
  data::LoaderOptions loader(std::int64_t batch, bool shuffle) const;
  torch::Tensor input(const torch::Tensor& images) const;
  // feature_cache.cpp: features of `ds` under `view` (pass p draws its augmentation from
  // epoch p), from memory or the cache when present; `how` says which.
  const Features& get_features(const std::string& which, std::shared_ptr<const data::Dataset> ds,
                               const data::DatasetOptions& dopts, const std::string& view, std::int64_t pass,
                               std::string* how);
  const Features& train_features(std::string* how);
  const Features& val_features(std::string* how);
  // protocols
  ProtocolResult knn();
  text::TextBank find_tsb();
  ProtocolResult zero_shot();
  ProtocolResult linear_fast();
  ProtocolResult linear();
  ProtocolResult finetune();
  // `backbone` with a Linear(F, C) classifier, as the network --export-classifier writes.
  void keep_classifier(const models::Student& backbone, const torch::Tensor& weight, const torch::Tensor& bias,
                       const std::string& protocol);
  void export_classifier();
  // report.cpp: top-1 / top-5 of `scores` into `r`, and its per-class and confusion CSVs
  void finish(ProtocolResult& r, const torch::Tensor& scores, const torch::Tensor& labels);
};

// How the features of a protocol that used two sets of them were obtained.
std::string merge_how(const std::string& a, const std::string& b);

// report.cpp
void write_results(const EvalReport& report, const Evaluation& ev);

}  // namespace lgd::eval
