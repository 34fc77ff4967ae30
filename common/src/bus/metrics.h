#pragma once
// Internal to pushgw_bus: the Prometheus series of producers and consumers.
// Every pointer is null when no registry was given; the helpers then do nothing.
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <string>

#include "common/bus/types.h"

namespace pushgw::bus::detail {

inline void inc(prometheus::Counter* c, double v = 1) {
  if (c != nullptr) {
    c->Increment(v);
  }
}

inline void set(prometheus::Gauge* g, double v) {
  if (g != nullptr) {
    g->Set(v);
  }
}

struct ProducerMetrics {
  prometheus::Counter* produced = nullptr;
  prometheus::Counter* delivery_failures = nullptr;
  prometheus::Gauge* in_flight = nullptr;

  static ProducerMetrics make(prometheus::Registry* registry, const std::string& client_id);
};

/// Consumer series. The lag gauges are touched only by the poll thread.
class ConsumerMetrics {
 public:
  prometheus::Counter* consumed = nullptr;
  prometheus::Counter* commits = nullptr;
  prometheus::Counter* commit_failures = nullptr;
  prometheus::Counter* rebalances = nullptr;

  static ConsumerMetrics make(prometheus::Registry* registry, const std::string& client_id,
                              const std::string& group_id);
  void set_lag(const TopicPartition& tp, int64_t lag);
  void forget_lag(const TopicPartition& tp);

 private:
  prometheus::Family<prometheus::Gauge>* lag_family_ = nullptr;
  std::string client_id_;
  std::string group_id_;
  std::map<TopicPartition, prometheus::Gauge*> lag_;
};

}  // namespace pushgw::bus::detail
