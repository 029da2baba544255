// lgd: the command-line interface over lgd_core.
#include <c10/util/Exception.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"
#include "lgd/core/errors.h"
#include "lgd/core/logging.h"
#include "lgd/core/malloc_tuning.h"
#include "lgd/core/text_distance.h"
#include "lgd/core/version.h"
#include "lgd/data/decode.h"

int main(int argc, char** argv) {
  const auto malloc_tuning = lgd::keep_freed_memory();
  lgd::data::set_max_image_pixels(lgd::data::kDefaultMaxImagePixels);  // before any thread starts
  CLI::App app{
      "lgd: pre-train small vision models by Language-Guided Distillation from a frozen "
      "CLIP-style teacher.\n"};
  app.name("lgd");
  app.require_subcommand(1, 1);
  app.set_version_flag("--version", std::string("lgd ") + lgd::version());
  std::string log_level = "info";
  std::string log_file;
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  app.add_option("--log-file", log_file, "Also write the log to this file");
  app.footer("Run 'lgd <command> --help' for the options of a command.");

  lgd::cli::Commands commands;
  lgd::cli::add_train_command(app, commands);
  lgd::cli::add_reinforce_command(app, commands);
  lgd::cli::add_eval_command(app, commands);
  lgd::cli::add_info_command(app, commands);
  lgd::cli::add_config_command(app, commands);
  lgd::cli::add_export_command(app, commands);
  lgd::cli::add_tokenize_command(app, commands);
  lgd::cli::add_bank_command(app, commands);
  lgd::cli::add_bench_command(app, commands);

  // The first words that are not options name the command (and, for bench, config and
  // bank, its subcommand): an unknown one is named, with the valid ones (CLI11 would only
  // say that an argument was not expected).
  CLI::App* level = &app;
  for (int i = 1; i < argc && level != nullptr; ++i) {
    const std::string word = argv[i];
    if (level == &app && (word == "--log-level" || word == "--log-file")) {
      ++i;
      continue;
    }
    if (word.rfind('-', 0) == 0) {
      if (level != &app) break;  // a command's own options: CLI11 checks them
      continue;
    }
    std::vector<std::string> names;
    CLI::App* next = nullptr;
    for (auto* sub : level->get_subcommands([](CLI::App* a) { return !a->get_name().empty(); })) {
      names.push_back(sub->get_name());
      if (sub->get_name() == word) next = sub;
    }
    if (names.empty()) break;  // a command without subcommands: the word is its argument
    if (next == nullptr) {
      const std::string what = level == &app ? "command" : level->get_name() + " command";
      std::cerr << "lgd: error: unknown " << what << " '" << word << "'";
      if (const auto near = lgd::nearest(word, names)) std::cerr << " (did you mean " << *near << "?)";
      std::cerr << "; the " << (level == &app ? "commands" : what + "s") << " are " << lgd::join(names)
                << " (see 'lgd " << (level == &app ? std::string() : level->get_name() + " ") << "--help')\n";
      return lgd::kExitUsage;
    }
    level = next;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "lgd: error: " << e.what() << " (see 'lgd --help')\n";
    return lgd::kExitUsage;
  }

  try {
    lgd::init_logging(log_level, log_file);
    spdlog::debug("[lgd] malloc: {}", malloc_tuning.reason);
    for (const auto& command : commands)
      if (command.app->parsed()) return command.run();
    std::cerr << "lgd: error: no command given (see 'lgd --help')\n";
    return lgd::kExitUsage;
  } catch (const lgd::Error& e) {
    std::cerr << "lgd: error: " << e.what() << "\n";
    return e.exit_code();
  } catch (const c10::Error& e) {
    std::cerr << "lgd: error: " << e.what_without_backtrace() << "\n";
    return lgd::kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "lgd: error: " << e.what() << "\n";
    return lgd::kExitFailure;
  }
}
