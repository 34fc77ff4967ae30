#include "router_metrics.h"

#include <string>

namespace pushgw::offline_router {

RouterMetrics::RouterMetrics(prometheus::Registry& r) {
  auto& outcome_f = prometheus::BuildCounter()
                        .Name("pushgw_offline_store_outcomes_total")
                        .Help("records of pushgw.offline by store outcome")
                        .Register(r);
  for (int i = 0; i < kOutcomes; ++i) {
    outcomes[static_cast<std::size_t>(i)] = &outcome_f.Add(
        {{"outcome",
          std::string(msg_store::outcome_name(static_cast<msg_store::StoreOutcome>(i)))}});
  }
  auto counter = [&r](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
  };
  stored = counter("pushgw_offline_stored_total", "messages newly stored");
  collapsed = counter("pushgw_offline_collapsed_total",
                      "stored messages removed because a newer one with their collapse key came");
  overflowed = counter("pushgw_offline_overflowed_total",
                       "stored messages dropped by the per-device caps");
  markers = counter("pushgw_offline_resync_markers_total", "resync markers written or moved");
  auto& expired_f = prometheus::BuildCounter()
                        .Name("pushgw_offline_expired_total")
                        .Help("messages expired: on arrival, while trimming a queue, or removed "
                              "by the TTL compaction filter")
                        .Register(r);
  expired_store = &expired_f.Add({{"where", "arrival"}});
  expired_trim = &expired_f.Add({{"where", "trim"}});
  expired_compaction = &expired_f.Add({{"where", "compaction"}});
  acked = counter("pushgw_offline_acked_total", "stored messages deleted by acks");
  ack_events = counter("pushgw_offline_ack_events_total", "AckEvents applied");
  auto& replays_f = prometheus::BuildCounter()
                        .Name("pushgw_offline_replays_total")
                        .Help("replays on connect: ok (replay_complete produced), failed (given up "
                              "after produce attempts), skipped (a later presence of the device "
                              "in the same batch superseded it)")
                        .Register(r);
  replays_ok = &replays_f.Add({{"result", "ok"}});
  replays_failed = &replays_f.Add({{"result", "failed"}});
  replays_skipped = &replays_f.Add({{"result", "skipped"}});
  auto& waits_f = prometheus::BuildCounter()
                      .Name("pushgw_offline_replay_waits_total")
                      .Help("replays that waited for the store to catch up with pushgw.offline "
                            "(deferred), and how the waits ended: caught_up, or timeout "
                            "(replay.catch_up_wait_ms passed; replayed what was stored)")
                      .Register(r);
  replay_waits_deferred = &waits_f.Add({{"event", "deferred"}});
  replay_waits_caught_up = &waits_f.Add({{"event", "caught_up"}});
  replay_waits_timeout = &waits_f.Add({{"event", "timeout"}});
  replayed = counter("pushgw_offline_replayed_total", "stored messages sent by replays");
  forwarded = counter("pushgw_offline_forwarded_total",
                      "messages stored after their device's replay, sent to its node at once");
  store_failures = counter("pushgw_offline_store_failures_total",
                           "store writes that failed (batch retried, offsets not committed)");
  skipped_applied = counter("pushgw_offline_redelivered_skipped_total",
                            "redelivered records already applied to the store (checkpoint)");
  state_gaps = counter("pushgw_offline_state_gaps_total",
                       "partitions whose first record is past the store's checkpoint (records "
                       "were applied to another copy of the store)");
  auto& rejected_f = prometheus::BuildCounter()
                         .Name("pushgw_bus_records_rejected_total")
                         .Help("bus records skipped: undecodable, schema_version too new, or of a "
                               "partition whose offline topic partition is not owned")
                         .Register(r);
  rejected[static_cast<int>(Rejected::kBadMessage)] =
      &rejected_f.Add({{"component", "offline-router"}, {"reason", "bad_message"}});
  rejected[static_cast<int>(Rejected::kSchemaVersion)] =
      &rejected_f.Add({{"component", "offline-router"}, {"reason", "schema_version"}});
  rejected[static_cast<int>(Rejected::kUnowned)] =
      &rejected_f.Add({{"component", "offline-router"}, {"reason", "unowned"}});
  partitions = &prometheus::BuildGauge()
                    .Name("pushgw_offline_partitions")
                    .Help("partitions (stores) owned by this router")
                    .Register(r)
                    .Add({});
  ready = &prometheus::BuildGauge()
               .Name("pushgw_offline_ready")
               .Help("1 when consuming and store writes succeed")
               .Register(r)
               .Add({});
  store_bytes = &prometheus::BuildGauge()
                     .Name("pushgw_offline_store_bytes")
                     .Help("size of a partition's store (table files + memtables)")
                     .Register(r);
  store_keys = &prometheus::BuildGauge()
                    .Name("pushgw_offline_store_keys")
                    .Help("estimated keys in a partition's store")
                    .Register(r);
  batch_seconds = &prometheus::BuildHistogram()
                       .Name("pushgw_offline_batch_seconds")
                       .Help("time to process one consumed batch (store, replays, produce)")
                       .Register(r)
                       .Add({}, prometheus::Histogram::BucketBoundaries{
                                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                    2.5, 5});
}

}  // namespace pushgw::offline_router
