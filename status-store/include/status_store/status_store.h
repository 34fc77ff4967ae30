#pragma once
/// The status store: where each device is connected (with leases and epoch
/// fencing), which devices a user has online, which connection nodes are
/// alive, which nodes have subscribers of a topic, per-device sequence
/// numbers, per-message counters and idempotency keys.
///
/// Errors are values: errc::invalid_argument (bad ids, zero lease),
/// errc::stale_epoch (a newer registration exists), errc::unavailable /
/// errc::timeout (the backing store is down or slow), errc::protocol_error
/// (the backing store answered something unexpected). No call blocks without
/// bound and none throws for a runtime failure.
///
/// Thread model: implementations document their executor; every member may
/// be awaited from any coroutine.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace pushgw::status_store {

using Lease = std::chrono::milliseconds;

/// A device's link as its connection node registers it.
struct DeviceRegistration {
  std::string app_id;
  std::string device_id;
  std::string node_id;
  std::string session_id;
  std::string platform;
  std::string user_id;  ///< empty: not bound to a user
  std::uint64_t connected_at_ms = 0;
};

/// The registration a newer one replaced: the new node tells this node to
/// drop its link.
struct PreviousRegistration {
  std::string node_id;
  std::string session_id;
  std::uint64_t epoch = 0;
  std::string user_id;
};

struct Registered {
  /// Strictly increasing per device: every register_device() gets a larger one.
  std::uint64_t epoch = 0;
  std::optional<PreviousRegistration> previous;
};

/// Where a device is online now.
struct DeviceStatus {
  std::string node_id;
  std::uint64_t epoch = 0;
  std::string session_id;
  std::string platform;
  std::string user_id;
  std::uint64_t connected_at_ms = 0;
  std::uint64_t last_seen_ms = 0;  ///< last registration or lease refresh
};

/// One link whose lease the owning node extends.
struct LeaseRef {
  std::string app_id;
  std::string device_id;
  std::uint64_t epoch = 0;
  std::string user_id;  ///< if set, the user's device index lease is extended too
};

enum class LeaseState {
  refreshed,  ///< lease extended
  stale,      ///< a newer registration (or another node) owns the device: drop the link
  missing,    ///< the registration expired; re-register with reregister_device()
};

struct NodeEndpoints {
  std::string tcp;
  std::string tls;
  std::string ws;
  std::string wss;
  bool operator==(const NodeEndpoints&) const = default;
};

struct NodeInfo {
  std::string node_id;
  NodeEndpoints endpoints;
  std::uint64_t connections = 0;
  bool draining = false;
  /// Filled by list_nodes(): when the lease runs out (store clock, Unix ms).
  std::uint64_t lease_expires_ms = 0;
  /// host:port of the node's admin HTTP listener (drain, metrics), for
  /// operators' tools (pushctl drain); empty if not advertised. Never shown
  /// to apps.
  std::string admin;
};

struct DeviceRef {
  std::string app_id;
  std::string device_id;
};

/// Where a missing per-device counter (downstream seq, link epoch) starts:
/// 1000 x unix ms. A counter lost with Redis, or expired with the device's
/// metadata, so restarts above every value it handed out before, as long as a
/// device gets fewer than 1000 per millisecond on average and the clock does
/// not go back. (Values stay below 2^53: exact in JSON and JavaScript.)
constexpr std::uint64_t counter_seed(std::uint64_t now_ms) { return now_ms * 1000; }

/// One entry of resolve(): where the device is and, if `want_seq`, its next seq.
struct ResolveRequest {
  std::string app_id;
  std::string device_id;
  bool want_seq = false;
};
/// What routing needs of a DeviceStatus (resolve() decodes only this).
struct DeviceRoute {
  std::string node_id;
  std::uint64_t epoch = 0;
  std::uint64_t connected_at_ms = 0;
};
struct Resolved {
  std::optional<DeviceRoute> route;  ///< nullopt: offline
  std::uint64_t seq = 0;             ///< 0 unless want_seq
};

/// One message's counter deltas, for incr_counters_batch().
struct CounterUpdate {
  std::string message_id;
  std::vector<std::pair<std::string, std::int64_t>> deltas;
  std::chrono::milliseconds ttl{0};
  /// The hash is known to outlive `ttl` already (its creator set a longer
  /// expiry): no PEXPIRE is sent, which saves one command per message.
  bool keep_ttl = false;
  /// The deltas are the fields' final values (a message with one target,
  /// routed once): set, not added, in one HSET; a redelivered record then
  /// does not count twice.
  bool set = false;
};

class StatusStore {
 public:
  virtual ~StatusStore() = default;

  /// Cheap round trip to the backing store (readiness probes).
  virtual boost::asio::awaitable<result<void>> ping() = 0;

  /// Registers a link; the newest registration always wins. Returns the new
  /// epoch and the registration it replaced (if one was live). Also indexes
  /// the device under its user.
  virtual boost::asio::awaitable<result<Registered>> register_device(DeviceRegistration reg,
                                                                     Lease lease) = 0;
  /// Restores a registration the node still holds (e.g. after its lease
  /// lapsed during a Redis outage) under the same `epoch`. errc::stale_epoch
  /// if any newer registration was made since, even one that has expired.
  virtual boost::asio::awaitable<result<Registered>> reregister_device(DeviceRegistration reg,
                                                                       std::uint64_t epoch,
                                                                       Lease lease) = 0;
  /// Removes the registration if it still has `epoch`: true if removed, false
  /// if there was none (expired); errc::stale_epoch if a newer one exists
  /// (it is left untouched).
  virtual boost::asio::awaitable<result<bool>> unregister_device(std::string app_id,
                                                                 std::string device_id,
                                                                 std::uint64_t epoch) = 0;
  /// Extends the leases of many links of `node_id` in one round trip per
  /// store node. Each entry is epoch-checked: it never extends someone
  /// else's registration. One state per entry, in order.
  virtual boost::asio::awaitable<result<std::vector<LeaseState>>> refresh_leases(
      std::string node_id, std::vector<LeaseRef> leases, Lease lease) = 0;
  /// Where each device is online (nullopt: offline), in order; pipelined.
  virtual boost::asio::awaitable<result<std::vector<std::optional<DeviceStatus>>>> lookup(
      std::string app_id, std::vector<std::string> device_ids) = 0;
  /// The user's online devices (sorted). Index entries of devices that went
  /// offline or changed user are pruned on the way.
  virtual boost::asio::awaitable<result<std::vector<std::string>>> user_devices(
      std::string app_id, std::string user_id) = 0;
  /// The user's known devices (sorted), online or not: every device whose
  /// latest registration (within the store's device metadata lifetime) was
  /// bound to this user. A device later registered under another user, or
  /// without one, is not listed (and its entry is pruned). Used for user
  /// pushes that must wait for offline devices (ttl > 0). The default
  /// implementation (for test doubles) returns user_devices().
  virtual boost::asio::awaitable<result<std::vector<std::string>>> user_known_devices(
      std::string app_id, std::string user_id);
  /// How many devices of the app are online now (registrations whose lease
  /// has not run out, within one lease of precision). The default
  /// implementation returns errc::unavailable.
  virtual boost::asio::awaitable<result<std::uint64_t>> online_count(std::string app_id);

  /// Creates or replaces the node's entry; it stays listed for `lease`.
  virtual boost::asio::awaitable<result<void>> upsert_node(NodeInfo node, Lease lease) = 0;
  /// Nodes whose lease has not run out (expired entries are dropped), by id.
  virtual boost::asio::awaitable<result<std::vector<NodeInfo>>> list_nodes() = 0;
  /// True if the node was listed.
  virtual boost::asio::awaitable<result<bool>> remove_node(std::string node_id) = 0;

  /// Adds `delta` (may be negative) to the node's subscriber count of the
  /// topic; a count reaching 0 or below removes the node. Returns the new count.
  virtual boost::asio::awaitable<result<std::int64_t>> topic_add(std::string app_id,
                                                                 std::string topic,
                                                                 std::string node_id,
                                                                 std::int64_t delta) = 0;
  /// node_id -> subscriber count for the topic.
  virtual boost::asio::awaitable<result<std::map<std::string, std::int64_t>>> topic_nodes(
      std::string app_id, std::string topic) = 0;
  /// Drops the node from every topic it had subscribers in (a dead or
  /// stopping node). Returns how many topic entries were removed.
  virtual boost::asio::awaitable<result<std::size_t>> clear_node_topics(std::string node_id) = 0;

  /// lookup() and next_seqs() together: one round trip per store node for
  /// the whole batch (plus one for counters that did not exist yet). Seqs are
  /// taken in entry order. On error some counters may have advanced. The
  /// default implementation (for test doubles) calls lookup() per app, then
  /// next_seqs().
  virtual boost::asio::awaitable<result<std::vector<Resolved>>> resolve(
      std::vector<ResolveRequest> entries);

  /// The device's next downstream sequence number: strictly increasing, the
  /// first one counter_seed(now) + 1 or so, not 1 (see counter_seed()).
  virtual boost::asio::awaitable<result<std::uint64_t>> next_seq(std::string app_id,
                                                                 std::string device_id) = 0;
  /// next_seq() for many devices in one round trip per store node, in order.
  /// On error some counters may have advanced (gaps are allowed, repeats never).
  virtual boost::asio::awaitable<result<std::vector<std::uint64_t>>> next_seqs(
      std::vector<DeviceRef> devices) = 0;
  /// Adds the deltas to the message's counters (targets, routed, delivered,
  /// acked, stored, expired, ...) and makes them live at least `ttl` from now
  /// (a shorter ttl never cuts an earlier, longer one). Returns the new values.
  virtual boost::asio::awaitable<result<std::map<std::string, std::int64_t>>> incr_counters(
      std::string message_id, std::vector<std::pair<std::string, std::int64_t>> deltas,
      std::chrono::milliseconds ttl) = 0;
  /// The first write of a message's counters (push-api, once per message):
  /// sets `fields` to these values (rather than adding to them) and the
  /// hash's time to live like incr_counters(), without reading values back.
  /// Same checks as incr_counters(). The Redis store sends one HSET and two
  /// PEXPIREs in one round trip (incr_counters() sends a command per field).
  /// The default implementation calls incr_counters().
  virtual boost::asio::awaitable<result<void>> start_counters(
      std::string message_id, std::vector<std::pair<std::string, std::int64_t>> fields,
      std::chrono::milliseconds ttl);
  /// incr_counters() for many messages at once, without reading the new
  /// values back. The Redis store sends one pipeline (one round trip per store
  /// node); updates are applied in order, each field and the key's time to
  /// live like incr_counters(). errc::invalid_argument for a bad id or
  /// field, no deltas or ttl <= 0 (the Redis store checks every update
  /// first and then sends nothing). On a store error some updates may have
  /// been applied.
  /// The default implementation calls incr_counters() once per update.
  virtual boost::asio::awaitable<result<void>> incr_counters_batch(
      std::vector<CounterUpdate> updates);
  /// The message's counters (empty map if none or expired).
  virtual boost::asio::awaitable<result<std::map<std::string, std::int64_t>>> get_counters(
      std::string message_id) = 0;
  /// Stores `value` under the key if none is stored (SET NX semantics):
  /// nullopt when stored, otherwise the value stored earlier (left as is).
  virtual boost::asio::awaitable<result<std::optional<std::string>>> put_idempotency(
      std::string app_id, std::string key, std::string value, std::chrono::milliseconds ttl) = 0;
  /// The value stored under the key (nullopt: none). The default
  /// implementation (for test doubles) returns errc::unavailable.
  virtual boost::asio::awaitable<result<std::optional<std::string>>> get_idempotency(
      std::string app_id, std::string key);
  /// Compare-and-set: if the key holds `expected`, stores `value` with a new
  /// `ttl` (an empty `value` deletes the key) and returns true; otherwise
  /// changes nothing and returns false. Lets a writer that reserved a key
  /// with put_idempotency() publish its final value, or release the key,
  /// without touching a value someone else stored. The default
  /// implementation returns errc::unavailable.
  virtual boost::asio::awaitable<result<bool>> replace_idempotency(std::string app_id,
                                                                   std::string key,
                                                                   std::string expected,
                                                                   std::string value,
                                                                   std::chrono::milliseconds ttl);
};

}  // namespace pushgw::status_store
