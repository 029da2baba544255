#pragma once
// Declarative config fields: each option is declared once (key, type, default taken from
// the bound struct member, help, constraints) and bound to a member of a typed struct.
// Loading (config_yaml.h) walks YAML and --set overrides through these declarations, so
// the rest of the program only ever sees the typed structs.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace lgd::config {

using FieldTarget = std::variant<bool*, std::int64_t*, double*, std::string*,
                                 std::vector<std::string>*, std::vector<double>*>;

struct Field {
  std::string key;  // dotted path, e.g. "optim.lr"
  FieldTarget target;
  std::string help;
  std::vector<std::string> choices;  // strings only; empty means any string
  std::optional<double> min;         // numbers only
  std::optional<double> max;
  bool min_exclusive = false;
  bool is_required = false;

  // Builder-style constraints, chained after FieldSet::add.
  Field& range(double lo, double hi) {
    min = lo;
    max = hi;
    return *this;
  }
  Field& at_least(double lo) {
    min = lo;
    return *this;
  }
  Field& above(double lo) {
    min = lo;
    min_exclusive = true;
    return *this;
  }
  Field& one_of(std::vector<std::string> values) {
    choices = std::move(values);
    return *this;
  }
  Field& required() {
    is_required = true;
    return *this;
  }

  // "a number", "an integer", "true or false", "a string", "a list of strings",
  // "one of a, b, c", with the range when there is one.
  std::string expectation() const;
  std::string type_name() const;     // bool, int, float, string, list
  std::string value_string() const;  // current value, formatted as YAML would show it
};

// Where each key's value came from: "file.yaml:3:5", "--set", or absent for defaults.
using Origins = std::map<std::string, std::string>;

class FieldSet {
 public:
  template <typename T>
  Field& add(std::string key, T* target, std::string help) {
    fields_.push_back(
        Field{std::move(key), FieldTarget{target}, std::move(help), {}, {}, {}, false, false});
    return fields_.back();
  }

  const std::vector<Field>& fields() const { return fields_; }
  std::vector<Field>& fields() { return fields_; }
  Field* find(const std::string& key);
  const Field* find(const std::string& key) const;
  bool is_section(const std::string& key) const;  // a proper prefix of some field key
  std::vector<std::string> keys() const;

 private:
  std::vector<Field> fields_;
};

}  // namespace lgd::config
