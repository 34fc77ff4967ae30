#pragma once
/// The offline router: owns the message store. It consumes
///   pushgw.offline   DeliveryRecord{push}  -> store (ttl > 0 messages)
///   pushgw.acks      AckEvent              -> delete, advance the watermark
///   pushgw.presence  Presence CONNECTED    -> replay every stored, unexpired message
///                                             above last_seq to pushgw.deliver.<node>,
///                                             then one replay_complete for that epoch
/// in one consumer group, keeps one RocksDB per owned partition, and commits
/// a record's offset only after its effect is durable. See
/// offline-router/README.md for ordering, rebalance and crash behaviour.
///
/// Threads: the router's coroutines and the consumer's rebalance handlers run
/// on the executor given at construction (use a single-threaded io_context
/// or a strand); every RocksDB call runs on the router's own store pool.
/// Lifetime: shutdown() (or stop()) before destroying the executor's context.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/metrics.h"
#include "msg_store/message_store.h"
#include "offline_router/config.h"

namespace pushgw::offline_router {

struct RouterOptions {
  /// Where the router's metrics go (optional; also gets the bus metrics).
  std::shared_ptr<common::Metrics> metrics;
  /// Clock of the message store (TTL). nullptr: the system clock. Must outlive the router.
  const Clock* clock = nullptr;
};

/// Counters since start (also exported as metrics).
struct RouterStats {
  uint64_t batches = 0;
  uint64_t stored = 0;           ///< messages newly stored
  uint64_t not_stored = 0;       ///< duplicate, superseded, below watermark, acked, expired, invalid
  uint64_t acked = 0;            ///< stored messages deleted by acks
  uint64_t ack_events = 0;       ///< AckEvents applied
  uint64_t replays = 0;          ///< replays completed (replay_complete produced)
  uint64_t replayed = 0;         ///< messages produced by replays
  uint64_t forwarded = 0;        ///< messages stored after their device's replay, sent at once
  uint64_t replay_failures = 0;  ///< replays given up after produce_attempts
  uint64_t store_failures = 0;   ///< batches whose store write failed (retried)
  uint64_t skipped_applied = 0;  ///< redelivered records already in the store (checkpoint)
  uint64_t rejected = 0;         ///< undecodable or newer-schema records (skipped)
  std::vector<int32_t> partitions;  ///< partitions owned now
};

/// What the router knows of one device's stored messages (pushctl device).
struct DeviceStored {
  /// The partition of the device's key ("<app>/<device>", librdkafka's
  /// default partitioner: CRC-32 of the key modulo the partition count).
  int32_t partition = -1;
  /// Whether this router owns that partition (and so holds the device's store).
  bool owned = false;
  /// The device's queue figures (valid when owned).
  msg_store::DeviceStats stats;
};

/// The partition librdkafka's default partitioner (consistent_random) picks
/// for a non-empty key: CRC-32 (IEEE) of the key modulo `partitions`.
int32_t partition_of_key(std::string_view key, int32_t partitions);

class OfflineRouter {
 public:
  OfflineRouter(boost::asio::any_io_executor executor, RouterConfig config,
                RouterOptions options = {});
  /// Calls stop().
  ~OfflineRouter();
  OfflineRouter(const OfflineRouter&) = delete;
  OfflineRouter& operator=(const OfflineRouter&) = delete;

  /// Blocking, at startup: reads the bootstrap file, checks (creating them if
  /// missing) that the offline, presence and acks topics exist with the SAME
  /// partition count (required: a device's records must land in the same
  /// partition number of all three), builds the Kafka clients, subscribes
  /// and starts consuming. Errors: errc::invalid_argument (bootstrap, topic
  /// partition counts differ), errc::unavailable / errc::timeout (Kafka).
  result<void> start();

  /// Orderly stop: finishes the batch in progress, commits, leaves the group
  /// (its partitions' stores are closed), closes the Kafka clients.
  boost::asio::awaitable<void> shutdown();

  /// Immediate stop (blocking): no new batch; closes clients and stores.
  void stop();

  /// Started, consumer and producer healthy, and the last store write succeeded.
  bool ready() const;

  RouterStats stats() const;

  /// The stored-message figures of one device, read from the store of its
  /// partition if this router owns it. Runs on the router's executor and the
  /// store pool. Errors: errc::invalid_argument (bad ids), errc::unavailable
  /// (not started), store errors.
  boost::asio::awaitable<result<DeviceStored>> device_stored(std::string app_id,
                                                             std::string device_id);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace pushgw::offline_router
