#pragma once
/// The bus producer interface. The Kafka implementation is built with
/// make_kafka_producer() (common/bus/kafka.h).
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/bus/types.h"
#include "common/error.h"

namespace pushgw::bus {

/// Publishes records durably.
///
/// Delivery semantics: a produce completes only when the record's delivery
/// report arrives, i.e. after the brokers acknowledged it with acks=all on an
/// idempotent producer (no duplicates from internal retries, per-partition
/// order kept). Success is never reported for a record that was not
/// acknowledged; a failed or unknown outcome (timeout, shutdown) is an error,
/// so callers can treat "success" as "durable" and anything else as "not
/// done, retry or fail upstream".
///
/// Threads: produce() and produce_batch() may be called from any coroutine on
/// any executor, concurrently. Each completes on the executor of the coroutine
/// that awaits it (the delivery report is handed off with asio::post).
/// Cancelling the awaiting coroutine does not cancel a record already handed
/// to Kafka; its outcome is then simply not observed.
///
/// Lifetime: close() (or the destructor) completes every pending produce,
/// with errc::shutting_down for records without a report. Close the producer
/// before destroying the executors its callers run on.
class Producer {
 public:
  virtual ~Producer() = default;

  /// Produces one record; completes on its delivery report.
  /// Errors: errc::timeout (message timeout expired: broker down or
  /// unreachable), errc::queue_full (local queue full, see QueueFullPolicy),
  /// errc::shutting_down (closed, or purged on close: outcome unknown),
  /// errc::rejected (broker refused it permanently, or the idempotent producer
  /// hit a fatal error), errc::invalid_argument (bad topic / partition /
  /// record too large).
  virtual boost::asio::awaitable<result<Delivered>> produce(std::string topic, std::string key,
                                                            std::string value,
                                                            std::vector<Header> headers = {}) = 0;

  /// Produces one record given as an OutRecord (explicit partition allowed).
  virtual boost::asio::awaitable<result<Delivered>> produce(OutRecord record) = 0;

  /// Produces many records at once; completes when every record has its
  /// delivery report. The i-th result belongs to the i-th record. Records to
  /// the same partition keep their order.
  virtual boost::asio::awaitable<std::vector<result<Delivered>>> produce_batch(
      std::vector<OutRecord> records) = 0;

  /// Blocks the calling thread until every queued record has a delivery
  /// report, or `timeout` passes (errc::timeout). Never call it on an I/O
  /// thread: it is for shutdown paths and tools.
  virtual result<void> flush(std::chrono::milliseconds timeout) = 0;

  /// Stops accepting records (new produces fail with errc::shutting_down),
  /// flushes for up to `flush_timeout`, purges what is left (those produces
  /// complete with errc::shutting_down), stops the poll thread and releases
  /// the Kafka handle. Blocking, idempotent; the destructor calls it with a
  /// short timeout if the owner did not.
  virtual void close(std::chrono::milliseconds flush_timeout) = 0;

  /// The fatal error of the idempotent producer, if one happened (for example
  /// a sequence desynchronisation with the broker). After a fatal error every
  /// produce fails with errc::rejected; the owner should report unhealthy and
  /// restart the producer.
  virtual std::optional<std::string> fatal_error() const = 0;

  /// Records handed to librdkafka whose delivery report has not arrived yet.
  virtual std::size_t in_flight() const = 0;
};

}  // namespace pushgw::bus
