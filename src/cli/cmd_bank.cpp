// lgd bank build|show: Textual Semantics Banks.
#include <torch/torch.h>

#include <cstdio>

#include "commands.h"
#include "lgd/core/logging.h"
#include "lgd/distill/teacher.h"
#include "lgd/text/text_bank.h"

namespace lgd::cli {

void add_bank_command(CLI::App& app, Commands& commands) {
  auto* bank = app.add_subcommand("bank", "Build or inspect a Textual Semantics Bank (TSB)");
  bank->require_subcommand(1, 1);

  struct BuildArgs {
    std::string teacher, classnames, templates, output;
    std::int64_t batch_size = 256;
    bool allow_duplicates = false;
  };
  auto b = std::make_shared<BuildArgs>();
  auto* build = bank->add_subcommand(
      "build", "Encode every class name in every template with the teacher's text encoder");
  build->add_option("--teacher", b->teacher, "Teacher bundle directory")->required();
  build
      ->add_option("--classnames", b->classnames,
                   "Class names, one per line ('#' comments and blank lines skipped)")
      ->required();
  build->add_option("--templates", b->templates,
                    "Prompt templates with '{}' for the name; default: \"a photo of a {}.\"");
  build->add_option("-o,--output", b->output, "Output .safetensors")->required();
  build->add_option("--batch-size", b->batch_size, "Prompts per text-encoder batch")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  build->add_flag("--allow-duplicate-names", b->allow_duplicates,
                  "Accept a name listed twice (CLIP's ImageNet names repeat two)");
  commands.push_back(
      {build, [b] {
         const auto teacher = distill::Teacher::load(b->teacher);
         const auto names = text::read_class_names(b->classnames, b->allow_duplicates);
         const auto templates =
             b->templates.empty() ? text::default_templates() : text::read_templates(b->templates);
         spdlog::info("[bank] {} classes x {} templates with teacher {}", names.size(),
                      templates.size(), teacher->manifest().name);
         auto result = text::build_text_bank(
             names, templates,
             [&](const std::vector<std::string>& t) { return teacher->encode_texts(t); },
             b->batch_size);
         result.teacher = teacher->manifest().name;
         text::save_text_bank(b->output, result);
         spdlog::info("[bank] wrote {} x {} TSB to {}", result.weights.size(0),
                      result.weights.size(1), b->output);
         return 0;
       }});

  auto file = std::make_shared<std::string>();
  auto top = std::make_shared<std::int64_t>(3);
  auto* show = bank->add_subcommand("show", "Classes, dimensions and nearest classes by cosine");
  show->add_option("file", *file, "A bank written by 'lgd bank build'")->required();
  show->add_option("--neighbours", *top, "Nearest classes shown per class")->capture_default_str();
  commands.push_back(
      {show, [file, top] {
         const auto loaded = text::load_text_bank(*file);
         const auto C = loaded.weights.size(1);
         std::printf("%s: teacher %s, D = %lld, C = %lld, %zu template(s)\n", file->c_str(),
                     loaded.teacher.c_str(), static_cast<long long>(loaded.weights.size(0)),
                     static_cast<long long>(C), loaded.templates.size());
         const auto similarity = loaded.weights.t().matmul(loaded.weights);  // [C, C] cosines
         const std::int64_t k = std::min<std::int64_t>(*top, C - 1);
         const std::int64_t shown = std::min<std::int64_t>(C, 10);
         for (std::int64_t c = 0; c < shown; ++c) {
           std::printf("  %-24s", loaded.class_names[c].c_str());
           if (k > 0) {
             auto row = similarity[c].clone();
             row[c] = -2.0;
             auto best = row.topk(k);
             auto values = std::get<0>(best);
             auto indices = std::get<1>(best);
             for (std::int64_t i = 0; i < k; ++i)
               std::printf("  %s (%.3f)",
                           loaded.class_names[indices[i].item<std::int64_t>()].c_str(),
                           values[i].item<double>());
           }
           std::printf("\n");
         }
         if (C > shown)
           std::printf("  ... and %lld more classes\n", static_cast<long long>(C - shown));
         return 0;
       }});
}

}  // namespace lgd::cli
