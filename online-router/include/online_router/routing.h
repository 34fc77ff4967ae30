#pragma once
/// The routing rules of the online router as pure functions and small value
/// types, without I/O: topic names, decoding and checking of push requests,
/// the decision for one unicast target, the records produced for a message,
/// the live-node view and the per-message counter deltas. Router (router.h)
/// does the I/O around them. Everything here is deterministic (time is a
/// parameter) and not thread-safe unless stated.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include <google/protobuf/arena.h>

#include "common/bus/types.h"
#include "online_router/config.h"
#include "proto/bus.pb.h"
#include "status_store/status_store.h"

namespace pushgw::online_router {

/// Schema version of the bus messages this router understands.
inline constexpr uint32_t kSchemaVersion = 1;

inline constexpr std::string_view kOfflineTopic = "pushgw.offline";
/// "pushgw.push.<class>": unicast requests, keyed by "<app>/<device>".
std::string push_topic(TrafficClass c);
/// "pushgw.fanout.<class>": topic and broadcast requests, keyed by message id.
std::string fanout_topic(TrafficClass c);
/// "pushgw.deliver.<node_id>".
std::string deliver_topic(std::string_view node_id);
/// True if deliver_topic(node_id) is a legal Kafka topic name
/// ([A-Za-z0-9._-], at most 249 characters).
bool valid_node_topic(std::string_view node_id);
/// "<app_id>/<device_id>": the key of every per-device record.
std::string device_key(std::string_view app_id, std::string_view device_id);

/// Why an input record was skipped (metrics label, log).
enum class BadReason : uint8_t { kUndecodable = 0, kSchemaVersion = 1, kInvalid = 2 };
inline constexpr int kBadReasons = 3;
/// "undecodable", "schema_version", "invalid".
std::string_view bad_reason_name(BadReason r) noexcept;

enum class TargetKind : uint8_t { kDevice, kTopic, kBroadcast };

/// A push request that passed decode_request().
struct Decoded {
  const bus::v1::PushRequest* request = nullptr;  ///< owned by the arena passed in
  TargetKind kind = TargetKind::kDevice;
};

/// Parses one input record value and checks it: kUndecodable if it is not a
/// PushRequest, kSchemaVersion if its schema_version is newer than
/// kSchemaVersion, kInvalid if the message id or app id is malformed or the
/// target is not exactly one of device, topic or broadcast (ids checked
/// with the status store's rules). The request is allocated on `arena` (one
/// arena per routed batch: no allocation per string field, nothing to free
/// per request), and lives as long as the arena.
std::variant<Decoded, BadReason> decode_request(std::string_view value,
                                                google::protobuf::Arena& arena);

/// The request's expiry (unix ms): expires_ms, or created_ms + ttl_s when
/// expires_ms is missing. For ttl 0 (online only) it is created_ms, which
/// devices and nodes read as "no delivery window of its own".
uint64_t expires_at_ms(const bus::v1::PushRequest& r);

/// True when a message with ttl_s > 0 is past its expiry at `now_ms`.
/// Online-only messages (ttl 0) never expire before routing.
bool is_expired(const bus::v1::PushRequest& r, uint64_t now_ms);

/// What happens to one unicast message.
struct UnicastPlan {
  bool live = false;          ///< a record to pushgw.deliver.<node>
  bool store = false;         ///< a record to pushgw.offline
  bool expired = false;       ///< dropped: expired, or ttl 0 and not reachable live
  bool unknown_node = false;  ///< registered on a node that is not live
  /// A seq is assigned when the message goes anywhere.
  bool needs_seq() const { return live || store; }
};

/// The rule for one device: expired requests are dropped; an online device
/// on a live node gets a live record; every ttl > 0 message is also stored;
/// a ttl 0 message that cannot go out live is dropped as expired.
UnicastPlan plan_unicast(const bus::v1::PushRequest& r, bool online, bool node_live,
                         uint64_t now_ms);

/// The frame a device receives (seq 0 for topic and broadcast messages).
/// ack_required = ttl_s > 0 (device protocol).
pushgw::v1::Push make_push(const bus::v1::PushRequest& r, uint64_t seq, TrafficClass c);

/// The unicast records of one message: to the node (if `node_id` is set) and
/// to the offline store (if `store`). Both carry the same push and epoch;
/// the live one also `after_seq` (DeliveryRecord.after_seq, 0 = none).
struct UnicastRecords {
  std::optional<bus::OutRecord> deliver;
  std::optional<bus::OutRecord> offline;
};
UnicastRecords unicast_records(const bus::v1::PushRequest& r, uint64_t seq,
                               std::optional<std::string_view> node_id, uint64_t epoch, bool store,
                               TrafficClass c, uint64_t after_seq = 0);

/// Remembers, per device, the newest message routed to pushgw.offline only
/// (not live), and the registration epoch seen then. A message routed live
/// to a newer connection must follow it (DeliveryRecord.after_seq): the
/// offline router's replay for that connection may have run before the
/// stored one reached it, so it comes as a late forward. Bounded: past
/// `max_entries` the oldest half is forgotten (those devices lose the hint).
class OfflineOnlyMemo {
 public:
  explicit OfflineOnlyMemo(std::size_t max_entries) : max_(max_entries) {}
  void routed_offline_only(const std::string& device_key, uint64_t seq, uint64_t epoch,
                           uint64_t expires_ms);
  /// after_seq for a live message to registration `epoch` (0 = none; also
  /// when that message has expired by `now_ms`: no replay would bring it).
  /// A non-zero answer is given once: the node holds every later live
  /// message of the connection behind this one, and a later connection's
  /// replay carries the stored message in order, so nothing else needs it
  /// (and a connection whose replay cannot have it, e.g. acked meanwhile,
  /// waits at most once).
  uint64_t take_after_seq(const std::string& device_key, uint64_t epoch, uint64_t now_ms);
  std::size_t size() const { return map_.size(); }

 private:
  struct Entry {
    uint64_t seq;
    uint64_t epoch;
    uint64_t expires_ms;
    uint64_t order;
  };
  std::size_t max_;
  uint64_t next_order_ = 0;
  std::unordered_map<std::string, Entry> map_;
};

/// The record of a topic or broadcast message for one node: topic set (or
/// broadcast = true), seq 0, keyed by the topic (broadcast: the message id).
bus::OutRecord fanout_record(const bus::v1::PushRequest& r, std::string_view node_id,
                             TrafficClass c);

/// The live-node list as last read from the status store, and when.
class NodeView {
 public:
  enum class Liveness { kLive, kDead, kUnknown };

  void update(std::vector<std::string> nodes, uint64_t read_at_ms);
  /// True once a list has been read.
  bool known() const { return read_at_ms_.has_value(); }
  /// True if a list was read within `max_age` of `now_ms`.
  bool fresh(uint64_t now_ms, std::chrono::milliseconds max_age) const;
  /// kLive if listed. An unlisted node is kDead when the list was read at
  /// least kClockSlack after `connected_at_ms` (the node would have been
  /// listed: nodes register before their devices), otherwise kUnknown
  /// (re-read the list). Always kUnknown before the first read.
  Liveness check(std::string_view node_id, uint64_t connected_at_ms) const;
  const std::vector<std::string>& nodes() const { return list_; }

  /// Allowance for clock differences between conn-nodes and the router.
  static constexpr uint64_t kClockSlack = 2'000;

 private:
  std::vector<std::string> list_;
  std::unordered_set<std::string> set_;
  std::optional<uint64_t> read_at_ms_;
};

/// Per-message counter deltas gathered over a batch (several records of a
/// batch often belong to one message: user targets, fan-out).
class CounterBatch {
 public:
  /// `covered_until_ms`: the hash's expiry as its creator (push-api) set
  /// it, 0 if not known.
  /// `sole_target`: the record is its message's only one (PushRequest
  /// targets == 1): if it is also the only one of the message in this batch,
  /// its update sets the values (CounterUpdate::set).
  /// `message_id` is not copied: it must stay valid until updates().
  void add(std::string_view message_id, uint64_t expires_ms, int64_t routed, int64_t stored,
           int64_t expired, uint64_t covered_until_ms = 0, bool sole_target = false);
  void reserve(std::size_t messages) {
    order_.reserve(messages);
    counts_.reserve(messages);
  }
  bool empty() const { return counts_.empty(); }
  /// One update per message with its non-zero counters ("routed", "stored",
  /// "expired"); ttl = max(min_ttl, expiry - now), and keep_ttl when the
  /// hash's known expiry is at least that far away.
  std::vector<status_store::CounterUpdate> updates(uint64_t now_ms,
                                                   std::chrono::seconds min_ttl) const;

 private:
  struct Counts {
    int64_t routed = 0;
    int64_t stored = 0;
    int64_t expired = 0;
    uint64_t expires_ms = 0;
    uint64_t covered_until_ms = UINT64_MAX;  // min over the adds
    bool sole = false;                       // one add, of a sole-target record
  };
  std::vector<std::string_view> order_;
  std::unordered_map<std::string_view, Counts> counts_;
};

}  // namespace pushgw::online_router
