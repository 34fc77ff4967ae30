#pragma once
// The Prometheus metrics of one conn-node (names in conn-node/README.md).
// Counters are resolved once at startup into plain pointers so the hot path
// only does an atomic add. Thread-safe.
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <array>
#include <string_view>

#include "conn_node/config.h"
#include "proto/pushgw.pb.h"

namespace pushgw::conn_node {

struct NodeMetrics {
  explicit NodeMetrics(prometheus::Registry& r);

  static constexpr int kFrameTypes = 14;  // Frame body field numbers 1..13, 0 = unknown

  std::array<prometheus::Gauge*, kListenerKinds> links{};
  std::array<prometheus::Counter*, kListenerKinds> accepted{};
  std::array<prometheus::Counter*, kListenerKinds> refused_overloaded{};
  std::array<prometheus::Counter*, kListenerKinds> accept_errors{};
  std::array<prometheus::Counter*, kListenerKinds> handshakes_full{};
  std::array<prometheus::Counter*, kListenerKinds> handshakes_resumed{};
  std::array<prometheus::Counter*, kListenerKinds> handshake_failures{};
  std::array<prometheus::Counter*, kListenerKinds> sessions{};
  prometheus::Gauge* capacity = nullptr;
  prometheus::Counter* accept_throttled = nullptr;

  std::array<prometheus::Counter*, kFrameTypes> frames_in{};
  std::array<prometheus::Counter*, kFrameTypes> frames_out{};
  /// Error frames sent, by ErrorCode value (0..11).
  std::array<prometheus::Counter*, 12> errors_sent{};

  prometheus::Family<prometheus::Counter>* auth_failures = nullptr;
  prometheus::Counter& auth_failure(std::string_view reason);

  prometheus::Counter* overflow_normal = nullptr;
  prometheus::Counter* overflow_marketing = nullptr;
  prometheus::Counter* marketing_dropped = nullptr;

  prometheus::Counter* deliver_queued = nullptr;
  prometheus::Counter* deliver_no_link = nullptr;
  prometheus::Counter* deliver_stale_epoch = nullptr;
  prometheus::Counter* deliver_duplicate = nullptr;
  prometheus::Counter* deliver_expired = nullptr;
  prometheus::Counter* deliver_bad_record = nullptr;
  prometheus::Counter* deliver_schema_rejected = nullptr;
  prometheus::Counter* fanout_records = nullptr;

  prometheus::Counter* held_pushes = nullptr;
  prometheus::Counter* held_dropped = nullptr;
  prometheus::Counter* held_deferred = nullptr;
  prometheus::Counter* replay_completed = nullptr;
  prometheus::Counter* replay_timeouts = nullptr;
  prometheus::Counter* gap_held = nullptr;      // live pushes waiting for an older seq
  prometheus::Counter* gap_timeouts = nullptr;  // ... that went out without it

  prometheus::Counter* upstream_published = nullptr;
  prometheus::Counter* upstream_duplicate = nullptr;
  prometheus::Counter* upstream_rejected = nullptr;
  prometheus::Counter* upstream_unavailable = nullptr;

  prometheus::Counter* replaced_local = nullptr;
  prometheus::Counter* replaced_remote_sent = nullptr;
  prometheus::Counter* replaced_remote_closed = nullptr;

  prometheus::Counter* acks_published = nullptr;
  prometheus::Counter* bus_publish_failures = nullptr;
  prometheus::Counter* store_failures = nullptr;
  prometheus::Counter* counters_dropped = nullptr;

  prometheus::Gauge* draining = nullptr;
  prometheus::Gauge* drain_remaining = nullptr;
  prometheus::Counter* drain_redirected = nullptr;

 private:
  prometheus::Registry& registry_;
};

/// Index of a Frame body case into frames_in / frames_out.
inline int frame_type_index(const v1::Frame& f) {
  const int c = static_cast<int>(f.body_case());
  return c > 0 && c < NodeMetrics::kFrameTypes ? c : 0;
}

}  // namespace pushgw::conn_node
