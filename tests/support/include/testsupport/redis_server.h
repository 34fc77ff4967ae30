#pragma once
/// Real redis-server processes for integration tests: one standalone server
/// (RedisServer) or a 3-master Redis Cluster (RedisCluster), each on free
/// loopback ports, in a temp dir, without persistence. Failures to start
/// throw std::runtime_error with the server log attached. Every wait is bounded.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "testsupport/process.h"
#include "testsupport/temp_dir.h"

namespace pushgw::testsupport {

/// A blocking one-shot RESP command over a fresh loopback connection, for
/// fixtures and test assertions (not for code under test). Returns the reply
/// rendered as text: strings and integers as is, nil as "(nil)", errors as
/// "(error) ...", arrays as their elements joined by '\n'. Throws
/// std::runtime_error on connection failure or after `timeout`.
std::string redis_command(std::uint16_t port, const std::vector<std::string>& args,
                          std::chrono::milliseconds timeout = std::chrono::seconds(2));

class RedisServer {
 public:
  struct Options {
    bool cluster_enabled = false;
    std::vector<std::string> extra_args;
  };

  /// Starts redis-server --port N --save '' --appendonly no in a temp dir and
  /// waits until PING answers (up to 10 s). Retries on another port if the
  /// server fails to bind. The server gets SIGKILL if the thread that started
  /// it exits (PR_SET_PDEATHSIG via setpriv), so a crashed or timed-out test
  /// leaves no server behind: create fixtures on the test's main thread.
  RedisServer();
  explicit RedisServer(Options options);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return port_; }
  /// "127.0.0.1:<port>".
  std::string address() const;
  /// "redis://127.0.0.1:<port>".
  std::string url() const;
  /// SIGKILL: the port stops answering at once.
  void kill();
  /// SIGSTOP / SIGCONT: the server hangs (connections stay open, nothing is
  /// answered) until resumed.
  void pause();
  void resume();
  /// SIGTERM and wait.
  void stop();
  /// Starts again on the same port (after kill() or stop()) and waits for PING.
  void restart();
  bool running();
  /// redis_command() against this server.
  std::string command(const std::vector<std::string>& args) const;
  /// Contents of the server log (for failure messages).
  std::string log() const;

 private:
  void launch();
  bool wait_ready(std::chrono::milliseconds timeout);

  Options options_;
  TempDir dir_;
  std::uint16_t port_ = 0;
  Process process_;
};

/// Three redis-server masters with cluster-enabled, joined with
/// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`; the
/// constructor returns once every node reports cluster_state:ok and agrees
/// on all 16384 slots.
class RedisCluster {
 public:
  explicit RedisCluster(int masters = 3);
  ~RedisCluster();

  std::size_t size() const { return servers_.size(); }
  RedisServer& node(std::size_t i) { return *servers_.at(i); }
  /// "redis-cluster://127.0.0.1:p1,127.0.0.1:p2,..." (all nodes).
  std::string url() const;
  /// "redis-cluster://127.0.0.1:p" (one seed only).
  std::string url_with_one_seed(std::size_t i = 0) const;
  /// CLUSTER MYID of node i.
  std::string node_id(std::size_t i) const;
  /// Index of the node that owns `slot`, from CLUSTER SLOTS of node 0.
  std::size_t owner_of(std::uint16_t slot) const;
  /// Waits until every node reports cluster_state:ok and the same owner for every slot.
  void wait_consistent(std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;

 private:
  std::vector<std::unique_ptr<RedisServer>> servers_;
};

}  // namespace pushgw::testsupport
