#pragma once
/// The bus consumer interface. The Kafka implementation is built with
/// make_kafka_consumer() (common/bus/kafka.h).
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/bus/types.h"
#include "common/error.h"

namespace pushgw::bus {

/// Partition ownership notifications. Both run on the executor given to the
/// consumer (posted from the poll thread, never called inline). A partition
/// is reported in on_revoked only after the offsets of its processed records
/// have been committed.
struct RebalanceHandlers {
  std::function<void(std::vector<TopicPartition>)> on_assigned;
  std::function<void(std::vector<TopicPartition>)> on_revoked;
};

/// A member of a consumer group that hands records to the caller in batches
/// and commits only what the caller has processed (at-least-once).
///
/// Offsets: a record's offset is stored (made committable) only when the
/// caller calls mark_processed() for it *and* for every earlier record of the
/// same partition that this consumer handed out; marks may arrive in any
/// order. Stored offsets are committed in the background
/// (ConsumerConfig::auto_commit_interval), on revoke, on close() and on
/// commit(). A crash therefore redelivers every record not yet processed (and
/// possibly some processed ones whose commit had not happened yet).
///
/// Threads: a dedicated poll thread talks to librdkafka (fetch, rebalance,
/// commits) and fills a bounded buffer; next_batch() drains it. All methods
/// are thread-safe. next_batch() completes on the executor of the awaiting
/// coroutine; only one next_batch() may be pending at a time.
///
/// Lifetime: close() before destroying the executors the consumer posts to;
/// the destructor closes (blocking) if the owner did not.
class Consumer {
 public:
  virtual ~Consumer() = default;

  /// Joins the group for these topics (a name starting with '^' is a regex).
  /// Replaces any previous subscription. errc::invalid_argument if empty or
  /// rejected by librdkafka, errc::shutting_down after close().
  virtual result<void> subscribe(std::vector<std::string> topics) = 0;

  /// Waits until at least one record is buffered or `timeout` passes, then
  /// returns up to `max` records in partition order (possibly none on
  /// timeout). Errors: errc::shutting_down once closed, errc::invalid_argument
  /// if another next_batch() is pending, errc::rejected on a fatal consumer
  /// error.
  virtual boost::asio::awaitable<result<std::vector<Record>>> next_batch(
      std::size_t max, std::chrono::milliseconds timeout) = 0;

  /// Marks records processed. Returns how many were accepted; records of a
  /// partition revoked since they were handed out are ignored (their new
  /// owner will see them again).
  virtual std::size_t mark_processed(std::span<const Record> records) = 0;
  std::size_t mark_processed(const Record& record) { return mark_processed({&record, 1}); }

  /// Commits the stored offsets now and completes when the group
  /// coordinator has acknowledged them (nothing to commit is success).
  /// Errors: errc::unavailable / errc::timeout / errc::rejected from Kafka,
  /// errc::shutting_down once closed.
  virtual boost::asio::awaitable<result<void>> commit() = 0;

  /// Commits processed offsets, leaves the group (on_revoked fires for what
  /// was owned) and stops the poll thread. Completes when done; a pending
  /// next_batch() completes with errc::shutting_down. Idempotent.
  virtual boost::asio::awaitable<void> close() = 0;

  /// The partitions currently assigned to this member.
  virtual std::vector<TopicPartition> assignment() const = 0;

  /// Fatal consumer error, if any (the consumer then stops delivering).
  virtual std::optional<std::string> fatal_error() const = 0;

  /// The end offset (high watermark: the next offset to be written) of a
  /// partition, asked of its leader. Blocking, at most `timeout`; call it off
  /// the I/O threads. Errors: errc::timeout / errc::unavailable from Kafka,
  /// errc::shutting_down once closed.
  virtual result<int64_t> end_offset(const TopicPartition& tp,
                                     std::chrono::milliseconds timeout) const = 0;
};

}  // namespace pushgw::bus
