#include "common/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>
#include <system_error>

namespace pushgw::common::detail {
namespace {

constexpr std::string_view kRedacted = "<redacted>";

bool valid_segment(std::string_view s) {
  if (s.empty() || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool valid_key(std::string_view key) {
  if (key.find("__") != std::string_view::npos) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = key.find('.', start);
    if (!valid_segment(key.substr(start, dot == std::string_view::npos ? dot : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool ends_with_any(std::string_view key, std::initializer_list<std::string_view> suffixes) {
  return std::any_of(suffixes.begin(), suffixes.end(),
                     [key](std::string_view s) { return key.ends_with(s); });
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// A TOML basic string (also readable in messages): quotes and control characters escaped.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789ABCDEF";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

std::string format_double(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), d);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

/// The value as a TOML literal.
std::string format_value(const ConfigValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<X, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<X, int64_t>) {
          return std::to_string(x);
        } else if constexpr (std::is_same_v<X, double>) {
          return format_double(x);
        } else if constexpr (std::is_same_v<X, std::string>) {
          return quote(x);
        } else {
          std::string out = "[";
          for (size_t i = 0; i < x.size(); ++i) {
            if (i) out += ", ";
            out += quote(x[i]);
          }
          return out + "]";
        }
      },
      v);
}

std::string format_shown(const FieldSpec& f, const ConfigValue& v) {
  return f.secret ? std::string(kRedacted) : format_value(v);
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

std::string int_range_text(const FieldSpec& f) {
  const bool has_min = f.min_int && *f.min_int != std::numeric_limits<int64_t>::min();
  const bool has_max = f.max_int && *f.max_int != std::numeric_limits<int64_t>::max();
  if (has_min && has_max) {
    return " in [" + std::to_string(*f.min_int) + ", " + std::to_string(*f.max_int) + "]";
  }
  if (has_min) return " >= " + std::to_string(*f.min_int);
  if (has_max) return " <= " + std::to_string(*f.max_int);
  return "";
}

/// What a key accepts, in words ("an integer in [1, 65535]").
std::string expectation(const FieldSpec& f) {
  switch (f.kind) {
    case ConfigKind::kBool:
      return "a boolean (true or false)";
    case ConfigKind::kInteger:
      return "an integer" + int_range_text(f);
    case ConfigKind::kMilliseconds:
      return "an integer number of milliseconds" + int_range_text(f);
    case ConfigKind::kSeconds:
      return "an integer number of seconds" + int_range_text(f);
    case ConfigKind::kDouble:
      if (f.min_real && f.max_real) {
        return "a number in [" + format_double(*f.min_real) + ", " + format_double(*f.max_real) +
               "]";
      }
      return "a number";
    case ConfigKind::kString:
      if (!f.choices.empty()) return "one of: " + join(f.choices, ", ");
      return f.non_empty ? "a non-empty string" : "a string";
    case ConfigKind::kEnum:
      return "one of: " + join(f.choices, ", ");
    case ConfigKind::kStringList:
      return f.non_empty ? "a non-empty array of strings" : "an array of strings";
  }
  return "a value";
}

/// Checks range, choice and emptiness rules; returns the problem, if any.
std::optional<std::string> check_constraints(const FieldSpec& f, const ConfigValue& v) {
  const std::string shown = format_shown(f, v);
  switch (f.kind) {
    case ConfigKind::kInteger:
    case ConfigKind::kMilliseconds:
    case ConfigKind::kSeconds: {
      const int64_t x = std::get<int64_t>(v);
      if ((f.min_int && x < *f.min_int) || (f.max_int && x > *f.max_int)) {
        return "value " + shown + " is out of range; expected " + expectation(f);
      }
      return std::nullopt;
    }
    case ConfigKind::kDouble: {
      const double x = std::get<double>(v);
      if (std::isnan(x) || (f.min_real && x < *f.min_real) || (f.max_real && x > *f.max_real)) {
        return "value " + shown + " is out of range; expected " + expectation(f);
      }
      return std::nullopt;
    }
    case ConfigKind::kString:
    case ConfigKind::kEnum: {
      const auto& s = std::get<std::string>(v);
      if (!f.choices.empty() &&
          std::find(f.choices.begin(), f.choices.end(), s) == f.choices.end()) {
        return "value " + shown + " is not allowed; expected " + expectation(f);
      }
      if (f.non_empty && s.empty()) return "value is empty; expected " + expectation(f);
      return std::nullopt;
    }
    case ConfigKind::kStringList:
      if (f.non_empty && std::get<std::vector<std::string>>(v).empty()) {
        return "value is empty; expected " + expectation(f);
      }
      return std::nullopt;
    case ConfigKind::kBool:
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<int64_t> parse_int(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t out = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  if (s.empty() || r.ec != std::errc{} || r.ptr != s.data() + s.size()) return std::nullopt;
  return out;
}

std::optional<double> parse_double(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double out = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  if (s.empty() || r.ec != std::errc{} || r.ptr != s.data() + s.size()) return std::nullopt;
  return out;
}

/// Interprets env / --set text for a key; nullopt when it is not of the key's type.
std::optional<ConfigValue> from_text(const FieldSpec& f, std::string_view raw) {
  switch (f.kind) {
    case ConfigKind::kBool: {
      const std::string s = lower(trim(raw));
      if (s == "true" || s == "1" || s == "yes" || s == "on") return ConfigValue{true};
      if (s == "false" || s == "0" || s == "no" || s == "off") return ConfigValue{false};
      return std::nullopt;
    }
    case ConfigKind::kInteger:
    case ConfigKind::kMilliseconds:
    case ConfigKind::kSeconds:
      if (auto v = parse_int(trim(raw))) return ConfigValue{*v};
      return std::nullopt;
    case ConfigKind::kDouble:
      if (auto v = parse_double(trim(raw))) return ConfigValue{*v};
      return std::nullopt;
    case ConfigKind::kString:
    case ConfigKind::kEnum:
      return ConfigValue{std::string(raw)};
    case ConfigKind::kStringList: {
      const std::string s = trim(raw);
      std::vector<std::string> items;
      if (!s.empty() && s.front() == '[') {
        // A TOML array literal, for items that contain commas.
        try {
          const toml::table t = toml::parse("v = " + s);
          const toml::array* arr = t["v"].as_array();
          if (arr == nullptr) return std::nullopt;
          for (const toml::node& el : *arr) {
            const auto* str = el.as_string();
            if (str == nullptr) return std::nullopt;
            items.push_back(str->get());
          }
        } catch (const toml::parse_error&) {
          return std::nullopt;
        }
        return ConfigValue{std::move(items)};
      }
      size_t start = 0;
      while (start <= s.size()) {
        const size_t comma = s.find(',', start);
        const std::string item = trim(
            std::string_view(s).substr(start, comma == std::string::npos ? comma : comma - start));
        if (!item.empty()) items.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      return ConfigValue{std::move(items)};
    }
  }
  return std::nullopt;
}

std::optional<ConfigValue> from_node(const FieldSpec& f, const toml::node& n) {
  switch (f.kind) {
    case ConfigKind::kBool:
      if (const auto* b = n.as_boolean()) return ConfigValue{b->get()};
      return std::nullopt;
    case ConfigKind::kInteger:
    case ConfigKind::kMilliseconds:
    case ConfigKind::kSeconds:
      if (const auto* i = n.as_integer()) return ConfigValue{i->get()};
      return std::nullopt;
    case ConfigKind::kDouble:
      if (const auto* d = n.as_floating_point()) return ConfigValue{d->get()};
      if (const auto* i = n.as_integer()) return ConfigValue{static_cast<double>(i->get())};
      return std::nullopt;
    case ConfigKind::kString:
    case ConfigKind::kEnum:
      if (const auto* s = n.as_string()) return ConfigValue{s->get()};
      return std::nullopt;
    case ConfigKind::kStringList: {
      const auto* arr = n.as_array();
      if (arr == nullptr) return std::nullopt;
      std::vector<std::string> items;
      for (const toml::node& el : *arr) {
        const auto* s = el.as_string();
        if (s == nullptr) return std::nullopt;
        items.push_back(s->get());
      }
      return ConfigValue{std::move(items)};
    }
  }
  return std::nullopt;
}

/// A TOML node in words, for "got ..." in messages.
std::string describe_node(const FieldSpec* f, const toml::node& n) {
  const bool masked = f != nullptr && f->secret;
  auto shown = [&](const std::string& literal) {
    return masked ? std::string(kRedacted) : literal;
  };
  if (const auto* s = n.as_string()) return "string " + shown(quote(s->get()));
  if (const auto* i = n.as_integer()) return "integer " + shown(std::to_string(i->get()));
  if (const auto* d = n.as_floating_point()) return "float " + shown(format_double(d->get()));
  if (const auto* b = n.as_boolean()) return "boolean " + shown(b->get() ? "true" : "false");
  if (const auto* a = n.as_array()) {
    for (const toml::node& el : *a) {
      if (!el.is_string()) return "an array holding " + describe_node(f, el);
    }
    return "an array";
  }
  if (n.is_table()) return "a table";
  return "a date/time";
}

std::string describe_text(const FieldSpec& f, std::string_view raw) {
  return f.secret ? std::string(kRedacted) : quote(raw);
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] =
          std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

class Resolver {
 public:
  Resolver(const SchemaCore& core, std::vector<ConfigValue>& values,
           std::vector<std::string>& origins)
      : core_(core), values_(values), origins_(origins) {
    const auto& fields = core_.fields();
    for (size_t i = 0; i < fields.size(); ++i) {
      index_[fields[i].key] = i;
      std::string_view k = fields[i].key;
      for (size_t dot = k.find('.'); dot != std::string_view::npos; dot = k.find('.', dot + 1)) {
        sections_.emplace(k.substr(0, dot), fields[i].key);
      }
    }
  }

  void apply_table(const toml::table& table, const std::string& prefix, const std::string& file) {
    for (auto&& [k, node] : table) {
      const std::string key =
          prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
      const std::string where = "config file '" + file + "' " + position(k.source());
      if (auto it = index_.find(key); it != index_.end()) {
        const FieldSpec& f = core_.fields()[it->second];
        auto v = from_node(f, node);
        if (!v) {
          fail(f, where, "expected " + expectation(f) + ", got " + describe_node(&f, node));
        }
        set(it->second, std::move(*v), where);
      } else if (auto s = sections_.find(key); s != sections_.end()) {
        if (const toml::table* sub = node.as_table()) {
          apply_table(*sub, key, file);
        } else {
          throw ConfigError(where + ": key '" + key + "' is a section (e.g. '" + s->second +
                            "'); expected a table, got " + describe_node(nullptr, node));
        }
      } else {
        throw ConfigError(where + ": unknown key '" + key + "'" + suggest(key));
      }
    }
  }

  void apply_text(size_t idx, std::string_view raw, const std::string& where) {
    const FieldSpec& f = core_.fields()[idx];
    auto v = from_text(f, raw);
    if (!v) fail(f, where, "expected " + expectation(f) + ", got " + describe_text(f, raw));
    set(idx, std::move(*v), where);
  }

  std::optional<size_t> find(const std::string& key) const {
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    return it->second;
  }

  std::string suggest(const std::string& key) const {
    std::string best;
    size_t best_d = std::max<size_t>(2, key.size() / 3) + 1;
    auto consider = [&](const std::string& candidate) {
      const size_t d = edit_distance(key, candidate);
      if (d < best_d) {
        best_d = d;
        best = candidate;
      }
    };
    for (const auto& [k, i] : index_) consider(k);
    for (const auto& [s, k] : sections_) consider(s);
    return best.empty() ? std::string() : "; did you mean '" + best + "'?";
  }

  [[noreturn]] static void fail(const FieldSpec& f, const std::string& where,
                                const std::string& problem) {
    throw ConfigError("config key '" + f.key + "' (" + where + "): " + problem);
  }

 private:
  static std::string position(const toml::source_region& src) {
    return "line " + std::to_string(src.begin.line) + ", column " +
           std::to_string(src.begin.column);
  }

  void set(size_t idx, ConfigValue v, const std::string& where) {
    const FieldSpec& f = core_.fields()[idx];
    if (auto problem = check_constraints(f, v)) fail(f, where, *problem);
    values_[idx] = std::move(v);
    origins_[idx] = where;
  }

  const SchemaCore& core_;
  std::vector<ConfigValue>& values_;
  std::vector<std::string>& origins_;
  std::map<std::string, size_t> index_;
  std::multimap<std::string, std::string> sections_;
};

toml::table parse_file_checked(const std::filesystem::path& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    throw ConfigError("config file '" + path.string() + "' does not exist");
  }
  if (!std::filesystem::is_regular_file(status)) {
    throw ConfigError("config file '" + path.string() + "' is not a regular file");
  }
  try {
    return toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    throw ConfigError("config file '" + path.string() + "' line " +
                      std::to_string(e.source().begin.line) + ", column " +
                      std::to_string(e.source().begin.column) + ": " +
                      std::string(e.description()));
  }
}

std::string comment(std::string_view doc) {
  std::string out = "# ";
  for (const char c : doc) {
    out += c;
    if (c == '\n') out += "# ";
  }
  return out + "\n";
}

std::string section_of(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? std::string() : key.substr(0, dot);
}

std::string leaf_of(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

}  // namespace

SchemaCore::SchemaCore(std::string env_prefix) : env_prefix_(std::move(env_prefix)) {}

void SchemaCore::add(FieldSpec spec) {
  const std::string& key = spec.key;
  if (!valid_key(key)) {
    throw std::invalid_argument("config key '" + key +
                                "': use lower-case dotted segments of [a-z0-9_] without '__'");
  }
  for (const FieldSpec& f : fields_) {
    if (f.key == key) throw std::invalid_argument("config key '" + key + "' declared twice");
    if (f.key.starts_with(key + ".") || key.starts_with(f.key + ".")) {
      throw std::invalid_argument("config key '" + key + "' conflicts with '" + f.key +
                                  "': a key cannot be both a value and a section");
    }
  }
  if (spec.kind == ConfigKind::kMilliseconds && !ends_with_any(key, {"_ms"})) {
    throw std::invalid_argument("config key '" + key + "': millisecond keys end in '_ms'");
  }
  if (spec.kind == ConfigKind::kSeconds && !ends_with_any(key, {"_s", "_sec", "_seconds"})) {
    throw std::invalid_argument("config key '" + key + "': second keys end in '_s'");
  }
  // An empty default of a non_empty key is allowed: it makes the key required.
  const bool empty_default = std::visit(
      [](const auto& x) {
        if constexpr (requires { x.empty(); }) {
          return x.empty();
        } else {
          return false;
        }
      },
      spec.default_value);
  if (!(spec.non_empty && empty_default)) {
    if (auto problem = check_constraints(spec, spec.default_value)) {
      throw std::invalid_argument("config key '" + key + "': default " + *problem);
    }
  }
  fields_.push_back(std::move(spec));
}

std::string SchemaCore::env_name(std::string_view key) const {
  std::string out = env_prefix_;
  for (const char c : key) {
    if (c == '.') {
      out += "__";
    } else {
      out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

std::vector<ConfigValue> SchemaCore::resolve(const ConfigSources& sources) const {
  std::vector<ConfigValue> values;
  std::vector<std::string> origins(fields_.size(), "default");
  values.reserve(fields_.size());
  for (const FieldSpec& f : fields_) values.push_back(f.default_value);
  Resolver r(*this, values, origins);

  if (sources.toml_text) {
    toml::table t;
    try {
      t = toml::parse(std::string_view(*sources.toml_text), std::string_view("<text>"));
    } catch (const toml::parse_error& e) {
      throw ConfigError("config file '<text>' line " + std::to_string(e.source().begin.line) +
                        ", column " + std::to_string(e.source().begin.column) + ": " +
                        std::string(e.description()));
    }
    r.apply_table(t, "", "<text>");
  } else if (sources.file) {
    r.apply_table(parse_file_checked(*sources.file), "", sources.file->string());
  } else if (sources.default_file) {
    std::error_code ec;
    if (std::filesystem::exists(*sources.default_file, ec)) {
      r.apply_table(parse_file_checked(*sources.default_file), "", sources.default_file->string());
    }
  }

  if (sources.use_env && !env_prefix_.empty()) {
    for (size_t i = 0; i < fields_.size(); ++i) {
      const std::string name = env_name(fields_[i].key);
      std::optional<std::string> raw;
      if (sources.getenv) {
        raw = sources.getenv(name);
      } else if (const char* v = std::getenv(name.c_str())) {
        raw = std::string(v);
      }
      if (raw) r.apply_text(i, *raw, "environment variable " + name);
    }
  }

  for (const std::string& o : sources.overrides) {
    const size_t eq = o.find('=');
    if (eq == std::string::npos) {
      throw ConfigError("--set " + quote(o) + ": expected key=value");
    }
    const std::string key = trim(std::string_view(o).substr(0, eq));
    const auto idx = r.find(key);
    if (!idx) {
      throw ConfigError("--set " + key + ": unknown config key '" + key + "'" + r.suggest(key));
    }
    r.apply_text(*idx, std::string_view(o).substr(eq + 1), "--set " + key);
  }

  // Only required keys (non_empty with an empty default) can still fail here.
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (auto problem = check_constraints(fields_[i], values[i])) {
      Resolver::fail(fields_[i], origins[i],
                     *problem + " (set it in the config file, " + env_name(fields_[i].key) +
                         " or --set " + fields_[i].key + "=...)");
    }
  }
  return values;
}

std::string SchemaCore::describe() const {
  std::ostringstream out;
  out << "Configuration keys. Precedence: default < config file (TOML, --config) < environment ("
      << (env_prefix_.empty() ? std::string("disabled") : env_prefix_ + "<KEY>, '.' -> '__'")
      << ") < --set key=value.\n";
  for (const FieldSpec& f : fields_) {
    out << "\n" << f.key << " = " << format_shown(f, f.default_value) << "\n";
    out << "    " << expectation(f);
    if (f.secret) out << "; secret";
    if (!env_prefix_.empty()) out << "; env " << env_name(f.key);
    out << "\n";
    if (!f.doc.empty()) {
      out << "    ";
      for (const char c : f.doc) out << (c == '\n' ? std::string("\n    ") : std::string(1, c));
      out << "\n";
    }
  }
  return out.str();
}

std::string SchemaCore::render_toml(const std::vector<ConfigValue>& values,
                                    bool mask_secrets) const {
  std::vector<std::string> sections;
  for (const FieldSpec& f : fields_) {
    const std::string s = section_of(f.key);
    if (std::find(sections.begin(), sections.end(), s) == sections.end()) sections.push_back(s);
  }
  // Top-level keys must precede every [table] header.
  std::stable_partition(sections.begin(), sections.end(),
                        [](const std::string& s) { return s.empty(); });
  std::ostringstream out;
  bool first = true;
  for (const std::string& section : sections) {
    if (!section.empty()) {
      out << (first ? "" : "\n") << "[" << section << "]\n";
    }
    first = false;
    for (size_t i = 0; i < fields_.size(); ++i) {
      const FieldSpec& f = fields_[i];
      if (section_of(f.key) != section) continue;
      if (!f.doc.empty()) out << comment(f.doc);
      out << leaf_of(f.key) << " = "
          << (f.secret && mask_secrets ? quote(kRedacted) : format_value(values.at(i))) << "\n";
    }
  }
  return out.str();
}

}  // namespace pushgw::common::detail
