#pragma once
/// Logging for every pushgw binary: spdlog loggers, one per component, that
/// share the sinks configured by setup_logging() from the binary's config.
///
/// spdlog (with fmt formatting) is the project's logging API, so the logger
/// type appears here on purpose:
///
///   auto log = pushgw::common::logger("redis");
///   log->warn("reconnecting to {} in {} ms", addr, backoff_ms);
///
/// Formats, one line per event (control characters in the message escaped):
///   text: 2024-05-01T12:00:00.123Z info redis [4711] reconnecting to ...
///   json: {"ts":"2024-05-01T12:00:00.123Z","level":"info","logger":"redis",
///          "thread":4711,"msg":"reconnecting to ..."}
#include <spdlog/logger.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"

namespace pushgw::common {

enum class LogFormat { kText, kJson };

struct LogConfig {
  /// trace, debug, info, warn, error, critical or off.
  std::string level = "info";
  LogFormat format = LogFormat::kText;
  /// Append to this file; empty: standard error.
  std::string file;
  /// Per-component levels, "component=level" (e.g. "redis=debug").
  std::vector<std::string> components;
};

/// (Re)configures the shared sinks and every pushgw logger, existing and future.
/// Startup only; throws ConfigError for an unknown level or an unwritable file.
void setup_logging(const LogConfig& cfg);

/// The logger of `component` ("conn", "redis", "bus", "admin", ...), created on
/// first use at the configured level. Thread-safe; the logger lives until exit.
std::shared_ptr<spdlog::logger> logger(std::string_view component);

/// Flushes every pushgw logger (before exit).
void flush_logs();

/// Declares log.level, log.format, log.file and log.components in a schema;
/// `proj` reaches the LogConfig inside T (`[](auto& c) -> auto& { return c.log; }`).
template <class T, class Proj>
void add_log_fields(ConfigSchema<T>& schema, Proj proj) {
  const LogConfig d;
  schema
      .field(
          "log.level", [proj](auto& c) -> auto& { return std::invoke(proj, c).level; }, d.level,
          "minimum level: trace, debug, info, warn, error, critical, off",
          one_of({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      .field(
          "log.format", [proj](auto& c) -> auto& { return std::invoke(proj, c).format; }, d.format,
          "text or json, one line per event",
          enum_names<LogFormat>({{"text", LogFormat::kText}, {"json", LogFormat::kJson}}))
      .field(
          "log.file", [proj](auto& c) -> auto& { return std::invoke(proj, c).file; }, d.file,
          "append logs to this file; empty: standard error")
      .field(
          "log.components", [proj](auto& c) -> auto& { return std::invoke(proj, c).components; },
          d.components, "per-component levels, e.g. [\"redis=debug\"]");
}

/// Test helper: while alive, every event of every pushgw logger is also kept
/// in memory, formatted as `format` (default: the configured format), one
/// string per event without the trailing newline. Thread-safe. Captures are
/// independent: several may be alive at once.
class LogCapture {
 public:
  explicit LogCapture(std::optional<LogFormat> format = std::nullopt);
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> lines() const;
  /// True when some captured line contains `needle`.
  bool contains(std::string_view needle) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace pushgw::common
