#pragma once
/// One message store per owned partition, under a base directory:
/// `<base_dir>/partition-<n>`.
///
/// The offline router opens the store of a partition when the partition is
/// assigned to it and closes it when it is revoked. A database directory can
/// be open only once (RocksDB's LOCK file), so open() waits, up to
/// `open_wait`, for a previous holder to let go: an instance of this process
/// still being closed, or another process on the same disk that has not yet
/// closed the partition it lost in a rebalance.
///
/// Threads: all methods are thread-safe and blocking (disk I/O): call them
/// on the store pool. Lifetime: stores handed out keep their database open
/// until the last holder drops them, even after close(); the StoreSet itself
/// may be destroyed before them.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "common/error.h"
#include "msg_store/message_store.h"
#include "msg_store/rocksdb_store.h"

namespace pushgw::msg_store {

class StoreSet {
 public:
  /// `base_dir` is created on first open.
  StoreSet(std::filesystem::path base_dir, StoreOptions options,
           std::chrono::milliseconds open_wait = std::chrono::seconds(30));
  ~StoreSet();
  StoreSet(const StoreSet&) = delete;
  StoreSet& operator=(const StoreSet&) = delete;

  /// The open store of `partition`, opening it if needed. Errors: those of
  /// open_rocksdb_store(); store_errc::locked if the previous holder did not
  /// let go within open_wait; invalid_argument for a negative partition.
  result<std::shared_ptr<MessageStore>> open(int32_t partition);

  /// The store of `partition` if open, else nullptr.
  std::shared_ptr<MessageStore> get(int32_t partition) const;

  /// Forgets the partition's store and closes it once no holder is left
  /// (flushing the memtable first). No-op if not open.
  void close(int32_t partition);

  /// close() for every open partition.
  void close_all();

  /// Partitions open now, ascending.
  std::vector<int32_t> open_partitions() const;

  /// Where the store of `partition` lives.
  std::filesystem::path dir_of(int32_t partition) const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace pushgw::msg_store
