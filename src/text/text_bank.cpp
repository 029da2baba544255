#include "lgd/text/text_bank.h"

#include <torch/torch.h>

#include <fstream>
#include <map>
#include <sstream>

#include "lgd/core/errors.h"
#include "lgd/core/file_io.h"
#include "lgd/core/version.h"
#include "lgd/export/safetensors.h"

namespace lgd::text {
namespace {

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

// (line number, text) of the non-blank, non-comment lines.
std::vector<std::pair<int, std::string>> content_lines(const std::string& path) {
  const auto bytes = read_file(path);
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  std::vector<std::pair<int, std::string>> out;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (line.find('\0') != std::string::npos)
      throw IoError(path + ":" + std::to_string(number) + ": binary data (expected one entry per line, UTF-8 text)");
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    out.emplace_back(number, t);
  }
  if (out.empty()) throw IoError(path + ": no entries (only blank or comment lines)");
  return out;
}

std::string join_lines(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "\n" : "") + items[i];
  return out;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

std::vector<std::string> read_class_names(const std::string& path, bool allow_duplicates) {
  std::vector<std::string> names;
  std::map<std::string, int> first_line;
  for (const auto& [number, name] : content_lines(path)) {
    auto [it, inserted] = first_line.emplace(name, number);
    if (!inserted && !allow_duplicates)
      throw IoError(path + ":" + std::to_string(number) + ": duplicate class name '" + name +
                    "' (also at line " + std::to_string(it->second) + ")");
    names.push_back(name);
  }
  return names;
}

std::vector<std::string> read_templates(const std::string& path) {
  std::vector<std::string> templates;
  for (const auto& [number, tmpl] : content_lines(path)) {
    const auto first = tmpl.find("{}");
    if (first == std::string::npos || tmpl.find("{}", first + 2) != std::string::npos)
      throw IoError(path + ":" + std::to_string(number) + ": template '" + tmpl +
                    "' must contain exactly one {} for the class name");
    templates.push_back(tmpl);
  }
  return templates;
}

std::vector<std::string> default_templates() { return {"a photo of a {}."}; }

std::string fill_template(const std::string& tmpl, const std::string& name) {
  const auto at = tmpl.find("{}");
  if (at == std::string::npos) return tmpl;
  return tmpl.substr(0, at) + name + tmpl.substr(at + 2);
}

TextBank build_text_bank(const std::vector<std::string>& class_names,
                         const std::vector<std::string>& templates, const TextEncoder& encode,
                         std::int64_t batch_size) {
  if (class_names.empty()) throw UsageError("a text bank needs at least one class name");
  if (templates.empty()) throw UsageError("a text bank needs at least one template");
  std::vector<std::string> prompts;  // class-major: C x T
  for (const auto& name : class_names)
    for (const auto& tmpl : templates) prompts.push_back(fill_template(tmpl, name));
  std::vector<torch::Tensor> chunks;
  for (std::size_t begin = 0; begin < prompts.size(); begin += batch_size) {
    const std::size_t end = std::min(prompts.size(), begin + static_cast<std::size_t>(batch_size));
    const std::vector<std::string> batch(prompts.begin() + begin, prompts.begin() + end);
    chunks.push_back(torch::nn::functional::normalize(
        encode(batch).to(torch::kFloat32), torch::nn::functional::NormalizeFuncOptions().dim(1)));
  }
  const auto C = static_cast<std::int64_t>(class_names.size());
  const auto T = static_cast<std::int64_t>(templates.size());
  auto per_class = torch::cat(chunks).view({C, T, -1}).mean(1);  // [C, D]
  auto weights = torch::nn::functional::normalize(
      per_class, torch::nn::functional::NormalizeFuncOptions().dim(1));
  return TextBank{weights.t().contiguous(), class_names, templates, ""};
}

void save_text_bank(const std::string& path, const TextBank& bank) {
  exporting::Metadata metadata{{"class_names", join_lines(bank.class_names)},
                               {"templates", join_lines(bank.templates)},
                               {"teacher", bank.teacher},
                               {"embed_dim", std::to_string(bank.weights.size(0))},
                               {"num_classes", std::to_string(bank.weights.size(1))},
                               {"lgd_version", version()}};
  write_file_atomic(path, exporting::safetensors_bytes({{"tsb", bank.weights}}, metadata));
}

TextBank load_text_bank(const std::string& path) {
  auto file = exporting::parse_safetensors(read_file(path), path);
  TextBank bank;
  for (auto& [name, tensor] : file.tensors)
    if (name == "tsb") bank.weights = tensor;
  if (!bank.weights.defined() || bank.weights.dim() != 2)
    throw IoError(path + ": not a text bank (expected a 2-D tensor 'tsb')");
  bank.class_names = split_lines(file.metadata["class_names"]);
  bank.templates = split_lines(file.metadata["templates"]);
  bank.teacher = file.metadata["teacher"];
  if (static_cast<std::int64_t>(bank.class_names.size()) != bank.weights.size(1))
    throw IoError(path + ": " + std::to_string(bank.class_names.size()) + " class names for " +
                  std::to_string(bank.weights.size(1)) + " columns");
  return bank;
}

}  // namespace lgd::text
