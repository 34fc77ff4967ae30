#pragma once
/// A conn-node instance: device listeners (tcp, tls, ws, wss), the worker
/// threads holding the links, registration in the status store, the Kafka
/// delivery consumer and producers. Runs in-process (tests start two in one
/// process) or as the `conn-node` binary (main.cc).
///
/// Threads: the node's own control work (accept loops, the session
/// directory, Redis and Kafka calls, drain) runs on the `control` executor
/// given at construction, which the caller must keep running (e.g. an
/// IoRunner). Links run on `NodeConfig::threads` worker threads that the
/// node owns.
///
/// Lifetime: start() once, then drain() / shutdown() / stop(); the
/// destructor calls stop(). start() and stop() block: call them from a
/// thread that does not run the control executor.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <array>
#include <cstdint>
#include <memory>

#include "common/clock.h"
#include "common/error.h"
#include "common/metrics.h"
#include "conn_node/config.h"

namespace pushgw::conn_node {

class NodeCore;

struct NodeOptions {
  /// Wall clock for tokens, server_time_ms and expiry (must outlive the node).
  const Clock* clock = &SystemClock::instance();
  /// Where the node registers its metrics; null: a Metrics of its own.
  std::shared_ptr<common::Metrics> metrics;
};

/// A snapshot of a node's state (any thread).
struct NodeStats {
  /// Open sessions (Welcome sent, not closed) per listener.
  std::array<uint64_t, kListenerKinds> sessions{};
  uint64_t sessions_total = 0;
  /// Accepted sockets not closed yet (sessions plus handshakes in progress).
  uint64_t sockets = 0;
  uint64_t capacity = 0;
  bool draining = false;
  /// Partitions of pushgw.deliver.<node_id> assigned to this node's consumer.
  /// 0 right after start (the group is still forming): messages for its links
  /// wait in Kafka until then, so /readyz says not ready.
  uint64_t delivery_partitions = 0;
};

class Node {
 public:
  Node(boost::asio::any_io_executor control, NodeConfig cfg, NodeOptions options = {});
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// Loads the apps file and TLS files, raises the fd limit, connects the
  /// status store and Kafka (creating pushgw.deliver.<node_id> if missing),
  /// registers the node, binds the listeners and starts accepting. Errors
  /// (bad files, Redis or Kafka unreachable, port in use) as values; on error
  /// nothing keeps running.
  result<void> start();

  /// Drains at `drain.rate`: marks the node draining in the registry (so
  /// dispatch stops sending devices here), then sends each link a Redirect
  /// to other live nodes and closes it. Completes when no session is left.
  /// Idempotent: a second call waits for the running drain.
  boost::asio::awaitable<void> drain();
  /// Starts drain() detached (admin call, SIGUSR1); returns at once.
  void begin_drain();

  /// SIGTERM: drain at `drain.fast_rate` (bounded by drain.shutdown_grace),
  /// close what is left, unregister the node, commit consumed offsets and
  /// stop every loop. Run on the control executor.
  boost::asio::awaitable<void> shutdown();

  /// Blocking: shutdown() without the drain (links are closed at once), then
  /// stops the workers. Idempotent. Not on the control executor's thread.
  void stop();

  /// The bound port of a listener (0 when off or not started).
  uint16_t port(ListenerKind kind) const;
  NodeStats stats() const;
  common::Metrics& metrics();
  const NodeConfig& config() const;

 private:
  std::unique_ptr<NodeCore> core_;
};

}  // namespace pushgw::conn_node
