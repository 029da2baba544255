#pragma once
// Each subcommand registers its options on the CLI11 app and an action that main runs
// after parsing, inside one error handler.
#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace lgd::cli {

struct Command {
  CLI::App* app;             // the subcommand (or sub-subcommand) that selects the action
  std::function<int()> run;  // returns the exit code
};
using Commands = std::vector<Command>;

void add_info_command(CLI::App& app, Commands& commands);
void add_config_command(CLI::App& app, Commands& commands);
void add_export_command(CLI::App& app, Commands& commands);
void add_tokenize_command(CLI::App& app, Commands& commands);
void add_bank_command(CLI::App& app, Commands& commands);
void add_bench_command(CLI::App& app, Commands& commands);
void add_train_command(CLI::App& app, Commands& commands);
void add_eval_command(CLI::App& app, Commands& commands);

}  // namespace lgd::cli
