#pragma once
// The Prometheus metrics of the offline router (names in offline-router/README.md).
// Resolved once at startup into plain pointers. Thread-safe.
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <cstdint>
#include <map>

#include "msg_store/message_store.h"

namespace pushgw::offline_router {

inline constexpr int kOutcomes = static_cast<int>(msg_store::StoreOutcome::kInvalid) + 1;

enum class Rejected : uint8_t { kBadMessage, kSchemaVersion, kUnowned, kCount };

struct RouterMetrics {
  explicit RouterMetrics(prometheus::Registry& r);

  /// Store outcomes per record (stored, duplicate, collapsed, ...).
  std::array<prometheus::Counter*, kOutcomes> outcomes{};
  prometheus::Counter* stored = nullptr;       // newly stored (stored + collapsed + overflowed)
  prometheus::Counter* collapsed = nullptr;    // older messages removed by a newer collapse key
  prometheus::Counter* overflowed = nullptr;   // messages dropped by the per-device caps
  prometheus::Counter* markers = nullptr;      // resync markers written
  prometheus::Counter* expired_store = nullptr;       // expired on arrival
  prometheus::Counter* expired_trim = nullptr;        // removed while enforcing a cap
  prometheus::Counter* expired_compaction = nullptr;  // removed by the TTL compaction filter
  prometheus::Counter* acked = nullptr;        // stored messages deleted by acks
  prometheus::Counter* ack_events = nullptr;
  prometheus::Counter* replays_ok = nullptr;
  prometheus::Counter* replays_failed = nullptr;
  prometheus::Counter* replays_skipped = nullptr;  // superseded in the same batch
  prometheus::Counter* replay_waits_deferred = nullptr;   // waited for the store to catch up
  prometheus::Counter* replay_waits_caught_up = nullptr;
  prometheus::Counter* replay_waits_timeout = nullptr;
  prometheus::Counter* replayed = nullptr;     // messages sent by replays
  prometheus::Counter* forwarded = nullptr;    // late stores sent to the connected node
  prometheus::Counter* store_failures = nullptr;
  prometheus::Counter* skipped_applied = nullptr;
  prometheus::Counter* state_gaps = nullptr;
  std::array<prometheus::Counter*, static_cast<int>(Rejected::kCount)> rejected{};
  prometheus::Gauge* partitions = nullptr;
  prometheus::Gauge* ready = nullptr;
  prometheus::Family<prometheus::Gauge>* store_bytes = nullptr;  // label partition
  prometheus::Family<prometheus::Gauge>* store_keys = nullptr;   // label partition
  prometheus::Histogram* batch_seconds = nullptr;
};

}  // namespace pushgw::offline_router
