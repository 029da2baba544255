#pragma once
// The Textual Semantics Bank (TSB): for every class name and prompt template, the text
// embedding of the filled prompt, L2-normalised, averaged over templates and normalised
// again; a D x C float32 matrix with the class names attached.
#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

namespace lgd::text {

// One name per line (UTF-8); blank lines and lines starting with '#' are skipped;
// surrounding whitespace is trimmed. A repeated name is an IoError naming both lines
// unless `allow_duplicates` (CLIP's ImageNet list repeats "missile" and "sunglasses").
std::vector<std::string> read_class_names(const std::string& path, bool allow_duplicates = false);

// One template per line, each with exactly one "{}"; same comment rules.
std::vector<std::string> read_templates(const std::string& path);

// {"a photo of a {}."}
std::vector<std::string> default_templates();

// The template with "{}" replaced by `name`.
std::string fill_template(const std::string& tmpl, const std::string& name);

struct TextBank {
  torch::Tensor weights;  // [D, C] float32, unit columns
  std::vector<std::string> class_names;
  std::vector<std::string> templates;
  std::string teacher;  // teacher name, informative
};

// Texts -> [N, D] embeddings (not necessarily normalised).
using TextEncoder = std::function<torch::Tensor(const std::vector<std::string>&)>;

// Encodes all C x T prompts in batches of `batch_size`.
TextBank build_text_bank(const std::vector<std::string>& class_names,
                         const std::vector<std::string>& templates, const TextEncoder& encode,
                         std::int64_t batch_size = 256);

// safetensors: tensor "tsb" [D, C]; metadata class_names / templates (newline-separated),
// teacher, embed_dim, num_classes.
void save_text_bank(const std::string& path, const TextBank& bank);
TextBank load_text_bank(const std::string& path);

}  // namespace lgd::text
