#include "lgd/core/config_yaml.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lgd/core/errors.h"
#include "lgd/core/text_distance.h"
#include "overloaded.h"

namespace lgd::config {
namespace {

using lgd::detail::Overloaded;

std::string location(const std::string& source, const YAML::Mark& mark) {
  if (mark.is_null()) return source;
  return source + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

// A value as an error message shows it: control characters (a NUL, a newline) escaped, so
// that the message stays one line and nothing cuts it short.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "'" + printable(node.Scalar()) + "'";
  }
}

[[noreturn]] void fail_value(const Field& field, const YAML::Node& node, const std::string& where) {
  throw ConfigError(where + ": " + field.key + ": expected " + field.expectation() + ", got " +
                    describe(node));
}

void check_range(const Field& field, double v, const YAML::Node& node, const std::string& where) {
  const bool below = field.min && (field.min_exclusive ? v <= *field.min : v < *field.min);
  const bool over = field.max && v > *field.max;
  if (below || over) fail_value(field, node, where);
}

bool parse_bool(const std::string& s, bool& out) {
  if (s == "true" || s == "True" || s == "TRUE" || s == "yes" || s == "on") return out = true, true;
  if (s == "false" || s == "False" || s == "FALSE" || s == "no" || s == "off") {
    out = false;
    return true;
  }
  return false;
}

// Stores `node` into `field` or throws a ConfigError naming `where`.
void set_value(Field& field, const YAML::Node& node, const std::string& where) {
  const bool scalar = node.IsScalar();
  std::visit(Overloaded{[&](bool* target) {
                          if (!scalar || !parse_bool(node.Scalar(), *target))
                            fail_value(field, node, where);
                        },
                        [&](std::int64_t* target) {
                          if (!scalar) fail_value(field, node, where);
                          const std::string& s = node.Scalar();
                          char* end = nullptr;
                          errno = 0;
                          const long long v = std::strtoll(s.c_str(), &end, 10);
                          if (s.empty() || *end != '\0' || errno == ERANGE)
                            fail_value(field, node, where);
                          check_range(field, static_cast<double>(v), node, where);
                          *target = v;
                        },
                        [&](double* target) {
                          if (!scalar) fail_value(field, node, where);
                          const std::string& s = node.Scalar();
                          char* end = nullptr;
                          const double v = std::strtod(s.c_str(), &end);
                          if (s.empty() || *end != '\0' || !std::isfinite(v))
                            fail_value(field, node, where);
                          check_range(field, v, node, where);
                          *target = v;
                        },
                        [&](std::string* target) {
                          if (node.IsNull()) {
                            if (!field.choices.empty()) fail_value(field, node, where);
                            target->clear();
                            return;
                          }
                          if (!scalar) fail_value(field, node, where);
                          const std::string& s = node.Scalar();
                          if (s.find('\0') != std::string::npos)
                            throw ConfigError(where + ": " + field.key + ": a NUL byte in '" +
                                              printable(s) + "' (expected text)");
                          if (!field.choices.empty()) {
                            bool ok = false;
                            for (const auto& c : field.choices) ok = ok || c == s;
                            if (!ok) {
                              std::string message = where + ": " + field.key + ": expected " +
                                                    field.expectation() + ", got '" + printable(s) + "'";
                              if (auto near = nearest(s, field.choices))
                                message += " (did you mean " + *near + "?)";
                              throw ConfigError(message);
                            }
                          }
                          *target = s;
                        },
                        [&](std::vector<std::string>* target) {
                          if (node.IsNull()) {
                            target->clear();
                            return;
                          }
                          if (!node.IsSequence()) fail_value(field, node, where);
                          std::vector<std::string> values;
                          for (const auto& item : node) {
                            if (!item.IsScalar()) fail_value(field, node, where);
                            values.push_back(item.Scalar());
                          }
                          *target = std::move(values);
                        },
                        [&](std::vector<double>* target) {
                          if (!node.IsSequence()) fail_value(field, node, where);
                          std::vector<double> values;
                          for (const auto& item : node) {
                            char* end = nullptr;
                            const std::string s = item.IsScalar() ? item.Scalar() : "";
                            const double v = std::strtod(s.c_str(), &end);
                            if (s.empty() || *end != '\0' || !std::isfinite(v))
                              fail_value(field, node, where);
                            values.push_back(v);
                          }
                          *target = std::move(values);
                        }},
             field.target);
}

std::vector<std::string> keys_and_sections(const FieldSet& fields) {
  std::vector<std::string> out;
  for (const auto& f : fields.fields()) {
    out.push_back(f.key);
    for (std::size_t dot = f.key.find('.'); dot != std::string::npos;
         dot = f.key.find('.', dot + 1))
      out.push_back(f.key.substr(0, dot));
  }
  return out;
}

[[noreturn]] void fail_unknown(const FieldSet& fields, const std::string& key,
                               const std::string& where) {
  std::string message = where + ": unknown key '" + key + "'";
  if (auto near = nearest(key, keys_and_sections(fields)))
    message += " (did you mean " + *near + "?)";
  throw ConfigError(message);
}

void walk(FieldSet& fields, const YAML::Node& map, const std::string& prefix,
          const std::string& source, Origins& origins) {
  for (const auto& entry : map) {
    const std::string where = location(source, entry.first.Mark());
    if (!entry.first.IsScalar())
      throw ConfigError(where + ": expected a key name, got " + describe(entry.first));
    const std::string key =
        prefix.empty() ? entry.first.Scalar() : prefix + "." + entry.first.Scalar();
    if (Field* field = fields.find(key)) {
      set_value(*field, entry.second, location(source, entry.second.Mark()));
      origins[key] = where;
    } else if (fields.is_section(key)) {
      if (entry.second.IsNull()) continue;  // an empty section keeps its defaults
      if (!entry.second.IsMap())
        throw ConfigError(where + ": " + key + ": expected a section of keys, got " +
                          describe(entry.second));
      walk(fields, entry.second, key, source, origins);
    } else {
      fail_unknown(fields, key, where);
    }
  }
}

void apply_root(FieldSet& fields, const YAML::Node& root, const std::string& source,
                Origins& origins) {
  if (root.IsNull()) return;
  if (!root.IsMap())
    throw ConfigError(source + ": expected a mapping of config keys at the top level, got " +
                      describe(root));
  walk(fields, root, "", source, origins);
}

// Counts the documents of a YAML stream from yaml-cpp's parser events, without building nodes.
// yaml-cpp up to 0.8 (Debian 12 has 0.7) returns from HandleNextDocument again and again
// without moving on when a document starts with a token no value can start with, such as a
// ',' outside a flow collection (jbeder/yaml-cpp#1040); YAML::LoadAll then never returns.
// A document that starts where the previous one started is that case.
class DocumentCounter : public YAML::EventHandler {
 public:
  int documents = 0;
  bool stuck = false;
  YAML::Mark start;

  void OnDocumentStart(const YAML::Mark& mark) override {
    stuck = documents > 0 && mark.pos == start.pos;
    start = mark;
    ++documents;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

YAML::Node parse(const std::string& text, const std::string& source) {
  check_yaml_text(text, source);  // one document, which YAML::Load returns from
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(location(source, e.mark) + ": invalid YAML: " + e.msg);
  }
}

}  // namespace

void check_yaml_text(const std::string& text, const std::string& source) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  try {
    while (parser.HandleNextDocument(counter))
      if (counter.stuck)
        throw ConfigError(location(source, counter.start) +
                          ": invalid YAML: a value cannot start here (a ',' outside [ ] or { }?)");
  } catch (const YAML::Exception& e) {
    throw ConfigError(location(source, e.mark) + ": invalid YAML: " + e.msg);
  }
  if (counter.documents > 1)
    throw ConfigError(source + ": holds " + std::to_string(counter.documents) +
                      " YAML documents (separated by ---); a config is one document");
}

void apply_yaml_text(FieldSet& fields, const std::string& text, const std::string& source,
                     Origins& origins) {
  apply_root(fields, parse(text, source), source, origins);
}

void apply_yaml_file(FieldSet& fields, const std::string& path, Origins& origins) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw ConfigError(path + ": is a directory; expected a YAML config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read config file (" + std::strerror(errno) + ")");
  std::ostringstream text;
  text << in.rdbuf();
  apply_yaml_text(fields, text.str(), path, origins);
}

void apply_override(FieldSet& fields, const std::string& assignment, Origins& origins) {
  const std::string where = "--set " + assignment;
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(where + ": expected key=value, for example optim.lr=0.05");
  const std::string key = assignment.substr(0, eq);
  Field* field = fields.find(key);
  if (!field) {
    if (fields.is_section(key))
      throw ConfigError(where + ": '" + key + "' is a section; set one of its keys, e.g. " + key +
                        "." + [&] {
                          for (const auto& f : fields.fields())
                            if (f.key.rfind(key + ".", 0) == 0) return f.key.substr(key.size() + 1);
                          return std::string();
                        }());
    fail_unknown(fields, key, where);
  }
  set_value(*field, parse(assignment.substr(eq + 1), where), where);
  origins[key] = where;  // "--set key=value"
}

void check_required(const FieldSet& fields, const Origins& origins, const std::string& source) {
  for (const auto& f : fields.fields()) {
    if (f.is_required && origins.find(f.key) == origins.end())
      throw ConfigError(source + ": " + f.key + ": required key is missing (expected " +
                        f.expectation() + ")");
  }
}

std::string to_yaml(const FieldSet& fields) {
  std::ostringstream out;
  std::vector<std::string> open;  // sections currently open
  for (const auto& f : fields.fields()) {
    std::vector<std::string> parts;
    std::stringstream ss(f.key);
    for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
    std::size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common])
      ++common;
    open.resize(common);
    for (std::size_t i = common; i + 1 < parts.size(); ++i) {
      out << std::string(2 * i, ' ') << parts[i] << ":\n";
      open.push_back(parts[i]);
    }
    out << std::string(2 * open.size(), ' ') << parts.back() << ": " << f.value_string() << "\n";
  }
  return out.str();
}

std::string reference_markdown(const FieldSet& fields) {
  std::ostringstream out;
  out << "| key | type | default | allowed | meaning |\n";
  out << "| --- | --- | --- | --- | --- |\n";
  for (const auto& f : fields.fields()) {
    std::string allowed = f.choices.empty() ? "" : join(f.choices, ", ");
    if (allowed.empty() && (f.min || f.max)) allowed = f.expectation();
    std::string value = f.is_required ? "(required)" : "`" + f.value_string() + "`";
    out << "| `" << f.key << "` | " << f.type_name() << " | " << value << " | " << allowed << " | "
        << f.help << " |\n";
  }
  return out.str();
}

}  // namespace lgd::config
