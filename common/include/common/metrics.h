#pragma once
/// Prometheus metrics of one process. Components register their families in
/// the prometheus-cpp registry (prometheus-cpp core is the project's metrics
/// API, like spdlog for logs); the admin server serves scrape() on /metrics.
///
///   #include <prometheus/counter.h>
///   auto& sent = prometheus::BuildCounter().Name("pushgw_frames_sent_total")
///                    .Help("frames written to links").Register(metrics.registry()).Add({});
///   sent.Increment();
///
/// Standard metrics added by every Metrics object, refreshed at each scrape:
///   pushgw_build_info{binary,version} 1, pushgw_uptime_seconds,
///   process_open_fds, process_max_fds, process_resident_memory_bytes,
///   process_virtual_memory_bytes, process_cpu_seconds_total.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/error.h"

namespace prometheus {
class Registry;
}

namespace pushgw::common {

/// Content type of the Prometheus text exposition format 0.0.4.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

/// Figures about this process read from /proc and getrlimit.
struct ProcessStats {
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;
  uint64_t rss_bytes = 0;
  uint64_t vsize_bytes = 0;
  double cpu_seconds = 0;
};

/// Reads /proc/self; errors (no /proc) as values.
result<ProcessStats> read_process_stats();

/// Thread-safe: registration, updates and scrape() may run on any thread.
/// Lifetime: components holding metric references must not outlive this object.
class Metrics {
 public:
  /// `binary` labels pushgw_build_info; `clock` measures uptime (must outlive this).
  explicit Metrics(std::string_view binary, const Clock& clock = SystemClock::instance());
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  /// Where components register their metric families.
  prometheus::Registry& registry();
  /// Refreshes the process metrics and serializes every family in text format 0.0.4.
  std::string scrape();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pushgw::common
