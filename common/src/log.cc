#include "common/log.h"

#include <fmt/format.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <map>
#include <mutex>

namespace pushgw::common {
namespace {

using Level = spdlog::level::level_enum;

constexpr std::pair<std::string_view, Level> kLevels[] = {
    {"trace", Level::trace}, {"debug", Level::debug}, {"info", Level::info},
    {"warn", Level::warn},   {"error", Level::err},   {"critical", Level::critical},
    {"off", Level::off},     {"warning", Level::warn}};

std::optional<Level> parse_level(std::string_view name) {
  for (const auto& [n, l] : kLevels) {
    if (n == name) return l;
  }
  return std::nullopt;
}

std::string_view level_name(Level l) {
  for (const auto& [n, lv] : kLevels) {
    if (lv == l) return n;
  }
  return "unknown";
}

void put(spdlog::memory_buf_t& dest, std::string_view s) {
  dest.append(s.data(), s.data() + s.size());
}

/// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  uint32_t min = 0;
  uint32_t cp = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2, min = 0x80, cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, min = 0x800, cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, min = 0x10000, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

/// Appends `s` with control characters escaped (so an event stays on one line)
/// and invalid UTF-8 replaced by U+FFFD; in JSON mode also quotes and backslashes.
void append_escaped(spdlog::memory_buf_t& dest, std::string_view s, bool json) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '\n':
          put(dest, "\\n");
          break;
        case '\r':
          put(dest, "\\r");
          break;
        case '\t':
          put(dest, "\\t");
          break;
        case '"':
          put(dest, json ? "\\\"" : "\"");
          break;
        case '\\':
          put(dest, json ? "\\\\" : "\\");
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            fmt::format_to(std::back_inserter(dest), "\\u{:04x}", c);
          } else {
            dest.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    if (const size_t len = utf8_sequence(s, i)) {
      put(dest, s.substr(i, len));
      i += len;
    } else {
      put(dest, json ? "\\ufffd" : "\xef\xbf\xbd");
      ++i;
    }
  }
}

void append_timestamp(spdlog::memory_buf_t& dest, std::chrono::system_clock::time_point tp) {
  using namespace std::chrono;
  const auto secs = time_point_cast<seconds>(tp);
  auto ms = duration_cast<milliseconds>(tp - secs).count();
  time_t t = system_clock::to_time_t(secs);
  if (ms < 0) {
    ms += 1000;
    --t;
  }
  tm utc{};
  gmtime_r(&t, &utc);
  fmt::format_to(std::back_inserter(dest), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                 utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                 utc.tm_sec, ms);
}

class EventFormatter final : public spdlog::formatter {
 public:
  explicit EventFormatter(LogFormat format) : format_(format) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string_view logger(msg.logger_name.data(), msg.logger_name.size());
    const std::string_view text(msg.payload.data(), msg.payload.size());
    if (format_ == LogFormat::kJson) {
      put(dest, "{\"ts\":\"");
      append_timestamp(dest, msg.time);
      put(dest, "\",\"level\":\"");
      put(dest, level_name(msg.level));
      put(dest, "\",\"logger\":\"");
      append_escaped(dest, logger, true);
      fmt::format_to(std::back_inserter(dest), "\",\"thread\":{},\"msg\":\"", msg.thread_id);
      append_escaped(dest, text, true);
      put(dest, "\"}\n");
    } else {
      append_timestamp(dest, msg.time);
      dest.push_back(' ');
      put(dest, level_name(msg.level));
      dest.push_back(' ');
      append_escaped(dest, logger, false);
      fmt::format_to(std::back_inserter(dest), " [{}] ", msg.thread_id);
      append_escaped(dest, text, false);
      dest.push_back('\n');
    }
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<EventFormatter>(format_);
  }

 private:
  LogFormat format_;
};

class CaptureSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CaptureSink(LogFormat format)
      : spdlog::sinks::base_sink<std::mutex>(std::make_unique<EventFormatter>(format)) {}

  std::vector<std::string> snapshot() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    std::string line(buf.data(), buf.size());
    if (!line.empty() && line.back() == '\n') line.pop_back();
    lines_.push_back(std::move(line));
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines_;
};

struct State {
  std::mutex mu;
  std::shared_ptr<spdlog::sinks::dist_sink_mt> dist =
      std::make_shared<spdlog::sinks::dist_sink_mt>();
  std::shared_ptr<spdlog::sinks::sink> output;
  LogFormat format = LogFormat::kText;
  Level level = Level::info;
  std::map<std::string, Level, std::less<>> component_levels;
  std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;

  State() {
    output = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    output->set_formatter(std::make_unique<EventFormatter>(format));
    dist->add_sink(output);
  }

  Level level_of(std::string_view component) const {
    auto it = component_levels.find(component);
    return it == component_levels.end() ? level : it->second;
  }
};

/// Never destroyed, so loggers stay usable while other statics are torn down.
State& state() {
  static State* s = new State();
  return *s;
}

}  // namespace

void setup_logging(const LogConfig& cfg) {
  const auto level = parse_level(cfg.level);
  if (!level) {
    throw ConfigError("log.level: unknown level '" + cfg.level +
                      "'; expected trace, debug, info, warn, error, critical or off");
  }
  std::map<std::string, Level, std::less<>> components;
  for (const std::string& entry : cfg.components) {
    const size_t eq = entry.find('=');
    const auto l = eq == std::string::npos ? std::nullopt : parse_level(entry.substr(eq + 1));
    if (eq == 0 || !l) {
      throw ConfigError("log.components: bad entry '" + entry +
                        "'; expected component=level, e.g. redis=debug");
    }
    components[entry.substr(0, eq)] = *l;
  }
  std::shared_ptr<spdlog::sinks::sink> output;
  if (cfg.file.empty()) {
    output = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  } else {
    try {
      output = std::make_shared<spdlog::sinks::basic_file_sink_mt>(cfg.file, /*truncate=*/false);
    } catch (const spdlog::spdlog_ex& e) {
      throw ConfigError("log.file: cannot open '" + cfg.file + "': " + e.what());
    }
  }
  output->set_formatter(std::make_unique<EventFormatter>(cfg.format));

  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.dist->remove_sink(s.output);
    s.dist->add_sink(output);
    s.output = std::move(output);
    s.format = cfg.format;
    s.level = *level;
    s.component_levels = std::move(components);
    for (auto& [name, lg] : s.loggers) lg->set_level(s.level_of(name));
  }
  spdlog::set_default_logger(logger("pushgw"));
}

std::shared_ptr<spdlog::logger> logger(std::string_view component) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (auto it = s.loggers.find(component); it != s.loggers.end()) return it->second;
  auto lg = std::make_shared<spdlog::logger>(std::string(component), s.dist);
  lg->set_level(s.level_of(component));
  lg->flush_on(Level::warn);
  s.loggers.emplace(std::string(component), lg);
  return lg;
}

void flush_logs() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  for (auto& [name, lg] : s.loggers) lg->flush();
}

struct LogCapture::Impl {
  std::shared_ptr<CaptureSink> sink;
};

LogCapture::LogCapture(std::optional<LogFormat> format) : impl_(std::make_shared<Impl>()) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  impl_->sink = std::make_shared<CaptureSink>(format.value_or(s.format));
  s.dist->add_sink(impl_->sink);
}

LogCapture::~LogCapture() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.dist->remove_sink(impl_->sink);
}

std::vector<std::string> LogCapture::lines() const { return impl_->sink->snapshot(); }

bool LogCapture::contains(std::string_view needle) const {
  const auto lines = impl_->sink->snapshot();
  return std::any_of(lines.begin(), lines.end(), [needle](const std::string& l) {
    return l.find(needle) != std::string::npos;
  });
}

}  // namespace pushgw::common
