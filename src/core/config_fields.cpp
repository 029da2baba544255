#include "lgd/core/config_fields.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "lgd/core/text_distance.h"
#include "overloaded.h"

namespace lgd::config {
namespace {

using lgd::detail::Overloaded;

// Shortest decimal form that reads back to the same double.
std::string format_double(double v) {
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  if (std::isnan(v)) return ".nan";
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  // Keep floats recognisable as floats ("1.0", not "1").
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string quote_if_needed(const std::string& s) {
  if (s.empty()) return "\"\"";
  const bool plain = s.find_first_of(":#{}[],&*!|>'\"%@`\n") == std::string::npos &&
                     s.front() != ' ' && s.back() != ' ' && s.front() != '-';
  if (plain) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string Field::type_name() const {
  return std::visit(Overloaded{[](bool*) { return std::string("bool"); },
                               [](std::int64_t*) { return std::string("int"); },
                               [](double*) { return std::string("float"); },
                               [](std::string*) { return std::string("string"); },
                               [](std::vector<std::string>*) { return std::string("list"); },
                               [](std::vector<double>*) { return std::string("floats"); }},
                    target);
}

std::string Field::expectation() const {
  std::string what = std::visit(
      Overloaded{[](bool*) { return std::string("true or false"); },
                 [](std::int64_t*) { return std::string("an integer"); },
                 [](double*) { return std::string("a number"); },
                 [](std::string*) { return std::string("a string"); },
                 [](std::vector<std::string>*) { return std::string("a list of strings"); },
                 [](std::vector<double>*) { return std::string("a list of numbers"); }},
      target);
  if (!choices.empty()) return "one of " + join(choices);
  const bool integer = std::holds_alternative<std::int64_t*>(target);
  auto bound = [integer](double v) {
    char buf[32];
    if (integer && std::abs(v) < 9e15)
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));  // 4194304, not 4.1943e+06
    else
      std::snprintf(buf, sizeof buf, "%g", v);
    return std::string(buf);
  };
  if (min && max) {
    what += " in [" + bound(*min) + ", " + bound(*max) + "]";
  } else if (min) {
    what += (min_exclusive ? " > " : " >= ") + bound(*min);
  }
  return what;
}

std::string Field::value_string() const {
  return std::visit(Overloaded{[](bool* v) { return std::string(*v ? "true" : "false"); },
                               [](std::int64_t* v) { return std::to_string(*v); },
                               [](double* v) { return format_double(*v); },
                               [](std::string* v) { return quote_if_needed(*v); },
                               [](std::vector<std::string>* v) {
                                 std::string out = "[";
                                 for (std::size_t i = 0; i < v->size(); ++i) {
                                   if (i) out += ", ";
                                   out += quote_if_needed((*v)[i]);
                                 }
                                 return out + "]";
                               },
                               [](std::vector<double>* v) {
                                 std::string out = "[";
                                 for (std::size_t i = 0; i < v->size(); ++i)
                                   out += (i ? ", " : "") + format_double((*v)[i]);
                                 return out + "]";
                               }},
                    target);
}

Field* FieldSet::find(const std::string& key) {
  for (auto& f : fields_)
    if (f.key == key) return &f;
  return nullptr;
}

const Field* FieldSet::find(const std::string& key) const {
  for (const auto& f : fields_)
    if (f.key == key) return &f;
  return nullptr;
}

bool FieldSet::is_section(const std::string& key) const {
  const std::string prefix = key + ".";
  for (const auto& f : fields_)
    if (f.key.compare(0, prefix.size(), prefix) == 0) return true;
  return false;
}

std::vector<std::string> FieldSet::keys() const {
  std::vector<std::string> out;
  out.reserve(fields_.size());
  for (const auto& f : fields_) out.push_back(f.key);
  return out;
}

}  // namespace lgd::config
