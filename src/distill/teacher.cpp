#include "lgd/distill/teacher.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <optional>

#include <spdlog/spdlog.h>

#include "lgd/core/config_yaml.h"
#include "lgd/core/errors.h"
#include "lgd/core/shape_string.h"
#include "lgd/text/clip_bpe.h"
#include "lgd/text/sentencepiece_tokenizer.h"

namespace lgd::distill {
namespace {

namespace fs = std::filesystem;
constexpr const char* kManifest = "lgd_teacher.yaml";

config::FieldSet describe(TeacherManifest& m) {
  config::FieldSet f;
  f.add("name", &m.name, "Teacher name").required();
  f.add("embed_dim", &m.embed_dim, "Width D of both encoders' output").at_least(1).required();
  f.add("image.file", &m.image.file, "TorchScript image encoder").required();
  f.add("image.size", &m.image.size, "Input resolution S").range(8, 4096).required();
  f.add("image.mean", &m.image.mean, "Per-channel normalisation mean").required();
  f.add("image.std", &m.image.std, "Per-channel normalisation std").required();
  f.add("text.file", &m.text.file, "TorchScript text encoder").required();
  f.add("text.context_length", &m.text.context_length, "Token sequence length L")
      .at_least(2)
      .required();
  f.add("text.tokenizer.type", &m.text.tokenizer.type, "Tokenizer")
      .one_of({"clip-bpe", "sentencepiece"})
      .required();
  f.add("text.tokenizer.file", &m.text.tokenizer.file, "Tokenizer file").required();
  f.add("text.tokenizer.merges", &m.text.tokenizer.merges, "BPE merges used (clip-bpe)")
      .at_least(1);
  f.add("text.tokenizer.bos_id", &m.text.tokenizer.bos_id, "Start id, -1 for none").at_least(-1);
  f.add("text.tokenizer.eos_id", &m.text.tokenizer.eos_id, "End id, -1 for none").at_least(-1);
  f.add("text.tokenizer.pad_id", &m.text.tokenizer.pad_id, "Padding id").at_least(0);
  f.add("text.tokenizer.lower_case", &m.text.tokenizer.lower_case, "Lower-case text first");
  f.add("classnames", &m.classnames, "Class-name file shipped in the bundle (optional)");
  f.add("templates", &m.templates, "Prompt-template file shipped in the bundle (optional)");
  return f;
}

// One line of a LibTorch error, without its backtrace: the first line, or for TorchScript
// interpreter errors the last one (which holds the cause).
std::string short_error(const std::exception& e) {
  std::string s = e.what();
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) s = c10->what_without_backtrace();
  std::vector<std::string> lines;
  std::size_t begin = 0;
  while (begin < s.size()) {
    std::size_t end = s.find('\n', begin);
    if (end == std::string::npos) end = s.size();
    if (s.find_first_not_of(" \t", begin) < end) lines.push_back(s.substr(begin, end - begin));
    begin = end + 1;
  }
  if (lines.empty()) return s;
  const bool interpreter = lines.front().find("TorchScript interpreter") != std::string::npos;
  return interpreter ? lines.back() : lines.front();
}

}  // namespace

TeacherManifest read_manifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / kManifest).string();
  if (!fs::is_directory(dir))
    throw IoError(dir + ": teacher bundle directory does not exist (scripts/export_clip.py makes one "
                  "from open_clip, scripts/make_demo_teacher.py the demo's, scripts/bench/make_teacher.py "
                  "one with random weights)");
  if (!fs::exists(path)) throw IoError(path + ": missing (a teacher bundle needs its manifest)");
  TeacherManifest m;
  config::FieldSet fields = describe(m);
  config::Origins origins;
  config::apply_yaml_file(fields, path, origins);
  config::check_required(fields, origins, path);
  auto where = [&](const std::string& key) { return origins.count(key) ? origins[key] : path; };
  for (const auto* key : {"image.mean", "image.std"}) {
    const auto& v = std::string(key) == "image.mean" ? m.image.mean : m.image.std;
    if (v.size() != 3)
      throw ConfigError(where(key) + ": " + key + ": expected 3 numbers (R, G, B), got " +
                        std::to_string(v.size()));
  }
  for (double s : m.image.std)
    if (s <= 0) throw ConfigError(where("image.std") + ": image.std: expected positive numbers");
  for (const auto* key :
       {"image.file", "text.file", "text.tokenizer.file", "classnames", "templates"}) {
    const config::Field* field = fields.find(key);
    const std::string& file = *std::get<std::string*>(field->target);
    if (file.empty()) continue;
    if (!fs::is_regular_file(fs::path(dir) / file))
      throw IoError(where(key) + ": " + key + ": " + (fs::path(dir) / file).string() +
                    " does not exist");
  }
  return m;
}

std::unique_ptr<text::Tokenizer> make_tokenizer(const std::string& dir, const TeacherManifest& m) {
  const std::string path = (fs::path(dir) / m.text.tokenizer.file).string();
  if (m.text.tokenizer.type == "clip-bpe")
    return std::make_unique<text::ClipBpeTokenizer>(path,
                                                    static_cast<int>(m.text.tokenizer.merges));
  return std::make_unique<text::SentencePieceTokenizer>(
      path, text::SentencePieceOptions{m.text.tokenizer.bos_id, m.text.tokenizer.eos_id,
                                       m.text.tokenizer.pad_id, m.text.tokenizer.lower_case});
}

struct Teacher::Modules {
  torch::jit::Module image;
  torch::jit::Module text;
  std::optional<torch::jit::Module> image_frozen;  // optimize_image_encoder(.., true)
};

Teacher::~Teacher() = default;

std::unique_ptr<Teacher> Teacher::load(const std::string& dir) {
  std::unique_ptr<Teacher> t(new Teacher());
  t->dir_ = dir;
  t->manifest_ = read_manifest(dir);
  const auto& m = t->manifest_;
  const std::string manifest_path = (fs::path(dir) / kManifest).string();

  auto load_module = [&](const std::string& key, const std::string& file) {
    const std::string path = (fs::path(dir) / file).string();
    try {
      auto module = torch::jit::load(path, torch::kCPU);
      module.eval();
      for (auto p : module.parameters()) p.requires_grad_(false);
      return module;
    } catch (const std::exception& e) {
      throw IoError(manifest_path + ": " + key + ": " + path + " is not a TorchScript module (" +
                    short_error(e) + ")");
    }
  };
  t->modules_ = std::make_unique<Modules>(Modules{load_module("image.file", m.image.file),
                                                  load_module("text.file", m.text.file),
                                                  std::nullopt});

  t->tokenizer_ = make_tokenizer(dir, m);

  // One dummy forward per encoder: input rank and output width.
  auto check = [&](const std::string& key, const std::function<torch::Tensor()>& forward,
                   const std::string& input) {
    torch::Tensor out;
    try {
      out = forward();
    } catch (const std::exception& e) {
      throw IoError(manifest_path + ": " + key + ": forward on " + input + " failed (" +
                    short_error(e) + ")");
    }
    if (out.dim() != 2 || out.size(0) != 1 || out.size(1) != m.embed_dim)
      throw IoError(manifest_path + ": " + key + ": output " + shape_string(out.sizes()) +
                    ", expected [1, " + std::to_string(m.embed_dim) + "] (embed_dim)");
  };
  check(
      "image.file",
      [&] {
        return t->encode_images(torch::zeros({1, 3, m.image.size, m.image.size}));
      },
      "a float [1, 3, " + std::to_string(m.image.size) + ", " + std::to_string(m.image.size) +
          "] input");
  check(
      "text.file", [&] { return t->encode_texts({"a photo of a cat."}); },
      "int64 [1, " + std::to_string(m.text.context_length) + "] token ids");
  return t;
}

void Teacher::to(torch::Device device, torch::ScalarType dtype) {
  // The image encoder runs every step, in `dtype`; the text encoder runs once per bank and
  // stays float32 (a traced text encoder may make float32 tensors of its own).
  modules_->image_frozen.reset();
  modules_->image.to(device, dtype);
  modules_->text.to(device, torch::kFloat32);
  device_ = device;
  dtype_ = dtype;
}

void Teacher::optimize_image_encoder(bool channels_last, bool freeze) {
  torch::NoGradGuard no_grad;
  modules_->image_frozen.reset();
  if (channels_last)
    for (auto p : modules_->image.parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
  if (!freeze) return;
  try {
    modules_->image_frozen = torch::jit::freeze(modules_->image);
  } catch (const std::exception& e) {
    spdlog::warn("[teacher] {}: the image encoder cannot be frozen ({}); running it as loaded",
                 (fs::path(dir_) / manifest_.image.file).string(), short_error(e));
  }
}

bool Teacher::image_encoder_frozen() const { return modules_->image_frozen.has_value(); }

torch::Tensor Teacher::encode_images(const torch::Tensor& images) const {
  torch::NoGradGuard no_grad;
  auto& module = modules_->image_frozen ? *modules_->image_frozen : modules_->image;
  auto out = module.forward({images.to(device_, dtype_)}).toTensor();
  return out.to(torch::kFloat32);
}

torch::Tensor Teacher::encode_tokens(const torch::Tensor& tokens) const {
  torch::NoGradGuard no_grad;
  return modules_->text.forward({tokens.to(device_)}).toTensor().to(torch::kFloat32);
}

torch::Tensor Teacher::encode_texts(const std::vector<std::string>& texts) const {
  const std::int64_t length = manifest_.text.context_length;
  auto tokens = torch::empty({static_cast<std::int64_t>(texts.size()), length}, torch::kInt64);
  auto* data = tokens.data_ptr<std::int64_t>();
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto ids = tokenizer_->tokenize(texts[i], length, text::Overflow::kError);
    std::copy(ids.begin(), ids.end(), data + i * length);
  }
  return encode_tokens(tokens);
}

std::vector<torch::Tensor> Teacher::state() const {
  std::vector<torch::Tensor> out;
  for (const auto* module : {&modules_->image, &modules_->text}) {
    for (const auto& p : module->parameters()) out.push_back(p);
    for (const auto& b : module->buffers()) out.push_back(b);
  }
  return out;
}

}  // namespace lgd::distill
