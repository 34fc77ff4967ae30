#pragma once
/// push-api as one object: loads the apps file, builds the Kafka producer and
/// the status store client from PushApiConfig, creates the bus topics it
/// produces to, and runs the HTTP API (HttpServer + Api) and, if enabled,
/// the common admin listener. main.cc and the integration tests both use it.
///
/// Threads: everything runs on the executor given at construction (run it
/// on PushApiConfig::threads threads), HTTP connections too unless
/// ServiceOptions::session_executors names single-threaded executors for
/// them (main.cc: a common::IoPool); the producer has its own poll thread.
/// start() and stop() block: call them from a thread that is not running the
/// executor.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/metrics.h"
#include "push_api/api.h"
#include "push_api/config.h"

namespace pushgw::push_api {

struct ServiceOptions {
  /// Served on /metrics; created ("push-api") when empty.
  std::shared_ptr<common::Metrics> metrics;
  const Clock* clock = &SystemClock::instance();
  /// Single-threaded executors (common::IoPool) HTTP connections are spread
  /// over without a strand; empty: strands of the service's executor.
  std::vector<boost::asio::any_io_executor> session_executors;
};

class Service {
 public:
  Service(boost::asio::any_io_executor ex, PushApiConfig cfg, ServiceOptions options = {});
  /// Calls stop().
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  /// Builds the clients and starts listening. Errors (apps file, bad URL,
  /// port in use, unreadable bootstrap file) are logged and returned; Redis
  /// or Kafka being down is not an error here (readiness reports it).
  result<void> start();
  /// Bound ports (after start()); admin_port() is 0 when the admin listener is off.
  uint16_t port() const;
  uint16_t admin_port() const;

  /// Graceful stop (SIGTERM): stop accepting, let requests in progress
  /// finish within shutdown_grace_ms, close the listeners.
  boost::asio::awaitable<void> shutdown();
  /// Closes listeners, flushes and closes the producer, closes the status
  /// store client, and waits (bounded) for connections to end. Idempotent.
  void stop();

  const PushApiConfig& config() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace pushgw::push_api
