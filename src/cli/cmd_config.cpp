// lgd config check|print|reference
#include <cstdio>

#include "commands.h"
#include "lgd/config/run_config.h"
#include "lgd/core/config_yaml.h"

namespace lgd::cli {
namespace {

struct ConfigArgs {
  std::string file;
  std::vector<std::string> overrides;
};

void add_file_options(CLI::App* cmd, ConfigArgs& args) {
  cmd->add_option("file", args.file, "YAML config file")->required();
  cmd->add_option("--set", args.overrides,
                  "Override a key, e.g. --set optim.lr=0.05 (repeatable; typed by the key)")
      ->type_name("KEY=VALUE");
}

}  // namespace

void add_config_command(CLI::App& app, Commands& commands) {
  auto* config =
      app.add_subcommand("config", "Validate a config, print it resolved, or list every key");
  config->require_subcommand(1, 1);
  auto args = std::make_shared<ConfigArgs>();

  auto* check = config->add_subcommand(
      "check", "Validate FILE (+ --set overrides): exit 0 when valid, else one line and exit 2");
  add_file_options(check, *args);
  commands.push_back({check, [args] {
                        const auto loaded = config::load_run_config(args->file, args->overrides);
                        const auto& c = loaded.config;
                        std::printf("%s: ok (student %s, method %s, run %s)\n", args->file.c_str(),
                                    c.student.arch.c_str(), c.method.name.c_str(),
                                    c.run.name.c_str());
                        return 0;
                      }});

  auto* print = config->add_subcommand(
      "print", "Print the resolved config: defaults < FILE < --set overrides");
  add_file_options(print, *args);
  commands.push_back({print, [args] {
                        const auto loaded = config::load_run_config(args->file, args->overrides);
                        std::fputs(config::to_yaml(loaded.config).c_str(), stdout);
                        return 0;
                      }});

  auto* reference = config->add_subcommand(
      "reference", "Print every key with its type, default and meaning (Markdown)");
  commands.push_back({reference, [] {
                        config::RunConfig defaults;
                        std::fputs(config::reference_markdown(config::describe(defaults)).c_str(),
                                   stdout);
                        return 0;
                      }});
}

}  // namespace lgd::cli
