#pragma once
/// StatusStore on Redis (standalone or Redis Cluster) through
/// pushgw::redis::Client. Key schema: redis_keys.h and status-store/README.md.
///
/// Every multi-key update is one Lua script on one hash-tagged slot; epoch
/// checks happen inside the scripts, so a stale node can never remove,
/// extend or overwrite a newer registration. Batched calls (lookup,
/// refresh_leases, next_seqs) are one pipeline: one round trip per Redis node.
///
/// Thread model: the store keeps no mutable state of its own; all I/O runs on
/// the client's strand (redis::Client::executor()). Members may be awaited
/// from any coroutine, concurrently. The store and its client must outlive
/// the coroutines awaiting them.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/redis/client.h"
#include "status_store/redis_keys.h"
#include "status_store/status_store.h"

namespace pushgw::status_store {

struct RedisStatusStoreOptions {
  std::string key_prefix = "pgw";
  /// Life of a device's epoch and seq counters after its last registration.
  std::chrono::milliseconds device_meta_ttl = std::chrono::hours(24 * 30);
};

class RedisStatusStore final : public StatusStore {
 public:
  /// Fails fast (std::invalid_argument) on a bad key prefix: startup only.
  RedisStatusStore(std::shared_ptr<redis::Client> client, RedisStatusStoreOptions options = {},
                   const Clock& clock = SystemClock::instance());
  ~RedisStatusStore() override;

  const RedisKeys& keys() const { return keys_; }
  redis::Client& client() { return *client_; }

  boost::asio::awaitable<result<void>> ping() override;
  boost::asio::awaitable<result<Registered>> register_device(DeviceRegistration reg,
                                                             Lease lease) override;
  boost::asio::awaitable<result<Registered>> reregister_device(DeviceRegistration reg,
                                                               std::uint64_t epoch,
                                                               Lease lease) override;
  boost::asio::awaitable<result<bool>> unregister_device(std::string app_id, std::string device_id,
                                                         std::uint64_t epoch) override;
  boost::asio::awaitable<result<std::vector<LeaseState>>> refresh_leases(
      std::string node_id, std::vector<LeaseRef> leases, Lease lease) override;
  boost::asio::awaitable<result<std::vector<std::optional<DeviceStatus>>>> lookup(
      std::string app_id, std::vector<std::string> device_ids) override;
  boost::asio::awaitable<result<std::vector<std::string>>> user_devices(
      std::string app_id, std::string user_id) override;
  boost::asio::awaitable<result<std::vector<std::string>>> user_known_devices(
      std::string app_id, std::string user_id) override;
  boost::asio::awaitable<result<std::uint64_t>> online_count(std::string app_id) override;
  boost::asio::awaitable<result<void>> upsert_node(NodeInfo node, Lease lease) override;
  boost::asio::awaitable<result<std::vector<NodeInfo>>> list_nodes() override;
  boost::asio::awaitable<result<bool>> remove_node(std::string node_id) override;
  boost::asio::awaitable<result<std::int64_t>> topic_add(std::string app_id, std::string topic,
                                                         std::string node_id,
                                                         std::int64_t delta) override;
  boost::asio::awaitable<result<std::map<std::string, std::int64_t>>> topic_nodes(
      std::string app_id, std::string topic) override;
  boost::asio::awaitable<result<std::size_t>> clear_node_topics(std::string node_id) override;
  boost::asio::awaitable<result<std::uint64_t>> next_seq(std::string app_id,
                                                         std::string device_id) override;
  boost::asio::awaitable<result<std::vector<std::uint64_t>>> next_seqs(
      std::vector<DeviceRef> devices) override;
  boost::asio::awaitable<result<std::vector<Resolved>>> resolve(
      std::vector<ResolveRequest> entries) override;
  boost::asio::awaitable<result<std::map<std::string, std::int64_t>>> incr_counters(
      std::string message_id, std::vector<std::pair<std::string, std::int64_t>> deltas,
      std::chrono::milliseconds ttl) override;
  boost::asio::awaitable<result<void>> start_counters(
      std::string message_id, std::vector<std::pair<std::string, std::int64_t>> fields,
      std::chrono::milliseconds ttl) override;
  boost::asio::awaitable<result<void>> incr_counters_batch(
      std::vector<CounterUpdate> updates) override;
  boost::asio::awaitable<result<std::map<std::string, std::int64_t>>> get_counters(
      std::string message_id) override;
  boost::asio::awaitable<result<std::optional<std::string>>> put_idempotency(
      std::string app_id, std::string key, std::string value,
      std::chrono::milliseconds ttl) override;
  boost::asio::awaitable<result<std::optional<std::string>>> get_idempotency(
      std::string app_id, std::string key) override;
  boost::asio::awaitable<result<bool>> replace_idempotency(std::string app_id, std::string key,
                                                           std::string expected, std::string value,
                                                           std::chrono::milliseconds ttl) override;

 private:
  boost::asio::awaitable<result<Registered>> do_register(DeviceRegistration reg,
                                                         std::uint64_t fence, Lease lease);
  /// ZADD of a device to its app's online index with the given expiry.
  redis::Command online_add(const std::string& app_id, const std::string& device_id,
                            std::uint64_t expires_ms) const;
  /// Replaces the seqs that INCR returned as 1 (the counter did not exist)
  /// by seeded ones (counter_seed()); `keys[i]` is the counter of `seqs[i]`.
  boost::asio::awaitable<result<void>> seed_new_counters(const std::vector<std::string>& keys,
                                                         std::vector<std::uint64_t>& seqs);

  std::shared_ptr<redis::Client> client_;
  RedisStatusStoreOptions options_;
  const Clock& clock_;
  RedisKeys keys_;
};

/// Builds the Redis client for `uri` ("redis://host:port" or
/// "redis-cluster://h1:p1,h2:p2") and a store on it. errc::invalid_argument
/// for a bad URI or options. Nothing blocks; call ping() to check reachability.
result<std::unique_ptr<RedisStatusStore>> make_redis_status_store(
    boost::asio::any_io_executor ex, std::string_view uri, RedisStatusStoreOptions options = {},
    prometheus::Registry* metrics = nullptr, const Clock& clock = SystemClock::instance());

}  // namespace pushgw::status_store
