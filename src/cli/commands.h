#pragma once
// Each subcommand registers its options on the CLI11 app and an action that main runs
// after parsing, inside one error handler.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lgd::cli {

struct Command {
  CLI::App* app;             // the subcommand (or sub-subcommand) that selects the action
  std::function<int()> run;  // returns the exit code
};
using Commands = std::vector<Command>;

// Limits of the sizes and counts a user types, checked while parsing (exit 2, one line
// naming the option and the limit) so that none reaches an allocator unchecked.
inline constexpr std::int64_t kMaxImageSize = 4096;     // as data.image_size
inline constexpr std::int64_t kMaxBatch = 65536;        // as data.batch_size
inline constexpr std::int64_t kMaxClasses = 1000000;    // classifier rows
inline constexpr int kMaxThreads = 1024;                // workers, intra-op threads

// An integer in [lo, hi], or 0 where 0 means "the default".
inline CLI::Validator in_range_or_zero(std::int64_t lo, std::int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        std::int64_t v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return "expected an integer, got '" + s + "'";
        if (v == 0 || (v >= lo && v <= hi)) return {};
        return "expected 0 (the default) or an integer in [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "], got " + s;
      },
      "0 or [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

// A finite number > 0 (CLI::PositiveNumber lets inf through).
inline CLI::Validator finite_positive() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v) || !std::isfinite(v) || !(v > 0))
          return "expected a finite number > 0, got '" + s + "'";
        return {};
      },
      "finite > 0");
}

// A finite number >= 0.
inline CLI::Validator finite_non_negative() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v) || !std::isfinite(v) || v < 0)
          return "expected a finite number >= 0, got '" + s + "'";
        return {};
      },
      "finite >= 0");
}

// This process's arguments (from /proc/self/cmdline) without the program name and --nproc:
// what `--nproc N` starts N workers with.
std::vector<std::string> arguments_without_nproc();

void add_info_command(CLI::App& app, Commands& commands);
void add_config_command(CLI::App& app, Commands& commands);
void add_export_command(CLI::App& app, Commands& commands);
void add_tokenize_command(CLI::App& app, Commands& commands);
void add_bank_command(CLI::App& app, Commands& commands);
void add_bench_command(CLI::App& app, Commands& commands);
void add_train_command(CLI::App& app, Commands& commands);
void add_reinforce_command(CLI::App& app, Commands& commands);
void add_eval_command(CLI::App& app, Commands& commands);

}  // namespace lgd::cli
