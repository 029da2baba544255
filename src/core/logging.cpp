#include "lgd/core/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "lgd/core/errors.h"

namespace lgd {

void init_logging(const std::string& level, const std::string& file) {
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off")
    throw UsageError("--log-level: unknown level '" + level +
                     "'; expected trace, debug, info, warn, error or off");
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("lgd", console);
  logger->set_pattern("%^%L%$ %H:%M:%S %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
  if (!file.empty()) add_log_file(file);
}

void add_log_file(const std::string& file) {
  try {
    auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file);
    sink->set_pattern("%Y-%m-%d %H:%M:%S.%e %L %v");
    spdlog::default_logger()->sinks().push_back(sink);
  } catch (const spdlog::spdlog_ex& e) {
    throw IoError(file + ": cannot open log file (" + e.what() + ")");
  }
}

}  // namespace lgd
