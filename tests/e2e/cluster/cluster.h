#pragma once
/// A whole pushgw cluster as real processes, for end-to-end tests: a
/// redis-server (RedisServer fixture), tools/kafka-dev-broker, two conn-nodes,
/// an online-router per class, an offline-router and push-api, on free
/// loopback ports in a TempDir, configured by generated TOML files.
///
/// The constructor starts everything and waits (bounded) for each /readyz;
/// it throws std::runtime_error with the logs' tails if something does not
/// come up. kill9()/start() crash and restart single processes with the same
/// config and ports (the offline-router keeps its RocksDB directory).
///
/// Every child gets PR_SET_PDEATHSIG (setpriv), like the RedisServer fixture:
/// create a Cluster on the test's main thread.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api_client.h"
#include "common/auth/apps.h"
#include "common/error.h"
#include "testsupport/process.h"
#include "testsupport/redis_server.h"
#include "testsupport/temp_dir.h"

namespace pushgw::e2e {

enum class Proc { kKafka, kOffline, kRouterNormal, kRouterMarketing, kConn1, kConn2, kApi };

const char* to_string(Proc p);

struct ClusterOptions {
  /// Partitions of pushgw.offline, pushgw.presence and pushgw.acks (equal:
  /// the offline-router checks it) and of the push/fanout topics.
  int partitions = 4;
  /// conn-node limits.marketing_rate (MARKETING frames per second per node).
  double marketing_rate = 20000.0;
  /// conn-node drain.rate and drain.retry_after_ms.
  double drain_rate = 20.0;
  int drain_retry_after_ms = 300;
  /// App quotas (push-api), requests per second.
  int quota_normal_rps = 20000;
  int quota_marketing_rps = 20000;
};

class Cluster {
 public:
  explicit Cluster(ClusterOptions options = {});
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  /// SIGKILL and reap (no cleanup in the process: a crash).
  void kill9(Proc p);
  /// SIGTERM, wait up to `grace`, then SIGKILL.
  void stop(Proc p, std::chrono::milliseconds grace = std::chrono::seconds(15));
  /// Starts `p` again (same config) and waits for its /readyz.
  void start(Proc p, std::chrono::seconds ready_within = std::chrono::seconds(60));
  bool running(Proc p);
  /// Polls GET /readyz on p's admin port until 200 (false after `within`).
  bool wait_ready(Proc p, std::chrono::seconds within);

  testsupport::RedisServer& redis() { return *redis_; }
  const ClusterOptions& options() const { return o_; }
  uint16_t admin_port(Proc p) const;
  /// "node-1" / "node-2" for kConn1 / kConn2.
  static std::string node_id(Proc conn);
  uint16_t tcp_port(Proc conn) const;

  const pushgw::auth::AppConfig& app() const { return app_; }
  const pushctl::ApiTarget& api_target() const { return api_; }
  /// A push API call, signed with the app's secret unless `sign` is false.
  result<pushctl::ApiResponse> call(const std::string& method, const std::string& path,
                                    const std::string& body = {}, bool sign = true,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(10))
      const;
  /// GET http://127.0.0.1:<admin port of p><path> (or POST), unsigned.
  result<pushctl::ApiResponse> admin(Proc p, const std::string& method,
                                     const std::string& path) const;

  /// The last `lines` lines of every process log (for failure messages).
  std::string logs_tail(size_t lines = 30) const;
  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  struct Child {
    std::vector<std::string> argv;
    uint16_t admin_port = 0;
    testsupport::Process process;
    int starts = 0;
    std::filesystem::path log;  // current log file
  };

  void write_configs();
  void spawn(Proc p);
  void start_kafka();
  Child& child(Proc p);
  const Child& child(Proc p) const;

  ClusterOptions o_;
  testsupport::TempDir dir_;
  std::unique_ptr<testsupport::RedisServer> redis_;
  pushgw::auth::AppConfig app_;
  pushctl::ApiTarget api_;
  std::map<Proc, Child> children_;
  std::map<Proc, uint16_t> tcp_ports_;
  std::map<Proc, uint16_t> ws_ports_;
  uint16_t api_port_ = 0;
};

}  // namespace pushgw::e2e
