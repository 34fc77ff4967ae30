#pragma once
// Client metrics shared by a client and its node connections. Prometheus
// series are optional (no registry -> only the in-process counters).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "common/redis/client.h"

namespace prometheus {
class Counter;
class Histogram;
class Registry;
}  // namespace prometheus

namespace pushgw::redis::detail {

class Metrics {
 public:
  Metrics(prometheus::Registry* registry, const std::string& client);

  void commands(std::uint64_t n);
  void request();
  void transport_error(std::uint64_t n);
  void timeout(std::uint64_t n);
  void error_reply();
  void reconnect();
  void moved();
  void ask();
  void noscript();
  void slot_refresh();
  void latency(std::chrono::steady_clock::duration d);

  ClientStats stats() const;

 private:
  std::atomic<std::uint64_t> commands_{0};
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> moved_{0};
  std::atomic<std::uint64_t> ask_{0};
  std::atomic<std::uint64_t> noscript_{0};
  std::atomic<std::uint64_t> slot_refreshes_{0};
  std::atomic<std::uint64_t> reconnects_{0};

  prometheus::Counter* p_commands_ = nullptr;
  prometheus::Counter* p_transport_errors_ = nullptr;
  prometheus::Counter* p_timeouts_ = nullptr;
  prometheus::Counter* p_error_replies_ = nullptr;
  prometheus::Counter* p_reconnects_ = nullptr;
  prometheus::Counter* p_moved_ = nullptr;
  prometheus::Counter* p_ask_ = nullptr;
  prometheus::Histogram* p_latency_ = nullptr;
};

}  // namespace pushgw::redis::detail
