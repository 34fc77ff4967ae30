#pragma once
/// What the offline router does with one partition's share of a consumed
/// batch, on the store pool: decode, skip what the store already applied
/// (checkpoints), one atomic store write (stores + acks + checkpoints), then
/// build the replay and forward records. No Kafka client inside: it works on
/// consumed records and returns records to produce.
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/bus/types.h"
#include "common/error.h"
#include "msg_store/message_store.h"
#include "offline_router/config.h"

namespace pushgw::offline_router {

/// A device's connection as the last Presence said.
struct Conn {
  std::string node_id;
  uint64_t epoch = 0;
};

/// A CONNECTED presence whose replay waits for the store to catch up with
/// pushgw.offline (see ReplaySettings::catch_up_wait).
struct PendingReplay {
  std::string app_id;
  std::string device_id;
  std::string node_id;
  uint64_t epoch = 0;
  uint64_t last_seq = 0;
  /// Replay once the store has applied pushgw.offline up to here (exclusive).
  int64_t until_offset = 0;
  /// ... or at this time, whatever is stored by then.
  uint64_t deadline_ms = 0;
  /// The presence record: marked processed only once the replay is out.
  bus::Record record;
};

/// Per owned partition. `store` and `gen` belong to the router's strand; the
/// rest to the single batch in flight on the pool.
struct PartitionState {
  PartitionState() = default;
  explicit PartitionState(std::atomic<uint64_t>* tracked_connections)
      : tracked(tracked_connections) {}
  /// Gives back its share of the tracked connections.
  ~PartitionState();
  PartitionState(const PartitionState&) = delete;
  PartitionState& operator=(const PartitionState&) = delete;

  std::atomic<uint64_t>* tracked = nullptr;
  uint64_t gen = 0;
  std::shared_ptr<msg_store::MessageStore> store;
  std::unordered_map<std::string, Conn> connected;  // "<app>/<device>" -> connection
  std::unordered_map<std::string, PendingReplay> pending;  // "<app>/<device>" -> waiting replay
  bool gap_checked_offline = false;
  bool gap_checked_acks = false;
  uint64_t expired_compacted_seen = 0;
};

/// Records of one partition number (all three topics), in consumed order.
struct PartitionWork {
  int32_t partition = -1;
  std::shared_ptr<PartitionState> state;
  std::shared_ptr<msg_store::MessageStore> store;
  std::vector<bus::Record> records;
};

/// The records of one replay (messages, then replay_complete), produced together.
struct ReplayGroup {
  std::vector<bus::OutRecord> records;
  uint32_t messages = 0;
};

struct PartitionResult {
  int32_t partition = -1;
  /// Set when the store failed (read of checkpoints or the write): nothing of
  /// the partition's records was applied; they must be retried.
  boost::system::error_code error;
  msg_store::ApplyResult applied;
  uint64_t ack_events = 0;
  uint64_t skipped_applied = 0;
  uint64_t rejected_bad = 0;
  uint64_t rejected_schema = 0;
  uint64_t state_gaps = 0;
  uint64_t replays_skipped = 0;
  uint64_t replay_read_failures = 0;
  std::vector<ReplayGroup> replays;
  std::vector<bus::OutRecord> forwards;
  /// Replays that wait for the store to catch up (their presence records,
  /// below, are not to be marked yet), and how earlier waits ended.
  uint64_t replays_deferred = 0;
  uint64_t replays_caught_up = 0;
  uint64_t replays_wait_timeouts = 0;
  /// Offsets (presence topic) of this batch's records whose replay waits.
  std::vector<int64_t> deferred_offsets;
  /// Presence records of earlier batches whose replay is out (or moot): mark them now.
  std::vector<bus::Record> released;
};

/// Settings and shared state the work needs.
struct WorkContext {
  const RouterConfig* config = nullptr;
  /// Connections remembered over all partitions (bounded by max_tracked_connections).
  std::atomic<uint64_t>* tracked = nullptr;
  /// The end offset (next offset to be written) of a partition of
  /// pushgw.offline, asked of the broker; nullopt when it cannot be had (the
  /// replay then goes at once). Blocking. Unset: replays never wait.
  std::function<std::optional<int64_t>(int32_t partition)> offline_end_offset;
  /// Wall clock in ms (deadlines of waiting replays); unset: the system clock.
  std::function<uint64_t()> now_ms;
};

/// "<app>/<device>", the Kafka key of every per-device record.
std::string device_key(std::string_view app, std::string_view device);

/// A node id usable in a topic name ([A-Za-z0-9._-], 1..200 bytes).
bool valid_node_id(std::string_view node);

/// Does the work. Blocking (store I/O): call it on the store pool.
PartitionResult apply_partition(const WorkContext& ctx, PartitionWork& work);

}  // namespace pushgw::offline_router
