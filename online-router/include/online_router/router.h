#pragma once
/// The online router: consumes push requests of one traffic class, resolves
/// where each target is in the status store, assigns per-device seqs and
/// produces delivery records to the owning nodes' topics and to the offline
/// store. See online-router/README.md for the guarantees.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/error.h"
#include "common/metrics.h"
#include "online_router/config.h"

namespace pushgw::online_router {

struct RouterOptions {
  /// Where router, bus and Redis metrics are registered; a private registry
  /// when empty.
  std::shared_ptr<common::Metrics> metrics;
  /// Wall clock for expiry and counters (must outlive the router).
  const Clock* clock = &SystemClock::instance();
  /// Called once (on the router's strand) when the router stops by itself
  /// after a fatal Kafka error; the owner should shut down and exit non-zero.
  std::function<void(std::string reason)> on_fatal;
};

/// Monotonic totals since start (for tests, benches and logs).
struct RouterStats {
  uint64_t consumed = 0;      ///< input records handed out by the consumer
  uint64_t batches = 0;       ///< batches routed (non-empty)
  uint64_t completed = 0;     ///< input records marked processed
  uint64_t online = 0;        ///< unicast records produced to a node's topic
  uint64_t stored = 0;        ///< records produced to pushgw.offline
  uint64_t expired = 0;       ///< messages dropped as expired (incl. ttl 0 offline)
  uint64_t fanned_out = 0;    ///< topic/broadcast records produced (one per node)
  uint64_t unknown_node = 0;  ///< unicast targets whose node was not live
  uint64_t bad_records = 0;   ///< undecodable / too new / invalid inputs skipped
  uint64_t produce_retries = 0;
  uint64_t store_retries = 0;
  uint64_t counter_failures = 0;
  uint64_t in_flight = 0;  ///< batches awaiting delivery reports now
};

/// Lifecycle: construct, start(), then shutdown() (or stop()) before the
/// executor's io_context goes away. Internals are shared with the router's
/// coroutines, so nothing dangles if the object is destroyed while a
/// coroutine is still finishing.
///
/// Threads: the routing loop (decode, lookups, planning) runs on one strand
/// of `ex`, the completions (produce, delivery reports, marking processed,
/// counters) on a second one; the Redis client runs on its own strand of
/// `ex`; librdkafka has its own threads (posting back). With two or more
/// threads on `ex`, planning, producing and Redis I/O overlap.
class Router {
 public:
  Router(boost::asio::any_io_executor ex, RouterConfig cfg, RouterOptions options = {});
  /// Calls stop() if the router was started and not shut down.
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  /// Builds the Kafka clients and the status store, checks the topics
  /// (bounded by kafka.ensure_topics_timeout_ms), subscribes and starts
  /// routing in the background. Blocking (startup only). Errors:
  /// errc::invalid_argument (bad Redis URL, Kafka config, missing
  /// bootstrap file), errc::invalid_argument if called twice.
  /// An unreachable Redis or Kafka is not an error here: the router waits and
  /// reports not ready.
  result<void> start();

  /// Stops consuming, waits up to drain_timeout for in-flight batches to be
  /// acknowledged, commits processed offsets, leaves the group and closes the
  /// clients. Idempotent; completes when done.
  boost::asio::awaitable<void> shutdown();
  /// shutdown() for callers outside the router's io_context threads.
  void stop();

  /// Store reachable, consumer subscribed and no fatal error.
  bool ready() const;
  RouterStats stats() const;
  /// The fatal Kafka error that stopped the router, if any.
  std::optional<std::string> fatal_error() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace pushgw::online_router
