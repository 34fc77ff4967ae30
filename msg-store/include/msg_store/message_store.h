#pragma once
/// The message store: per-(app, device) ordered queues of the messages that
/// must survive until the device acks them or they expire.
///
/// Semantics (every implementation):
/// - A queue is ordered by Push.seq; read() returns messages in seq order.
/// - TTL: a message whose expires_ms is at or before the store clock's now is
///   never returned, and is removed in the background (compaction), never by
///   full scans.
/// - Collapse key: of the stored messages of one device with the same
///   non-empty collapse_key, only the one with the highest seq survives.
/// - Caps: at most `max_per_device` messages without a collapse key and
///   `max_collapsible_per_device` with one are kept per device; on overflow
///   the oldest of that kind are dropped and the device gets one resync
///   marker (see kResyncMarkerPrefix) in their place.
/// - Acked watermark: a cumulative ack (up_to_seq) deletes every message at
///   or below it and no message at or below it is ever stored again. Acks of
///   single seqs / message ids delete those messages and leave a tombstone so
///   that a store arriving after its ack (the ack raced ahead) is dropped.
/// - Writes go through the WAL (no fsync per message unless WriteOptions::sync),
///   so a process crash loses nothing a call reported as done; with `sync` (or
///   after sync_wal()) a machine crash loses nothing either.
///
/// Errors are values (store_errc, see msg_store/error.h): a full disk or any
/// write error fails the call and leaves the store consistent; the next write
/// retries recovery. The store never throws for a runtime failure.
///
/// Threads: every method is blocking (disk I/O) and thread-safe; call it on a
/// dedicated pool, never on an I/O thread. Writes (apply/store/ack) are
/// serialized inside the store; reads run concurrently with them.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "proto/bus.pb.h"
#include "proto/pushgw.pb.h"

namespace pushgw::msg_store {

/// Message ids starting with this prefix are reserved for resync markers.
/// A marker is a Push with message_id "pushgw.resync:<seq>", the seq of the
/// newest message the cap dropped (so it sits where the gap is, before every
/// message still stored), an empty payload, traffic class NORMAL,
/// ack_required = true, and expires_ms = the latest expiry among the dropped
/// messages (after that, the dropped messages would be gone anyway). It tells
/// the client that older messages were lost and it should resync with its
/// business backend. A device has at most one marker; a later overflow moves
/// it. It is acked and deleted like any other message.
inline constexpr std::string_view kResyncMarkerPrefix = "pushgw.resync:";

/// True if `push` is a resync marker.
bool is_resync_marker(const pushgw::v1::Push& push);

/// What happened to one record given to store().
enum class StoreOutcome : uint8_t {
  kStored,          ///< stored (new)
  kDuplicate,       ///< this seq is already stored (a redelivery): nothing changed
  kCollapsed,       ///< stored; an older message with the same collapse key was removed
  kSuperseded,      ///< not stored: a newer message with the same collapse key is stored
  kBelowWatermark,  ///< not stored: seq at or below the device's cumulative ack
  kAlreadyAcked,    ///< not stored: its seq or message id was acked before it arrived
  kExpired,         ///< not stored: expires_ms already passed
  kOverflowed,      ///< stored; older messages were dropped for the cap (resync marker set)
  kInvalid,         ///< not stored: no push, empty/oversized ids, seq 0 or expires_ms 0
};

/// "stored", "duplicate", ... (for logs and metric labels).
std::string_view outcome_name(StoreOutcome outcome);

/// A named position saved atomically with a write (e.g. "pushgw.offline" ->
/// next Kafka offset), read back with MessageStore::checkpoint().
struct Checkpoint {
  std::string name;
  int64_t value = 0;
};

struct WriteOptions {
  /// fsync the WAL before the call returns (durable across machine crashes).
  bool sync = false;
  /// Saved in the same atomic write batch as the changes.
  std::vector<Checkpoint> checkpoints;
};

/// Acks of one device. All parts are optional and applied together.
struct AckRequest {
  std::string app_id;
  std::string device_id;
  /// Cumulative ack: every message with seq <= up_to_seq (0 = none).
  uint64_t up_to_seq = 0;
  /// Single seqs acked.
  std::vector<uint64_t> seqs;
  /// Message ids acked (seq unknown to the caller).
  std::vector<std::string> message_ids;
};

struct StoreResult {
  /// One per input record, in order.
  std::vector<StoreOutcome> outcomes;
  /// Older stored messages removed because a newer one with their collapse key arrived.
  uint64_t collapsed_away = 0;
  /// Stored messages dropped by the per-device caps.
  uint64_t overflow_dropped = 0;
  /// Resync markers written (or moved to a newer gap).
  uint64_t markers_written = 0;
  /// Expired messages removed on the way (while enforcing a cap).
  uint64_t expired_removed = 0;

  uint64_t count(StoreOutcome outcome) const;
};

struct AckResult {
  /// Stored messages deleted by the acks.
  uint64_t deleted = 0;
  /// Tombstones written for acked messages that are not (yet) stored.
  uint64_t tombstones = 0;
  /// Acks that advanced a device's watermark.
  uint64_t watermark_advanced = 0;
  /// Requests refused as malformed (empty or oversized ids); the rest applied.
  uint64_t invalid = 0;
};

struct ApplyResult {
  StoreResult store;
  AckResult ack;
};

struct ReadResult {
  /// Unexpired messages with seq > after_seq, in seq order.
  std::vector<pushgw::v1::Push> messages;
  /// Expired messages passed over (they are never returned).
  uint64_t expired_skipped = 0;
  /// True if the limit stopped the read before the end of the queue.
  bool more = false;
};

/// One device's queue, computed from the stored messages (exact, expired excluded).
struct DeviceStats {
  uint64_t stored = 0;       ///< unexpired messages, marker included
  uint64_t collapsible = 0;  ///< of which have a collapse key
  bool resync_marker = false;
  uint64_t lowest_seq = 0;  ///< lowest stored seq (0: none)
  uint64_t highest_stored_seq = 0;
  uint64_t watermark = 0;        ///< cumulative acked seq
  uint64_t expired_pending = 0;  ///< expired, not yet removed by compaction
};

/// Size figures of the whole store (estimates from the storage engine).
struct StoreStats {
  uint64_t sst_bytes = 0;
  uint64_t memtable_bytes = 0;
  uint64_t live_data_bytes = 0;
  uint64_t estimated_keys = 0;
  /// Messages the TTL compaction filter removed since the store was opened.
  uint64_t expired_compacted = 0;
};

class MessageStore {
 public:
  virtual ~MessageStore() = default;

  /// Stores DeliveryRecords (push set, device_id set, seq > 0) and applies
  /// acks, in one atomic, WAL-logged write batch with the checkpoints. Stores
  /// are applied before acks; the result does not depend on that order (an
  /// ack of a message in the same batch deletes it either way).
  /// Malformed records come back as StoreOutcome::kInvalid, not as an error.
  /// Errors: io_error / no_space / busy (nothing of the batch was written),
  /// closed.
  virtual result<ApplyResult> apply(std::span<const pushgw::bus::v1::DeliveryRecord> stores,
                                    std::span<const AckRequest> acks,
                                    const WriteOptions& options = {}) = 0;

  /// Reads up to `limit` unexpired messages with seq > after_seq, in seq
  /// order. Errors: invalid_argument (bad ids, limit 0), io_error, closed.
  virtual result<ReadResult> read(std::string_view app_id, std::string_view device_id,
                                  uint64_t after_seq, std::size_t limit) = 0;

  /// The device's queue figures (scans the device's queue: diagnostics).
  virtual result<DeviceStats> device_stats(std::string_view app_id, std::string_view device_id) = 0;

  /// Size figures of the store.
  virtual result<StoreStats> stats() = 0;

  /// The value last saved under `name` by a write, or nullopt.
  virtual result<std::optional<int64_t>> checkpoint(std::string_view name) = 0;

  /// fsyncs the WAL: everything written so far survives a machine crash.
  virtual result<void> sync_wal() = 0;

  /// Flushes memtables to table files (shortens recovery).
  virtual result<void> flush() = 0;

  /// Compacts the whole store now; the TTL filter drops expired entries.
  virtual result<void> compact() = 0;

  /// Flushes and closes the database; later calls fail with store_errc::closed.
  /// Idempotent. The destructor closes too.
  virtual result<void> close() = 0;

  /// Conveniences over apply().
  result<StoreResult> store(std::span<const pushgw::bus::v1::DeliveryRecord> records,
                            const WriteOptions& options = {});
  result<AckResult> ack(std::span<const AckRequest> acks, const WriteOptions& options = {});
  result<AckResult> ack_seqs(std::string_view app_id, std::string_view device_id,
                             std::vector<uint64_t> seqs);
  result<AckResult> ack_ids(std::string_view app_id, std::string_view device_id,
                            std::vector<std::string> message_ids);
  result<AckResult> ack_up_to(std::string_view app_id, std::string_view device_id,
                              uint64_t up_to_seq);
};

}  // namespace pushgw::msg_store
