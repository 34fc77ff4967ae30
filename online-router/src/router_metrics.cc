#include "router_metrics.h"

#include <string>

namespace pushgw::online_router {

RouterMetrics::RouterMetrics(prometheus::Registry& r, TrafficClass c) {
  const std::string cls(class_name(c));
  consumed = &prometheus::BuildCounter()
                  .Name("pushgw_router_consumed_total")
                  .Help("push requests consumed by the online router")
                  .Register(r)
                  .Add({{"class", cls}});
  auto& routed_f = prometheus::BuildCounter()
                       .Name("pushgw_router_routed_total")
                       .Help(
                           "routing outcomes: online (record to the node), stored (record to "
                           "pushgw.offline), expired (dropped), fanned_out (topic/broadcast "
                           "record per node), unknown_node (registered on a dead node)")
                       .Register(r);
  online = &routed_f.Add({{"class", cls}, {"outcome", "online"}});
  stored = &routed_f.Add({{"class", cls}, {"outcome", "stored"}});
  expired = &routed_f.Add({{"class", cls}, {"outcome", "expired"}});
  fanned_out = &routed_f.Add({{"class", cls}, {"outcome", "fanned_out"}});
  unknown_node = &routed_f.Add({{"class", cls}, {"outcome", "unknown_node"}});
  auto& rejected_f = prometheus::BuildCounter()
                         .Name("pushgw_bus_records_rejected_total")
                         .Help("bus records skipped: undecodable, schema_version too new, invalid")
                         .Register(r);
  for (int i = 0; i < kBadReasons; ++i) {
    rejected[static_cast<std::size_t>(i)] =
        &rejected_f.Add({{"component", "online-router"},
                         {"reason", std::string(bad_reason_name(static_cast<BadReason>(i)))}});
  }
  auto& retries_f = prometheus::BuildCounter()
                        .Name("pushgw_router_retries_total")
                        .Help("retries after a failed produce or status store call")
                        .Register(r);
  produce_retries = &retries_f.Add({{"class", cls}, {"kind", "produce"}});
  store_retries = &retries_f.Add({{"class", cls}, {"kind", "store"}});
  counter_failures = &prometheus::BuildCounter()
                          .Name("pushgw_router_counter_failures_total")
                          .Help("message counter updates that failed (counters are best effort)")
                          .Register(r)
                          .Add({{"class", cls}});
  batch_size = &prometheus::BuildHistogram()
                    .Name("pushgw_router_batch_size")
                    .Help("input records per routed batch")
                    .Register(r)
                    .Add({{"class", cls}}, prometheus::Histogram::BucketBoundaries{
                                               1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000});
  const prometheus::Histogram::BucketBoundaries secs{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                     0.05,   0.1,   0.25,   0.5,   1,    5};
  lookup_seconds = &prometheus::BuildHistogram()
                        .Name("pushgw_router_lookup_seconds")
                        .Help("status store time per batch (lookups, seqs, topic nodes)")
                        .Register(r)
                        .Add({{"class", cls}}, secs);
  produce_seconds = &prometheus::BuildHistogram()
                         .Name("pushgw_router_produce_seconds")
                         .Help("per batch: first produce to the last delivery report")
                         .Register(r)
                         .Add({{"class", cls}}, secs);
  in_flight = &prometheus::BuildGauge()
                   .Name("pushgw_router_in_flight_batches")
                   .Help("batches awaiting delivery reports")
                   .Register(r)
                   .Add({{"class", cls}});
  lag_seconds = &prometheus::BuildGauge()
                     .Name("pushgw_router_lag_seconds")
                     .Help("age of the newest record of the last batch when it was consumed")
                     .Register(r)
                     .Add({{"class", cls}});
  ready = &prometheus::BuildGauge()
               .Name("pushgw_router_ready")
               .Help("1 while the router is ready (store reachable, subscribed, no fatal error)")
               .Register(r)
               .Add({{"class", cls}});
}

}  // namespace pushgw::online_router
