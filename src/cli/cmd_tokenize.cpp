// lgd tokenize: the token ids a teacher's text encoder receives.
#include <cstdio>

#include "commands.h"
#include "lgd/distill/teacher.h"

namespace lgd::cli {

void add_tokenize_command(CLI::App& app, Commands& commands) {
  struct Args {
    std::string teacher;
    std::vector<std::string> texts;
    bool truncate = false;
    bool keep_padding = false;
    bool decode = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids a teacher's text encoder gets");
  cmd->add_option("--teacher", a->teacher, "Teacher bundle directory")->required();
  cmd->add_option("text", a->texts, "Texts to tokenize")->required();
  cmd->add_flag("--truncate", a->truncate, "Truncate overlong text instead of failing");
  cmd->add_flag("--padding", a->keep_padding, "Also print the padding up to the context length");
  cmd->add_flag("--decode", a->decode, "Also print the ids decoded back to text (third column)");
  cmd->footer("Prints one line per text: the text, a tab, the space-separated ids.");
  commands.push_back({cmd, [a] {
                        const auto manifest = distill::read_manifest(a->teacher);
                        // Only the tokenizer is needed: no encoder is loaded.
                        const auto tokenizer = distill::make_tokenizer(a->teacher, manifest);
                        for (const auto& text : a->texts) {
                          auto ids = tokenizer->tokenize(
                              text, manifest.text.context_length,
                              a->truncate ? text::Overflow::kTruncate : text::Overflow::kError);
                          const auto& spec = manifest.text.tokenizer;
                          const std::int64_t pad = spec.type == "clip-bpe" ? 0 : spec.pad_id;
                          // Where padding equals the end id (SigLIP), the padding cannot be told
                          // apart: keep it.
                          if (!a->keep_padding &&
                              !(spec.type == "sentencepiece" && spec.pad_id == spec.eos_id)) {
                            while (!ids.empty() && ids.back() == pad) ids.pop_back();
                          }
                          std::string line;
                          for (std::size_t i = 0; i < ids.size(); ++i)
                            line += (i ? " " : "") + std::to_string(ids[i]);
                          if (a->decode) line += "\t" + tokenizer->decode(ids);
                          std::printf("%s\t%s\n", text.c_str(), line.c_str());
                        }
                        return 0;
                      }});
}

}  // namespace lgd::cli
