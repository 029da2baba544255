#pragma once
// Typed errors. Everything a user can get wrong is reported through one of these; the CLI
// turns them into a single line on stderr and the matching exit code.
#include <stdexcept>
#include <string>

namespace lgd {

// Base of every lgd error. The message is complete: it names the file, key or value and
// what was expected.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  virtual int exit_code() const { return 1; }
};

// A malformed config: unknown key, wrong type, out-of-range value, missing field.
class ConfigError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

// A bad command line (besides what CLI11 itself rejects).
class UsageError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

// A missing, unreadable or corrupt file, or one whose content does not fit.
class IoError : public Error {
 public:
  using Error::Error;
};

// Exit codes of the lgd executable.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// "path: message" helper for messages about a file.
std::string at_file(const std::string& path, const std::string& message);

}  // namespace lgd
