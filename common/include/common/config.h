#pragma once
/// Typed configuration for every pushgw binary.
///
/// Each binary declares one plain struct and a schema that maps dotted keys
/// ("redis.url", "admin.port") to its members, with a default, a doc line and
/// optional constraints:
///
///   ConfigSchema<NodeConfig> s;
///   s.field("redis.url", &NodeConfig::redis_url, "redis://127.0.0.1:6379", "Redis endpoint")
///    .field("admin.port", &NodeConfig::admin_port, 9100, "admin HTTP port", range(1, 65535))
///    .field("redis.timeout_ms", &NodeConfig::redis_timeout, std::chrono::milliseconds{500},
///           "per-command timeout");
///   NodeConfig cfg = s.load(sources);   // throws ConfigError, startup only
///
/// Values are layered: defaults -> TOML file -> environment (PUSHGW_ + key
/// upper-cased with '.' -> "__", e.g. PUSHGW_REDIS__URL) -> `--set key=value`
/// overrides, in that order. Every error (unknown key, wrong type, out of
/// range, missing file) is a ConfigError whose message names the key, the
/// offending value and what was expected.
///
/// Supported member types: bool, any integer type, double/float, std::string,
/// std::vector<std::string>, std::chrono::milliseconds (key must end in
/// "_ms"), std::chrono::seconds (key must end in "_s"), and enums (names given
/// with enum_names()). A member is reached through a pointer to member or a
/// generic accessor `[](auto& c) -> auto& { return c.log.level; }`, so nested
/// plain structs can be used too.
///
/// Thread-safety: a schema is built once at startup; const methods may then be
/// called from any thread.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace pushgw::common {

/// A configuration error. Thrown only while a binary starts (fail fast); the
/// message is meant for the operator and names the key and the source.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The value of one key in its schema representation: integers and durations
/// as int64_t (durations in the unit of the key), enums as their name.
using ConfigValue = std::variant<bool, int64_t, double, std::string, std::vector<std::string>>;

/// What a key holds; decides how file, env and --set text is interpreted.
enum class ConfigKind {
  kBool,
  kInteger,
  kDouble,
  kString,
  kStringList,
  kMilliseconds,
  kSeconds,
  kEnum
};

/// Where the inputs of a load come from. All members are optional.
struct ConfigSources {
  /// A file named by the operator (--config): it must exist and parse.
  std::optional<std::filesystem::path> file;
  /// A conventional location, read only if it exists; ignored when `file` is set.
  std::optional<std::filesystem::path> default_file;
  /// TOML text used instead of a file (tests, embedded configs); named "<text>".
  std::optional<std::string> toml_text;
  /// Environment lookup. Empty: the process environment (::getenv). Tests
  /// inject a map here. Only variables named after a declared key are read.
  std::function<std::optional<std::string>(const std::string& name)> getenv;
  /// Whether to read the environment at all.
  bool use_env = true;
  /// "key=value" overrides (--set), applied last, in order.
  std::vector<std::string> overrides;
};

/// Field options, passed after the doc string of ConfigSchema::field().
struct IntRange {
  int64_t min;
  int64_t max;
};
struct RealRange {
  double min;
  double max;
};
struct SecretFlag {};
struct NonEmptyFlag {};
struct OneOf {
  std::vector<std::string> values;
};
template <class E>
struct EnumNames {
  std::vector<std::pair<std::string, E>> names;
};

/// Inclusive range for integers and durations (in the key's unit).
template <std::integral A, std::integral B>
IntRange range(A lo, B hi) {
  return IntRange{static_cast<int64_t>(lo), static_cast<int64_t>(hi)};
}
/// Inclusive range for floating-point keys.
inline RealRange range(double lo, double hi) { return RealRange{lo, hi}; }
/// The value is masked in to_toml(mask_secrets = true), describe() and error messages.
inline SecretFlag secret() { return {}; }
/// A string or list that must not be empty.
inline NonEmptyFlag non_empty() { return {}; }
/// A string restricted to a fixed set of values.
inline OneOf one_of(std::vector<std::string> values) { return OneOf{std::move(values)}; }
/// The names of an enum member's values; required for enum members.
template <class E>
EnumNames<E> enum_names(std::vector<std::pair<std::string, E>> names) {
  return EnumNames<E>{std::move(names)};
}

namespace detail {

struct FieldSpec {
  std::string key;
  std::string doc;
  ConfigKind kind = ConfigKind::kString;
  ConfigValue default_value;
  bool secret = false;
  bool non_empty = false;
  std::optional<int64_t> min_int;
  std::optional<int64_t> max_int;
  std::optional<double> min_real;
  std::optional<double> max_real;
  /// Allowed strings of a kEnum key or a one_of() string key.
  std::vector<std::string> choices;
};

inline void apply_option(FieldSpec& f, const IntRange& r) {
  f.min_int = r.min;
  f.max_int = r.max;
  f.min_real = static_cast<double>(r.min);
  f.max_real = static_cast<double>(r.max);
}
inline void apply_option(FieldSpec& f, const RealRange& r) {
  f.min_real = r.min;
  f.max_real = r.max;
}
inline void apply_option(FieldSpec& f, SecretFlag) { f.secret = true; }
inline void apply_option(FieldSpec& f, NonEmptyFlag) { f.non_empty = true; }
inline void apply_option(FieldSpec& f, const OneOf& o) { f.choices = o.values; }

/// The type-independent part of a schema: declarations, layering, parsing,
/// validation and rendering. Implemented in config.cc (the only place toml++ is seen).
class SchemaCore {
 public:
  explicit SchemaCore(std::string env_prefix);

  /// Adds a key. Throws std::invalid_argument for a bad declaration (duplicate
  /// or malformed key, key that is both a value and a section, duration key
  /// without its unit suffix, default outside its own constraints).
  void add(FieldSpec spec);
  const std::vector<FieldSpec>& fields() const { return fields_; }
  const std::string& env_prefix() const { return env_prefix_; }

  /// The environment variable read for `key`: PUSHGW_REDIS__URL for "redis.url".
  std::string env_name(std::string_view key) const;
  /// Effective values of every field, in declaration order. Throws ConfigError.
  std::vector<ConfigValue> resolve(const ConfigSources& sources) const;
  /// Human-readable list of keys: default, type and constraints, env name, doc.
  std::string describe() const;
  /// TOML document of `values` (one per field), grouped in [sections] with docs as comments.
  std::string render_toml(const std::vector<ConfigValue>& values, bool mask_secrets) const;

 private:
  std::string env_prefix_;
  std::vector<FieldSpec> fields_;
};

template <class>
inline constexpr bool kAlwaysFalse = false;

template <class D>
struct IsDuration : std::false_type {};
template <class R, class P>
struct IsDuration<std::chrono::duration<R, P>> : std::true_type {};

}  // namespace detail

/// The schema of one binary's config struct T (T must be default-constructible;
/// members not declared keep T's own initializers).
template <class T>
class ConfigSchema {
 public:
  /// `env_prefix` starts the environment variable names; empty disables env.
  explicit ConfigSchema(std::string env_prefix = "PUSHGW_") : core_(std::move(env_prefix)) {}

  /// Declares `key` (lower-case dotted segments of [a-z0-9_]) bound to the member
  /// reached through `proj`. Throws std::invalid_argument for a bad declaration.
  template <class Proj, class... Opts>
  ConfigSchema& field(std::string key, Proj proj,
                      std::remove_cvref_t<std::invoke_result_t<Proj&, T&>> default_value,
                      std::string doc, Opts&&... opts);

  /// Loads defaults -> file -> env -> overrides. Throws ConfigError.
  T load(const ConfigSources& sources) const {
    std::vector<ConfigValue> values = core_.resolve(sources);
    T out{};
    for (size_t i = 0; i < values.size(); ++i) setters_[i](out, values[i]);
    return out;
  }
  /// A T holding only the declared defaults (no file, env or overrides).
  T defaults() const {
    ConfigSources none;
    none.use_env = false;
    return load(none);
  }
  /// Every key with default, constraints, env name and doc (for --help-config).
  std::string describe() const { return core_.describe(); }
  /// The effective config as a TOML document that load() accepts back
  /// (when nothing is masked). Secrets print as "<redacted>" when masked.
  std::string to_toml(const T& cfg, bool mask_secrets = true) const {
    std::vector<ConfigValue> values;
    values.reserve(getters_.size());
    for (const auto& get : getters_) values.push_back(get(cfg));
    return core_.render_toml(values, mask_secrets);
  }
  const detail::SchemaCore& core() const { return core_; }

 private:
  detail::SchemaCore core_;
  std::vector<std::function<void(T&, const ConfigValue&)>> setters_;
  std::vector<std::function<ConfigValue(const T&)>> getters_;
};

template <class T>
template <class Proj, class... Opts>
ConfigSchema<T>& ConfigSchema<T>::field(std::string key, Proj proj,
                                        std::remove_cvref_t<std::invoke_result_t<Proj&, T&>> def,
                                        std::string doc, Opts&&... opts) {
  using M = std::remove_cvref_t<std::invoke_result_t<Proj&, T&>>;
  detail::FieldSpec spec;
  spec.key = std::move(key);
  spec.doc = std::move(doc);
  std::vector<std::pair<std::string, M>> enum_map;
  [[maybe_unused]] auto take = [&](auto&& opt) {
    using O = std::remove_cvref_t<decltype(opt)>;
    if constexpr (std::is_same_v<O, EnumNames<M>>) {
      enum_map = opt.names;
    } else {
      detail::apply_option(spec, opt);
    }
  };
  (take(std::forward<Opts>(opts)), ...);

  std::function<void(T&, const ConfigValue&)> set;
  std::function<ConfigValue(const T&)> get;
  if constexpr (std::is_same_v<M, bool>) {
    spec.kind = ConfigKind::kBool;
    spec.default_value = def;
    set = [proj](T& t, const ConfigValue& v) { std::invoke(proj, t) = std::get<bool>(v); };
    get = [proj](const T& t) { return ConfigValue{static_cast<bool>(std::invoke(proj, t))}; };
  } else if constexpr (std::is_integral_v<M>) {
    spec.kind = ConfigKind::kInteger;
    constexpr int64_t kTypeMin =
        std::is_signed_v<M> ? static_cast<int64_t>(std::numeric_limits<M>::min()) : 0;
    constexpr int64_t kTypeMax = static_cast<uint64_t>(std::numeric_limits<M>::max()) >
                                         static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                                     ? std::numeric_limits<int64_t>::max()
                                     : static_cast<int64_t>(std::numeric_limits<M>::max());
    spec.min_int = spec.min_int ? std::max(*spec.min_int, kTypeMin) : kTypeMin;
    spec.max_int = spec.max_int ? std::min(*spec.max_int, kTypeMax) : kTypeMax;
    if constexpr (!std::is_signed_v<M>) {
      if (static_cast<uint64_t>(def) > static_cast<uint64_t>(kTypeMax)) {
        throw std::invalid_argument("config key '" + spec.key + "': default exceeds int64 range");
      }
    }
    spec.default_value = static_cast<int64_t>(def);
    set = [proj](T& t, const ConfigValue& v) {
      std::invoke(proj, t) = static_cast<M>(std::get<int64_t>(v));
    };
    get = [proj](const T& t) { return ConfigValue{static_cast<int64_t>(std::invoke(proj, t))}; };
  } else if constexpr (std::is_floating_point_v<M>) {
    spec.kind = ConfigKind::kDouble;
    spec.min_int.reset();
    spec.max_int.reset();
    spec.default_value = static_cast<double>(def);
    set = [proj](T& t, const ConfigValue& v) {
      std::invoke(proj, t) = static_cast<M>(std::get<double>(v));
    };
    get = [proj](const T& t) { return ConfigValue{static_cast<double>(std::invoke(proj, t))}; };
  } else if constexpr (std::is_same_v<M, std::string>) {
    spec.kind = ConfigKind::kString;
    spec.default_value = def;
    set = [proj](T& t, const ConfigValue& v) { std::invoke(proj, t) = std::get<std::string>(v); };
    get = [proj](const T& t) { return ConfigValue{std::invoke(proj, t)}; };
  } else if constexpr (std::is_same_v<M, std::vector<std::string>>) {
    spec.kind = ConfigKind::kStringList;
    spec.default_value = def;
    set = [proj](T& t, const ConfigValue& v) {
      std::invoke(proj, t) = std::get<std::vector<std::string>>(v);
    };
    get = [proj](const T& t) { return ConfigValue{std::invoke(proj, t)}; };
  } else if constexpr (detail::IsDuration<M>::value) {
    static_assert(
        std::is_same_v<M, std::chrono::milliseconds> || std::is_same_v<M, std::chrono::seconds>,
        "duration keys are std::chrono::milliseconds or std::chrono::seconds");
    spec.kind = std::is_same_v<M, std::chrono::milliseconds> ? ConfigKind::kMilliseconds
                                                             : ConfigKind::kSeconds;
    spec.default_value = static_cast<int64_t>(def.count());
    set = [proj](T& t, const ConfigValue& v) { std::invoke(proj, t) = M{std::get<int64_t>(v)}; };
    get = [proj](const T& t) {
      return ConfigValue{static_cast<int64_t>(std::invoke(proj, t).count())};
    };
  } else if constexpr (std::is_enum_v<M>) {
    spec.kind = ConfigKind::kEnum;
    if (enum_map.empty()) {
      throw std::invalid_argument("config key '" + spec.key + "': enum member needs enum_names()");
    }
    spec.choices.clear();
    std::string def_name;
    for (const auto& [name, value] : enum_map) {
      spec.choices.push_back(name);
      if (value == def && def_name.empty()) def_name = name;
    }
    if (def_name.empty()) {
      throw std::invalid_argument("config key '" + spec.key + "': default has no enum name");
    }
    spec.default_value = def_name;
    set = [proj, enum_map](T& t, const ConfigValue& v) {
      const auto& name = std::get<std::string>(v);
      for (const auto& [n, value] : enum_map) {
        if (n == name) std::invoke(proj, t) = value;
      }
    };
    get = [proj, enum_map](const T& t) {
      const M value = std::invoke(proj, t);
      for (const auto& [n, v] : enum_map) {
        if (v == value) return ConfigValue{n};
      }
      return ConfigValue{std::to_string(static_cast<int64_t>(value))};
    };
  } else {
    static_assert(detail::kAlwaysFalse<M>, "unsupported config member type");
  }
  core_.add(std::move(spec));
  setters_.push_back(std::move(set));
  getters_.push_back(std::move(get));
  return *this;
}

}  // namespace pushgw::common
