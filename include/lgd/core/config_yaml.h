#pragma once
// Loading config values into a FieldSet: YAML files, `--set key=value` overrides, checks
// of required fields, and writing the resolved config back out. Every error is a
// ConfigError whose one-line message names the file, line, key, bad value and expectation.
#include <string>

#include "lgd/core/config_fields.h"

namespace lgd::config {

// Checks that YAML text is one document that the YAML library parses and returns from
// (Debian 12's yaml-cpp 0.7 never returns from YAML::LoadAll on some malformed text, such as
// a document starting with ','; found by fuzz/targets/run_config.cpp). ConfigError naming
// source, line and column otherwise. Every YAML text lgd parses goes through this first.
void check_yaml_text(const std::string& text, const std::string& source);

// Applies every key of the YAML file at `path` on top of the current values.
void apply_yaml_file(FieldSet& fields, const std::string& path, Origins& origins);

// Applies YAML text (used for configs embedded in checkpoints); `source` names it in errors.
void apply_yaml_text(FieldSet& fields, const std::string& text, const std::string& source,
                     Origins& origins);

// Applies one "a.b=value" override; the value is parsed as YAML and typed by the field.
void apply_override(FieldSet& fields, const std::string& assignment, Origins& origins);

// Throws for the first required field that no file or override set.
void check_required(const FieldSet& fields, const Origins& origins, const std::string& source);

// The resolved config as YAML, nested by section, in declaration order.
std::string to_yaml(const FieldSet& fields);

// A Markdown table of every key: type, default, constraints, help.
std::string reference_markdown(const FieldSet& fields);

}  // namespace lgd::config
