#pragma once
// spdlog set-up: a console sink on stderr and, optionally, a file sink. Messages are tagged
// by component, e.g. LGD_INFO("[export] wrote {}", path).
#include <spdlog/spdlog.h>

#include <string>

namespace lgd {

// level: trace | debug | info | warn | error | off. UsageError for another value.
void init_logging(const std::string& level, const std::string& file = "");

// Adds a file sink (e.g. a run directory's log) to the default logger.
void add_log_file(const std::string& file);

}  // namespace lgd
