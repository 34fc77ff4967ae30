#pragma once
// NodeCore: the node-wide half of conn-node (everything that is not one
// link): listeners, workers, the session directory, the status store, the
// Kafka producer and delivery consumer, drain. conn_node::Node is its public
// face.
//
// Threads: node-wide state (the directory of sessions, drain state, the
// accept-rate bucket) lives on `strand_`, a strand of the control executor.
// Links call in from worker threads through the methods below, which hop to
// the strand (and back, for awaitables). Immutable members (config, apps,
// metrics, TLS context) are read from any thread.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/auth/apps.h"
#include "common/bus/types.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/metrics.h"
#include "conn_node/config.h"
#include "conn_node/node.h"
#include "conn_node/send_queue.h"
#include "conn_node/token_bucket.h"
#include "node_metrics.h"
#include "proto/bus.pb.h"
#include "proto/pushgw.pb.h"

namespace pushgw::bus {
class Producer;
class Consumer;
}  // namespace pushgw::bus

namespace pushgw::status_store {
class RedisStatusStore;
}

namespace pushgw::conn_node {

class Worker;
class Listener;
class TlsContext;

/// Who a session is, as the node-wide side needs it.
struct SessionInfo {
  std::string app_id;
  std::string device_id;
  std::string user_id;
  std::string session_id;
  v1::Platform platform = v1::PLATFORM_UNSPECIFIED;
  uint64_t last_seq = 0;
  ListenerKind listener = ListenerKind::kTcp;
  unsigned worker = 0;
  uint64_t link_id = 0;
};

/// The answer to a Hello that passed the token check.
struct Admission {
  v1::ErrorCode error = v1::ERROR_UNSPECIFIED;  // ERROR_UNSPECIFIED: admitted
  std::string message;
  uint64_t epoch = 0;
};

struct UpstreamOutcome {
  bool accepted = false;
  std::string reason;
};

class NodeCore {
 public:
  NodeCore(boost::asio::any_io_executor control, NodeConfig cfg, NodeOptions options);
  ~NodeCore();
  NodeCore(const NodeCore&) = delete;
  NodeCore& operator=(const NodeCore&) = delete;

  // Lifecycle (see conn_node::Node). drain() and shutdown() run on strand().
  result<void> start();
  boost::asio::awaitable<void> drain(bool fast);
  boost::asio::awaitable<void> shutdown();
  boost::asio::strand<boost::asio::any_io_executor>& strand() { return strand_; }
  void stop();
  NodeStats stats() const;
  uint16_t port(ListenerKind k) const;
  common::Metrics& process_metrics() { return *process_metrics_; }

  // Immutable after start(); any thread.
  const NodeConfig& cfg() const { return cfg_; }
  const auth::AppRegistry& apps() const { return apps_; }
  const Clock& clock() const { return *options_.clock; }
  NodeMetrics& metrics() { return *metrics_; }
  const TlsContext* tls() const { return tls_.get(); }
  const std::string& node_id() const { return cfg_.node_id; }
  uint64_t heartbeat_timeout_ms() const;
  bool draining() const { return draining_.load(std::memory_order_relaxed); }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  /// A new session id, unique across nodes and restarts.
  std::string new_session_id();

  // Called by links (worker threads).
  /// Registers the session (status store epoch, directory, replacement of an
  /// older session, presence CONNECTED). Completes on the caller's executor.
  boost::asio::awaitable<Admission> admit(SessionInfo info);
  /// A registered session ended: directory, status store (epoch-fenced),
  /// topic counts, presence DISCONNECTED (not for a replaced session).
  /// Started at once, in call order; does not wait.
  void session_closed(SessionInfo info, uint64_t epoch, std::vector<std::string> topics,
                      bool replaced);
  /// Publishes one Upstream (dedup, Kafka). Runs on the caller's executor.
  boost::asio::awaitable<UpstreamOutcome> upstream(SessionInfo info, v1::Upstream up);
  /// Publishes an AckEvent; does not wait.
  /// Counts a Push written to a link (delivered) or acked by its device, for
  /// GET /v1/messages/{id}; written to the status store in batches. Any thread.
  void count_delivered(const std::string& message_id);
  void count_acked(const std::string& message_id);
  void publish_ack(bus::v1::AckEvent event);
  /// Applies one link's subscription changes to the status store's topic
  /// counts, in call order; `done` (may be empty) runs on the strand after.
  void change_topics(std::string app_id, std::vector<std::string> added,
                     std::vector<std::string> removed, std::function<void()> done);
  /// A Redirect to other live, non-draining nodes (same listener kind).
  v1::Redirect redirect_for(ListenerKind kind, const std::string& reason) const;

  // Counters (any thread).
  bool at_capacity() const;
  void socket_opened() { sockets_.fetch_add(1, std::memory_order_relaxed); }
  void socket_closed() { sockets_.fetch_sub(1, std::memory_order_relaxed); }
  void link_opened(ListenerKind kind);
  void link_gone(ListenerKind kind);

  // Listeners (strand).
  /// Milliseconds until the next accept is allowed (0: now, token taken).
  uint64_t accept_wait_ms();
  Worker& next_worker();

 private:
  struct DirEntry {
    unsigned worker = 0;
    uint64_t link_id = 0;
    uint64_t epoch = 0;
    ListenerKind listener = ListenerKind::kTcp;
    std::string session_id;
    std::string user_id;
    v1::Platform platform = v1::PLATFORM_UNSPECIFIED;
    uint64_t connected_at_ms = 0;
  };
  struct PeerNode {
    std::string node_id;
    std::array<std::string, kListenerKinds> endpoints;
    uint64_t connections = 0;
  };
  /// One thing to do to links of one worker (delivery, replacement, drain).
  struct LinkOp {
    enum class Kind : uint8_t { kUnicast, kFanOut, kReplayComplete, kClose, kRedirect };
    Kind kind = Kind::kUnicast;
    Lane lane = Lane::kNormal;
    uint64_t link_id = 0;
    uint64_t epoch = 0;  // kClose: close only if the link's epoch is below; replay: its epoch
    uint64_t seq = 0;    // kUnicast: seq; kReplayComplete: highest_seq
    uint64_t after_seq = 0;  // kUnicast (live): wait for this seq first
    bool ack_required = false;
    bool replay = false;
    v1::ErrorCode code = v1::ERROR_UNSPECIFIED;
    std::shared_ptr<const std::string> frame;
    std::string app_id;
    std::string topic;      // kFanOut: empty = broadcast
    std::string message_id;
  };

  static std::string dir_key(std::string_view app, std::string_view device);
  static boost::asio::awaitable<void> apply_ops(Worker* worker, std::vector<LinkOp> ops);
  /// Runs `ops` on their workers; completes when every worker has applied its share.
  boost::asio::awaitable<void> run_ops(std::vector<std::vector<LinkOp>> per_worker);
  void post_ops(unsigned worker, std::vector<LinkOp> ops);

  boost::asio::awaitable<Admission> admit_on_strand(SessionInfo info);
  boost::asio::awaitable<void> closed_on_strand(SessionInfo info, uint64_t epoch,
                                                std::vector<std::string> topics, bool replaced);
  boost::asio::awaitable<void> topics_on_strand(std::string app_id,
                                                std::vector<std::string> added,
                                                std::vector<std::string> removed);
  void publish_presence(const SessionInfo& info, uint64_t epoch, bool connected);
  void produce_detached(std::string topic, std::string key, std::string value);
  static boost::asio::awaitable<void> produce_one(NodeCore* self, bus::OutRecord record);
  boost::asio::awaitable<result<std::optional<std::string>>> get_idempotency(std::string app_id,
                                                                            std::string key);

  boost::asio::awaitable<void> delivery_loop();
  boost::asio::awaitable<void> deliver_batch(const std::vector<bus::Record>& records);
  boost::asio::awaitable<void> lease_loop();
  boost::asio::awaitable<void> refresh_leases();
  boost::asio::awaitable<void> registry_loop();
  boost::asio::awaitable<result<void>> register_node();
  boost::asio::awaitable<void> refresh_peers();
  boost::asio::awaitable<void> redirect_all(double rate,
                                            std::chrono::steady_clock::time_point deadline);
  /// Sleeps on a loop timer; false when the node stops.
  boost::asio::awaitable<bool> sleep(boost::asio::steady_timer& timer,
                                     std::chrono::milliseconds d);

  boost::asio::awaitable<void> counters_loop();
  boost::asio::awaitable<void> flush_counters();
  boost::asio::awaitable<result<void>> start_async();
  boost::asio::awaitable<void> stop_async();
  void release_resources();

  boost::asio::any_io_executor control_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  NodeConfig cfg_;
  NodeOptions options_;
  std::shared_ptr<common::Metrics> process_metrics_;
  auth::AppRegistry apps_;
  std::unique_ptr<NodeMetrics> metrics_;
  std::unique_ptr<TlsContext> tls_;
  std::unique_ptr<status_store::RedisStatusStore> store_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::string deliver_topic_;
  uint64_t capacity_ = 0;
  std::atomic<uint64_t> sockets_{0};
  std::array<std::atomic<uint64_t>, kListenerKinds> sessions_{};
  std::atomic<unsigned> next_worker_{0};
  std::atomic<bool> draining_{false};
  std::shared_ptr<std::atomic<uint64_t>> delivery_partitions_ =
      std::make_shared<std::atomic<uint64_t>>(0);
  std::atomic<bool> stopping_{false};
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t> session_counter_{0};
  uint64_t session_salt_ = 0;

  // Strand only.
  std::unordered_map<std::string, DirEntry> directory_;
  TokenBucket accept_bucket_;
  boost::asio::steady_timer lease_timer_;
  boost::asio::steady_timer registry_timer_;
  boost::asio::steady_timer counters_timer_;
  int loops_running_ = 0;
  int pending_ops_ = 0;  // session_closed / change_topics coroutines in flight
  bool drain_running_ = false;

  // Per-message delivered/acked counts not yet written to the status store
  // (any thread adds; the counters loop takes them). Bounded: beyond
  // kMaxPendingCounters messages, counts are dropped and counted in a metric.
  struct PendingCount {
    int64_t delivered = 0;
    int64_t acked = 0;
  };
  std::mutex counters_mu_;
  std::unordered_map<std::string, PendingCount> pending_counts_;

  // Peers for Redirect (refreshed by the registry loop).
  mutable std::mutex peers_mu_;
  std::vector<PeerNode> peers_;
};

}  // namespace pushgw::conn_node
