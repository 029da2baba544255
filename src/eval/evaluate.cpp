#include "lgd/eval/evaluate.h"

#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include "lgd/core/config_yaml.h"
#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/core/logging.h"
#include "lgd/core/progress.h"
#include "lgd/core/torch_compat.h"
#include "lgd/core/version.h"
#include "lgd/data/dataset.h"
#include "lgd/data/loader.h"
#include "lgd/data/pipeline.h"
#include "lgd/data/transforms.h"
#include "lgd/distill/teacher.h"
#include "lgd/engine/sgd.h"
#include "lgd/eval/probe.h"
#include "lgd/export/safetensors.h"
#include "lgd/export/weights_io.h"
#include "lgd/models/architectures.h"
#include "lgd/models/state_dict.h"
#include "lgd/models/student.h"
#include "lgd/text/text_bank.h"

namespace lgd::eval {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// FNV-1a, 64 bit.
struct Hasher {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  void bytes(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  }
  void text(const std::string& s) { bytes(s.data(), s.size() + 1); }
};

// A digest of a module's parameters and buffers (names, shapes, values): the cache key of
// its features and the check that a frozen backbone stayed frozen.
std::uint64_t state_digest(const torch::nn::Module& module) {
  Hasher hasher;
  for (const auto& [name, tensor] : models::state_dict(module)) {
    hasher.text(name);
    const auto t = tensor.detach().to(torch::kCPU).contiguous();
    for (auto s : t.sizes()) hasher.bytes(&s, sizeof s);
    // Word-wise over the values (byte-wise FNV is slow for ~10^7 floats).
    const auto n = static_cast<std::size_t>(t.numel()) * t.element_size();
    const auto* p = static_cast<const unsigned char*>(t.data_ptr());
    std::uint64_t acc = hasher.h;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, p + i, 8);
      acc = (acc ^ w) * 0x100000001b3ULL;
      acc ^= acc >> 29;
    }
    hasher.h = acc;
    hasher.bytes(p + i, n - i);
  }
  return hasher.h;
}

std::string hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  return fmt::format("{}", v);
}

template <typename T>
std::string json_array(const std::vector<T>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i)
    out += (i ? ", " : "") + json_number(static_cast<double>(values[i]));
  return out + "]";
}

std::string joined(const std::vector<double>& v) {
  std::string out;
  for (double x : v) out += (out.empty() ? "" : ",") + fmt::format("{}", x);
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

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
  // classifier of the last linear probe (raw features)
  torch::Tensor classifier_weight, classifier_bias;
  std::string classifier_protocol;

  explicit Evaluation(const EvalOptions& options) : o(options) {}

  std::int64_t num_classes() const { return val_set->num_classes(); }

  void load_student() {
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
                       " classifier starts with Linear + Hardswish, so a linear probe on the pooled "
                       "feature cannot be written as one (supported: resnet, mobilenet_v2, efficientnet)");
    digest = state_digest(*student);
  }

  void setup_device() {
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

  void setup_input() {
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

  bool needs_train() const {
    for (const auto& p : o.protocols)
      if (p != "zero-shot") return true;
    return false;
  }

  void open_data() {
    const auto& cfg = run_config;
    const std::string format = first_of({o.format, yaml_string(cfg, "data", "dataset"), "image_folder"});
    const std::string root = first_of({o.data, yaml_string(cfg, "data", "root")});
    const std::string classnames = first_of({o.classnames, o.data.empty() ? yaml_string(cfg, "data", "classnames") : ""});
    if (root.empty())
      throw UsageError("lgd eval: --data is required (the labelled dataset to evaluate on)");
    train_opts = {format, root, first_of({o.train_split, o.data.empty() ? yaml_string(cfg, "data", "split") : "", "train"}),
                  classnames};
    std::string val_root = first_of({o.val_data, o.data.empty() ? yaml_string(cfg, "data", "val_root") : ""});
    if (val_root.empty()) {
      if (format != "idx" && format != "cifar")
        throw UsageError("lgd eval: --val-data is required for " + format +
                         " datasets (the images the protocols are scored on)");
      val_root = root;
    }
    val_opts = {format, val_root,
                first_of({o.val_split, o.data.empty() ? yaml_string(cfg, "data", "val_split") : "", "test"}), classnames};
    val_set = data::open_dataset(val_opts);
    if (needs_train()) {
      std::shared_ptr<const data::Dataset> full = data::open_dataset(train_opts);
      if (full->num_classes() != val_set->num_classes())
        throw IoError(val_opts.root + ": evaluation set has " + std::to_string(val_set->num_classes()) +
                      " classes, the training set " + train_opts.root + " " + std::to_string(full->num_classes()) +
                      " (expected the same classes in the same order)");
      if (o.subset_percent > 0) {
        std::vector<std::int64_t> labels(static_cast<std::size_t>(full->size()));
        for (std::int64_t i = 0; i < full->size(); ++i) labels[static_cast<std::size_t>(i)] = full->label(i);
        auto idx = class_balanced_subset(labels, full->num_classes(), o.subset_percent / 100.0,
                                         static_cast<std::uint64_t>(o.seed));
        subset_key = fmt::format("{}%/seed {}/{} samples", o.subset_percent, o.seed, idx.size());
        spdlog::info("[eval] label subset: {} of {} training samples ({}% per class, seed {})", idx.size(),
                     full->size(), o.subset_percent, o.seed);
        train_set = data::subset(full, std::move(idx));
      } else {
        train_set = full;
      }
    }
  }

  data::LoaderOptions loader(std::int64_t batch, bool shuffle) const {
    data::LoaderOptions lo;
    lo.batch_size = batch;
    lo.workers = o.workers;
    lo.seed = static_cast<std::uint64_t>(o.seed);
    lo.shuffle = shuffle;
    lo.drop_last = false;
    lo.pin_memory = cuda;
    lo.max_bad_fraction = 0;  // an unreadable image stops the evaluation with its path
    return lo;
  }

  torch::Tensor input(const torch::Tensor& images) const {
    return data::to_model_input(images, mean, std, device, channels_last);
  }

  // Features of `ds` under `view` (pass p draws its augmentation from epoch p), from the
  // cache when present.
  const Features& get_features(const std::string& which, std::shared_ptr<const data::Dataset> ds,
                               const data::DatasetOptions& dopts, const std::string& view, std::int64_t pass,
                               std::string* how) {
    const std::string key = fmt::format(
        "lgd-features/1 student={} arch={} data={}:{}:{} subset={} n={} view={} pass={} size={} mean={} std={}",
        hex(digest), arch, dopts.format, fs::absolute(dopts.root).string(), dopts.split,
        which == "train" ? subset_key : "all", ds->size(), view, pass, image_size, joined(mean), joined(std));
    if (auto it = features.find(key); it != features.end()) {
      if (how) *how = "reused";
      return it->second;
    }
    Hasher h;
    h.text(key);
    const auto file = fs::path(o.out) / "cache" / ("features-" + hex(h.h) + ".safetensors");
    if (o.cache && fs::is_regular_file(file)) {
      try {
        auto st = exporting::parse_safetensors(read_file(file.string()), file.string());
        if (st.metadata["key"] == key && st.tensors.size() == 2) {
          spdlog::info("[eval] {} features ({} view{}) from the cache {}", which, view,
                       pass ? fmt::format(", pass {}", pass) : "", file.string());
          if (how) *how = "cached";
          return features[key] = Features{st.tensors[0].second, st.tensors[1].second};
        }
      } catch (const Error& e) {
        spdlog::warn("[eval] ignoring the unreadable cache file {}: {}", file.string(), e.what());
      }
    }
    const auto started = Clock::now();
    data::Loader ld(ds, data::Transform(data::view_defaults(view, static_cast<int>(image_size))),
                    loader(o.batch_size, false));
    ld.start_epoch(pass);
    const auto n = ds->size();
    auto x = torch::empty({n, student->feature_dim()}, torch::kFloat32);
    auto y = torch::full({n}, -1, torch::kInt64);
    Progress progress(fmt::format("[eval] {} features ({} view{})", which, view, pass ? fmt::format(" pass {}", pass) : ""),
                      ld.batches_per_epoch());
    std::int64_t done = 0;
    {
      torch::NoGradGuard no_grad;
      while (auto batch = ld.next()) {
        const auto f = student->features(input(batch->images)).to(torch::kCPU, torch::kFloat32);
        x.index_copy_(0, batch->indices, f);
        y.index_copy_(0, batch->indices, batch->labels);
        progress.update(++done);
      }
    }
    progress.finish();
    if ((y < 0).any().item<bool>())
      throw IoError(dopts.root + ": the loader did not deliver every sample of the dataset");
    const double secs = seconds_since(started);
    extraction_seconds[which + "/" + view + "/" + std::to_string(pass)] = secs;
    spdlog::info("[eval] {} features: {} x {} in {:.1f} s", which, n, x.size(1), secs);
    if (o.cache) {
      fs::create_directories(file.parent_path());
      write_file_atomic(file.string(), exporting::safetensors_bytes({{"features", x}, {"labels", y}}, {{"key", key}}));
    }
    if (how) *how = "extracted";
    return features[key] = Features{x, y};
  }

  const Features& train_features(std::string* how) {
    return get_features("train", train_set, train_opts, "eval", 0, how);
  }
  const Features& val_features(std::string* how) { return get_features("val", val_set, val_opts, "eval", 0, how); }

  static std::string merge_how(const std::string& a, const std::string& b) {
    if (a == b) return a;
    auto extracted = [](const std::string& s) { return s.rfind("extracted", 0) == 0; };
    if (extracted(a) || extracted(b)) return "extracted (part)";
    return "cached";
  }

  // ---- protocols ----

  ProtocolResult knn() {
    ProtocolResult r;
    r.protocol = "knn";
    std::string h1, h2;
    const auto& tr = train_features(&h1);
    const auto& va = val_features(&h2);
    r.features = merge_how(h1, h2);
    const auto scores = knn_scores(tr.x.to(device), tr.labels, va.x.to(device), num_classes(), o.knn_k,
                                   o.knn_temperature);
    finish(r, scores, va.labels);
    r.details["k"] = std::to_string(o.knn_k);
    r.details["temperature"] = json_number(o.knn_temperature);
    return r;
  }

  text::TextBank find_tsb() {
    if (!o.bank.empty()) {
      spdlog::info("[eval] zero-shot TSB from {}", o.bank);
      return text::load_text_bank(o.bank);
    }
    if (!o.checkpoint.empty() || meta.count("lgd_checkpoint")) {
      const fs::path ck = fs::absolute(!o.checkpoint.empty() ? o.checkpoint : o.weights);
      for (const auto& dir : {ck.parent_path(), ck.parent_path().parent_path()}) {
        const auto file = dir / "tsb.safetensors";
        if (fs::is_regular_file(file)) {
          spdlog::info("[eval] zero-shot TSB of the run: {}", file.string());
          return text::load_text_bank(file.string());
        }
      }
    }
    if (o.teacher.empty())
      throw UsageError("lgd eval: zero-shot needs a TSB: --bank FILE, a checkpoint whose run folder holds "
                       "tsb.safetensors, or --teacher DIR to build one");
    auto teacher = distill::Teacher::load(o.teacher);
    const auto& m = teacher->manifest();
    std::vector<std::string> templates;
    if (!o.templates.empty())
      templates = text::read_templates(o.templates);
    else if (!m.templates.empty())
      templates = text::read_templates((fs::path(teacher->dir()) / m.templates).string());
    else
      templates = text::default_templates();
    spdlog::info("[eval] building the zero-shot TSB with teacher {}: {} classes x {} templates", m.name,
                 val_set->num_classes(), templates.size());
    auto bank = text::build_text_bank(val_set->class_names(), templates,
                                      [&](const std::vector<std::string>& t) { return teacher->encode_texts(t); });
    bank.teacher = m.name;
    return bank;
  }

  ProtocolResult zero_shot() {
    ProtocolResult r;
    r.protocol = "zero-shot";
    if (!head)
      throw UsageError("lgd eval: zero-shot needs the student's projection head: evaluate an lgd checkpoint or "
                       "weights exported with --with-head (" + source + " has no head.* keys)");
    const auto bank = find_tsb();
    const auto D = head->children().back()->parameters()[0].size(0);
    if (bank.weights.size(0) != D)
      throw IoError("zero-shot: the TSB has width " + std::to_string(bank.weights.size(0)) + ", the student's head " +
                    std::to_string(D) + " (built with another teacher?)");
    if (bank.weights.size(1) != num_classes())
      throw IoError("zero-shot: the TSB has " + std::to_string(bank.weights.size(1)) + " classes, the evaluation set " +
                    val_opts.root + " " + std::to_string(num_classes()) + " (expected the same classes in the same order)");
    const auto& va = val_features(&r.features);
    torch::Tensor scores;
    {
      torch::NoGradGuard no_grad;
      scores = zero_shot_scores(head->forward(va.x.to(device)), bank.weights);
    }
    finish(r, scores, va.labels);
    r.details["tsb_teacher"] = json_string(bank.teacher);
    r.details["templates"] = std::to_string(bank.templates.size());
    return r;
  }

  ProtocolResult linear_fast() {
    ProtocolResult r;
    r.protocol = "linear-fast";
    std::string h1, h2;
    const auto& tr = train_features(&h1);
    std::vector<torch::Tensor> xs{tr.x}, ys{tr.labels};
    for (std::int64_t p = 1; p <= o.fast_passes; ++p) {
      std::string h;
      const auto& aug = get_features("train", train_set, train_opts, "linear", p, &h);
      h1 = merge_how(h1, h);
      xs.push_back(aug.x);
      ys.push_back(aug.labels);
    }
    const auto& va = val_features(&h2);
    r.features = merge_how(h1, h2);
    FastLinearOptions fo;
    fo.weight_decays = o.fast_weight_decays;
    fo.max_iter = o.fast_max_iter;
    fo.seed = static_cast<std::uint64_t>(o.seed);
    fo.views_per_sample = 1 + o.fast_passes;
    const auto started = Clock::now();
    spdlog::info("[eval] linear-fast: L-BFGS on {} x {} features, weight decay from {} candidates",
                 tr.x.size(0) * static_cast<std::int64_t>(xs.size()), tr.x.size(1), fo.weight_decays.size());
    const auto fit = fit_linear_fast(torch::cat(xs).to(device), torch::cat(ys).to(device), num_classes(), fo);
    r.details["fit_seconds"] = json_number(seconds_since(started));
    r.details["weight_decay"] = json_number(fit.weight_decay);
    std::string search = "[";
    for (std::size_t i = 0; i < fit.search.size(); ++i)
      search += (i ? ", " : "") + fmt::format("[{}, {}]", json_number(fit.search[i].first), json_number(fit.search[i].second));
    r.details["weight_decay_search"] = search + "]";
    r.details["augmented_passes"] = std::to_string(o.fast_passes);
    spdlog::info("[eval] linear-fast: weight decay {} chosen on the held-out 10%", fit.weight_decay);
    torch::Tensor scores;
    {
      torch::NoGradGuard no_grad;
      scores = va.x.to(device).matmul(fit.weight.t()) + fit.bias;
    }
    finish(r, scores, va.labels);
    if (classifier_protocol != "linear") {
      classifier_weight = fit.weight.cpu();
      classifier_bias = fit.bias.cpu();
      classifier_protocol = "linear-fast";
    }
    return r;
  }

  ProtocolResult linear() {
    ProtocolResult r;
    r.protocol = "linear";
    r.features = "per epoch";
    const auto C = num_classes();
    const auto F = student->feature_dim();
    auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(o.seed) + 7);
    auto w = at::normal(0.0, 0.01, {C, F}, gen).to(device);
    auto b = torch::zeros({C}, torch::TensorOptions().device(device));
    w.set_requires_grad(true);
    b.set_requires_grad(true);
    engine::SgdOptions so;
    so.momentum = 0.9;
    so.weight_decay = o.linear_weight_decay;
    engine::Sgd sgd({{"weight", w}, {"bias", b}}, so);
    const double lr0 = o.linear_lr * static_cast<double>(o.linear_batch) / 256.0;
    data::Loader ld(train_set, data::Transform(data::view_defaults("linear", static_cast<int>(image_size))),
                    loader(o.linear_batch, true));
    const auto steps = ld.batches_per_epoch();
    Progress progress("[eval] linear probe", steps * o.linear_epochs);
    std::vector<double> lrs, losses;
    std::int64_t done = 0;
    const auto before = digest;
    for (std::int64_t epoch = 0; epoch < o.linear_epochs; ++epoch) {
      const double lr = step_lr(lr0, epoch, o.linear_milestones);
      lrs.push_back(lr);
      ld.start_epoch(epoch);
      auto sum = torch::zeros({}, torch::TensorOptions().device(device));
      std::int64_t seen = 0;
      while (auto batch = ld.next()) {
        torch::Tensor f;
        {
          torch::NoGradGuard no_grad;
          f = student->features(input(batch->images)).to(torch::kFloat32);
        }
        const auto y = batch->labels.to(device);
        auto loss = torch::nn::functional::cross_entropy(f.matmul(w.t()) + b, y);
        loss.backward();
        sgd.step(lr);
        sgd.zero_grad();
        sum += loss.detach() * static_cast<double>(y.size(0));
        seen += y.size(0);
        progress.update(++done);
      }
      const double mean_loss = sum.item<double>() / static_cast<double>(std::max<std::int64_t>(seen, 1));
      losses.push_back(mean_loss);
      if (!std::isfinite(mean_loss))
        throw Error("lgd eval: the linear probe's loss became " + fmt::format("{}", mean_loss) + " in epoch " +
                    std::to_string(epoch + 1) + " (lower --linear-lr)");
      if ((epoch + 1) % 10 == 0 || epoch + 1 == o.linear_epochs) {
        progress.finish();
        spdlog::info("[eval] linear probe epoch {}/{}: loss {:.4f}, lr {:.4g}", epoch + 1, o.linear_epochs,
                     mean_loss, lr);
      }
    }
    progress.finish();
    const bool unchanged = state_digest(*student) == before;
    if (!unchanged) throw Error("lgd eval: the backbone changed during the linear probe (it must stay frozen)");
    const auto& va = val_features(nullptr);
    torch::Tensor scores;
    {
      torch::NoGradGuard no_grad;
      scores = va.x.to(device).matmul(w.detach().t()) + b.detach();
    }
    finish(r, scores, va.labels);
    r.details["epochs"] = std::to_string(o.linear_epochs);
    r.details["batch"] = std::to_string(o.linear_batch);
    r.details["lr_per_epoch"] = json_array(lrs);
    r.details["loss_per_epoch"] = json_array(losses);
    r.details["milestones"] = json_array(o.linear_milestones);
    r.details["backbone_unchanged"] = unchanged ? "true" : "false";
    classifier_weight = w.detach().cpu();
    classifier_bias = b.detach().cpu();
    classifier_protocol = "linear";
    return r;
  }

  // ---- output ----

  void finish(ProtocolResult& r, const torch::Tensor& scores, const torch::Tensor& labels) {
    const auto a = accuracy(scores.cpu(), labels, num_classes());
    r.top1 = a.top1;
    r.top5 = a.top5;
    const auto& names = val_set->class_names();
    const auto counts = per_class(a);
    std::string pc = "class,name,samples,correct,accuracy\n";
    for (std::size_t c = 0; c < counts.size(); ++c) {
      const auto [n, ok] = counts[c];
      pc += fmt::format("{},{},{},{},{}\n", c, csv_field(names[c]), n, ok,
                        n ? fmt::format("{:.4f}", 100.0 * static_cast<double>(ok) / static_cast<double>(n)) : "");
    }
    write_file_atomic((fs::path(o.out) / (r.protocol + "_per_class.csv")).string(), pc);
    std::string cm = "true\\predicted";
    for (const auto& n : names) cm += "," + csv_field(n);
    cm += "\n";
    const auto conf = a.confusion.contiguous();
    const auto C = conf.size(0);
    for (std::int64_t i = 0; i < C; ++i) {
      cm += csv_field(names[static_cast<std::size_t>(i)]);
      for (std::int64_t j = 0; j < C; ++j) cm += "," + std::to_string(conf[i][j].item<std::int64_t>());
      cm += "\n";
    }
    write_file_atomic((fs::path(o.out) / (r.protocol + "_confusion.csv")).string(), cm);
  }

  void export_classifier() {
    if (!classifier_weight.defined())
      throw UsageError("lgd eval: --export-classifier needs a linear probe (--protocol linear or linear-fast)");
    const auto& info = models::architecture(arch);
    auto cls = models::create_student(arch, {num_classes()});
    const std::string key = info.family == "resnet" ? "fc." : "classifier.1.";
    models::NamedTensors tensors;
    for (const auto& [k, v] : models::state_dict(*student)) tensors.emplace_back(k, v.to(torch::kCPU).contiguous());
    tensors.emplace_back(key + "weight", classifier_weight.contiguous());
    tensors.emplace_back(key + "bias", classifier_bias.contiguous());
    models::load_state_dict(*cls, tensors, "the probed student");
    const bool st = o.export_classifier.size() > 12 &&
                    o.export_classifier.compare(o.export_classifier.size() - 12, 12, ".safetensors") == 0;
    exporting::write_weights(o.export_classifier, exporting::export_tensors(*cls, nullptr),
                             st ? exporting::WeightsFormat::kSafetensors : exporting::WeightsFormat::kTorchvision,
                             {{"format", "pt"},
                              {"arch", arch},
                              {"num_classes", std::to_string(num_classes())},
                              {"classifier", classifier_protocol},
                              {"lgd_version", version()}});
    spdlog::info("[eval] wrote {}: {} with the {} classifier ({} classes, torchvision keys)", o.export_classifier,
                 arch, classifier_protocol, num_classes());
  }
};

void write_results(const EvalReport& rep, const Evaluation& ev) {
  std::string j = "{\n";
  j += "  \"lgd_version\": " + json_string(version()) + ",\n";
  j += "  \"student\": " + json_string(rep.student) + ",\n";
  j += "  \"arch\": " + json_string(rep.arch) + ",\n";
  j += "  \"dataset\": {\"format\": " + json_string(ev.val_opts.format) + ", \"train\": " +
       json_string(ev.train_set ? ev.train_opts.root + " (" + ev.train_opts.split + ")" : "") + ", \"val\": " +
       json_string(ev.val_opts.root + " (" + ev.val_opts.split + ")") +
       ", \"train_samples\": " + std::to_string(rep.train_samples) + ", \"val_samples\": " +
       std::to_string(rep.val_samples) + ", \"num_classes\": " + std::to_string(rep.num_classes) +
       ", \"subset\": " + json_string(ev.subset_key) + "},\n";
  j += "  \"image_size\": " + std::to_string(ev.image_size) + ",\n";
  j += "  \"mean\": " + json_array(ev.mean) + ", \"std\": " + json_array(ev.std) + ",\n";
  j += "  \"device\": " + json_string(ev.cuda ? "cuda" : "cpu") + ", \"threads\": " +
       std::to_string(torch::get_num_threads()) + ",\n";
  j += "  \"feature_extraction_seconds\": {";
  bool first = true;
  for (const auto& [k, v] : ev.extraction_seconds) {
    j += (first ? "" : ", ") + json_string(k) + ": " + json_number(v);
    first = false;
  }
  j += "},\n  \"results\": [\n";
  for (std::size_t i = 0; i < rep.results.size(); ++i) {
    const auto& r = rep.results[i];
    j += "    {\"protocol\": " + json_string(r.protocol) + ", \"top1\": " + json_number(r.top1) +
         ", \"top5\": " + json_number(r.top5) + ", \"seconds\": " + json_number(r.seconds) +
         ", \"features\": " + json_string(r.features);
    for (const auto& [k, v] : r.details) j += ", " + json_string(k) + ": " + v;
    j += i + 1 < rep.results.size() ? "},\n" : "}\n";
  }
  j += "  ]\n}\n";
  write_file_atomic((fs::path(rep.out) / "results.json").string(), j);
}

}  // namespace

EvalReport evaluate(const EvalOptions& o) {
  static const std::vector<std::string> kProtocols{"linear", "linear-fast", "zero-shot", "knn"};
  if (o.protocols.empty()) throw UsageError("lgd eval: no --protocol given (linear, linear-fast, zero-shot, knn)");
  for (const auto& p : o.protocols)
    if (std::find(kProtocols.begin(), kProtocols.end(), p) == kProtocols.end())
      throw UsageError("lgd eval: unknown protocol '" + p + "'; expected linear, linear-fast, zero-shot or knn");
  if (o.subset_percent < 0 || o.subset_percent > 100)
    throw UsageError("lgd eval: --subset " + fmt::format("{}", o.subset_percent) + ": expected a percentage in (0, 100]");
  if (o.linear_epochs <= 0 || o.linear_batch <= 0 || o.batch_size <= 0)
    throw UsageError("lgd eval: --linear-epochs, --linear-batch and --batch-size must be positive");

  Evaluation ev(o);
  ev.load_student();
  ev.setup_device();
  ev.setup_input();
  ev.open_data();
  fs::create_directories(o.out);
  spdlog::info("[eval] {} ({}) on {} {} ({} classes, {} evaluation images{}); {} px, normalisation {}", ev.source,
               ev.arch, ev.val_opts.format, ev.val_opts.root, ev.num_classes(), ev.val_set->size(),
               ev.train_set ? fmt::format(", {} training images", ev.train_set->size()) : "", ev.image_size,
               ev.norm_source);

  EvalReport rep;
  rep.student = ev.source;
  rep.arch = ev.arch;
  rep.dataset = ev.val_opts.format + ":" + ev.val_opts.root;
  rep.train_samples = ev.train_set ? ev.train_set->size() : 0;
  rep.val_samples = ev.val_set->size();
  rep.num_classes = ev.num_classes();
  rep.out = o.out;
  for (const auto& p : o.protocols) {
    const auto started = Clock::now();
    ProtocolResult r = p == "linear" ? ev.linear() : p == "linear-fast" ? ev.linear_fast() : p == "zero-shot" ? ev.zero_shot() : ev.knn();
    r.seconds = seconds_since(started);
    spdlog::info("[eval] {}: top-1 {:.2f}%, top-5 {:.2f}% ({:.1f} s)", r.protocol, r.top1, r.top5, r.seconds);
    rep.results.push_back(std::move(r));
    write_results(rep, ev);  // after every protocol, so a long run keeps what it measured
  }
  if (!o.export_classifier.empty()) ev.export_classifier();
  return rep;
}

std::string format_table(const EvalReport& rep) {
  std::string t = fmt::format("{} ({}) on {}: {} evaluation images, {} classes\n\n", rep.student, rep.arch,
                              rep.dataset, rep.val_samples, rep.num_classes);
  t += "| protocol    |  top-1 |  top-5 |     time | features   |\n";
  t += "|-------------|-------:|-------:|---------:|------------|\n";
  for (const auto& r : rep.results)
    t += fmt::format("| {:<11} | {:>6.2f} | {:>6.2f} | {:>8} | {:<10} |\n", r.protocol, r.top1, r.top5,
                     format_duration(r.seconds), r.features);
  return t;
}

}  // namespace lgd::eval
