#pragma once
/// The RocksDB implementation of MessageStore (no RocksDB type leaks out).
///
/// One RocksDB database per directory. Key layout, compaction filter and
/// recovery are described in msg-store/README.md.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>

#include "common/clock.h"
#include "common/error.h"
#include "msg_store/error.h"
#include "msg_store/message_store.h"

namespace pushgw::msg_store {

/// Test hook: while `fail_writes` is set, every file write of the database
/// fails as if the disk were full (ENOSPC). Clearing it is "space returned".
struct FaultInjection {
  std::atomic<bool> fail_writes{false};
};

struct StoreOptions {
  /// Per device: messages without a collapse key kept at most (>= 1).
  uint32_t max_per_device = 100;
  /// Per device: messages with a collapse key kept at most (>= 1).
  uint32_t max_collapsible_per_device = 100;
  /// How long an ack tombstone (acked before stored) and a device's state
  /// (watermark) are kept after the last ack. Should exceed how late a
  /// store can arrive after its ack (Kafka redelivery, consumer lag).
  std::chrono::milliseconds ack_retention{7LL * 24 * 3600 * 1000};
  /// Largest serialized Push accepted (bigger ones are kInvalid).
  uint32_t max_message_bytes = 256 * 1024;
  /// RocksDB memtable size and block cache size.
  uint64_t write_buffer_bytes = 32ULL << 20;
  uint64_t block_cache_bytes = 32ULL << 20;
  /// Devices whose queue figures (counts, highest seq) are kept in memory,
  /// so that a store needs no read of the device's state. A device not
  /// cached costs one read of its state and one scan of its queue.
  uint32_t device_cache_entries = 100'000;
  /// Background compaction/flush threads of this database.
  int background_jobs = 2;
  /// Clock deciding expiry in reads, writes and the compaction filter.
  /// Must outlive the store. nullptr: SystemClock.
  const Clock* clock = nullptr;
  /// Test hook (nullptr in production).
  std::shared_ptr<FaultInjection> faults;
};

/// Opens (creating if missing) the store in `dir`.
/// Errors: locked (another process or instance holds it), io_error /
/// no_space (cannot create or read the directory), corruption,
/// invalid_argument (bad options).
result<std::unique_ptr<MessageStore>> open_rocksdb_store(const std::filesystem::path& dir,
                                                         const StoreOptions& options);

}  // namespace pushgw::msg_store
