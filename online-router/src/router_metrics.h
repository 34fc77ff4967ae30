#pragma once
// The Prometheus metrics of one online router (names in online-router/README.md).
// Resolved once at startup into plain pointers: the hot path only does atomic
// adds. Thread-safe.
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>

#include "online_router/config.h"
#include "online_router/routing.h"

namespace pushgw::online_router {

struct RouterMetrics {
  RouterMetrics(prometheus::Registry& r, TrafficClass c);

  prometheus::Counter* consumed = nullptr;
  prometheus::Counter* online = nullptr;
  prometheus::Counter* stored = nullptr;
  prometheus::Counter* expired = nullptr;
  prometheus::Counter* fanned_out = nullptr;
  prometheus::Counter* unknown_node = nullptr;
  std::array<prometheus::Counter*, kBadReasons> rejected{};
  prometheus::Counter* produce_retries = nullptr;
  prometheus::Counter* store_retries = nullptr;
  prometheus::Counter* counter_failures = nullptr;
  prometheus::Histogram* batch_size = nullptr;
  prometheus::Histogram* lookup_seconds = nullptr;
  prometheus::Histogram* produce_seconds = nullptr;
  prometheus::Gauge* in_flight = nullptr;
  prometheus::Gauge* lag_seconds = nullptr;
  prometheus::Gauge* ready = nullptr;
};

}  // namespace pushgw::online_router
