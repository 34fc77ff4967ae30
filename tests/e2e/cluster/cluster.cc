#include "cluster.h"

#include <unistd.h>

#include <deque>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "testsupport/ports.h"

namespace pushgw::e2e {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kAppId = "e2e";

std::string tail_of(const std::filesystem::path& p, size_t lines) {
  std::ifstream in(p);
  if (!in) return "(no log)\n";
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (auto& l : last) out += l + "\n";
  return out;
}

std::string config_name(Proc p) { return std::string(to_string(p)) + ".toml"; }

}  // namespace

const char* to_string(Proc p) {
  switch (p) {
    case Proc::kKafka: return "kafka";
    case Proc::kOffline: return "offline-router";
    case Proc::kRouterNormal: return "router-normal";
    case Proc::kRouterMarketing: return "router-marketing";
    case Proc::kConn1: return "conn-node-1";
    case Proc::kConn2: return "conn-node-2";
    case Proc::kApi: return "push-api";
  }
  return "?";
}

std::string Cluster::node_id(Proc conn) { return conn == Proc::kConn1 ? "node-1" : "node-2"; }

Cluster::Cluster(ClusterOptions options) : o_(options), dir_("pushgw-e2e") {
  redis_ = std::make_unique<testsupport::RedisServer>();

  // Distinct free ports for every listener of the cluster.
  std::set<uint16_t> used{redis_->port()};
  auto port = [&used] {
    for (;;) {
      uint16_t p = testsupport::free_port();
      if (used.insert(p).second) return p;
    }
  };
  for (Proc p : {Proc::kOffline, Proc::kRouterNormal, Proc::kRouterMarketing, Proc::kConn1,
                 Proc::kConn2, Proc::kApi}) {
    children_[p].admin_port = port();
  }
  children_[Proc::kKafka];
  for (Proc p : {Proc::kConn1, Proc::kConn2}) {
    tcp_ports_[p] = port();
    ws_ports_[p] = port();
  }
  api_port_ = port();
  api_.host = "127.0.0.1";
  api_.port = std::to_string(api_port_);

  app_.id = kAppId;
  app_.api_secret = "e2e-api-secret";
  app_.device_secret = "e2e-device-secret";
  write_configs();

  start_kafka();
  for (Proc p : {Proc::kOffline, Proc::kRouterNormal, Proc::kRouterMarketing, Proc::kConn1,
                 Proc::kConn2, Proc::kApi}) {
    spawn(p);
  }
  for (Proc p : {Proc::kOffline, Proc::kRouterNormal, Proc::kRouterMarketing, Proc::kConn1,
                 Proc::kConn2, Proc::kApi}) {
    if (!wait_ready(p, 90s)) {
      throw std::runtime_error(std::string(to_string(p)) + " not ready within 90 s\n" +
                               logs_tail());
    }
  }
}

Cluster::~Cluster() {
  // Clients of Kafka and Redis first (they commit and unregister on SIGTERM),
  // then the infrastructure, as tools/dev-cluster.sh does. Short graces: the
  // data dies with the test anyway.
  for (Proc p : {Proc::kApi, Proc::kConn1, Proc::kConn2, Proc::kRouterNormal,
                 Proc::kRouterMarketing, Proc::kOffline, Proc::kKafka}) {
    auto& c = children_[p];
    if (c.process.pid() > 0) c.process.terminate(5s);
  }
}

void Cluster::write_configs() {
  const auto apps = dir_.file("apps.toml");
  {
    std::ofstream f(apps);
    f << "[[app]]\n"
      << "id = \"" << app_.id << "\"\n"
      << "api_secret = \"" << app_.api_secret << "\"\n"
      << "device_secret = \"" << app_.device_secret << "\"\n"
      << "quota_normal_rps = " << o_.quota_normal_rps << "\n"
      << "quota_normal_burst = " << 2 * o_.quota_normal_rps << "\n"
      << "quota_marketing_rps = " << o_.quota_marketing_rps << "\n"
      << "quota_marketing_burst = " << 2 * o_.quota_marketing_rps << "\n"
      << "upstream_channels = [\"chat\"]\n";
  }
  const std::string bootstrap = dir_.file("kafka.bootstrap").string();
  // Short group timeouts: a killed member's partitions move within seconds.
  const std::string kafka_common = "bootstrap_file = \"" + bootstrap + "\"\n" +
                                   "session_timeout_ms = 3000\n" +
                                   "heartbeat_interval_ms = 500\n";
  const std::string log = "[log]\nlevel = \"info\"\n";
  auto admin = [&](Proc p) {
    return "[admin]\nport = " + std::to_string(children_[p].admin_port) + "\n";
  };

  for (Proc p : {Proc::kConn1, Proc::kConn2}) {
    std::ofstream f(dir_.file(config_name(p)));
    f << "node_id = \"" << node_id(p) << "\"\n"
      << "threads = 1\n"
      << "apps_file = \"" << apps.string() << "\"\n"
      << "replay_wait_ms = 2000\n"
      << "[listen]\nhost = \"127.0.0.1\"\n"
      << "tcp_port = " << tcp_ports_[p] << "\n"
      << "ws_port = " << ws_ports_[p] << "\n"
      << "tls_port = 0\nwss_port = 0\n"
      << "[advertise]\nhost = \"127.0.0.1\"\n"
      << "[limits]\nheartbeat_s = 30\naccept_rate = 5000.0\n"
      << "marketing_rate = " << o_.marketing_rate << "\n"
      << "[drain]\nrate = " << o_.drain_rate << "\n"
      << "retry_after_ms = " << o_.drain_retry_after_ms << "\n"
      << "[status]\nnode_lease_s = 3\n"
      << "[redis]\nurl = \"" << redis_->url() << "\"\n"
      << "[kafka]\n"
      << kafka_common << admin(p) << log;
  }
  for (Proc p : {Proc::kRouterNormal, Proc::kRouterMarketing}) {
    std::ofstream f(dir_.file(config_name(p)));
    f << "class = \"" << (p == Proc::kRouterNormal ? "normal" : "marketing") << "\"\n"
      << "threads = 1\nbatch_size = 1000\nmax_in_flight = 4\n"
      << "[redis]\nurl = \"" << redis_->url() << "\"\n"
      << "[kafka]\n"
      << kafka_common << "topic_partitions = " << o_.partitions << "\n"
      << admin(p) << log;
  }
  {
    std::ofstream f(dir_.file(config_name(Proc::kOffline)));
    f << "[kafka]\n"
      << kafka_common << "group_id = \"pushgw-offline-router\"\n"
      << "partitions = " << o_.partitions << "\n"
      << "[store]\ndata_dir = \"" << dir_.file("offline-data").string() << "\"\n"
      << "max_per_device = 100000\nwrite_buffer_mb = 4\nblock_cache_mb = 4\nsync = true\n"
      << admin(Proc::kOffline) << log;
  }
  {
    std::ofstream f(dir_.file(config_name(Proc::kApi)));
    f << "threads = 2\n"
      << "apps_file = \"" << apps.string() << "\"\n"
      << "[listen]\nhost = \"127.0.0.1\"\nport = " << api_port_ << "\n"
      << "[redis]\nurl = \"" << redis_->url() << "\"\n"
      << "[kafka]\nbootstrap_file = \"" << bootstrap << "\"\n"
      << "produce_timeout_ms = 10000\n"
      << "topic_partitions = " << o_.partitions << "\n"
      << "[dispatch]\ncache_ms = 200\n"
      << admin(Proc::kApi) << log;
  }

  auto bin_argv = [&](const char* bin, Proc p) {
    return std::vector<std::string>{bin, "--config", dir_.file(config_name(p)).string()};
  };
  children_[Proc::kConn1].argv = bin_argv(CONN_NODE_BIN, Proc::kConn1);
  children_[Proc::kConn2].argv = bin_argv(CONN_NODE_BIN, Proc::kConn2);
  children_[Proc::kRouterNormal].argv = bin_argv(ONLINE_ROUTER_BIN, Proc::kRouterNormal);
  children_[Proc::kRouterMarketing].argv = bin_argv(ONLINE_ROUTER_BIN, Proc::kRouterMarketing);
  children_[Proc::kOffline].argv = bin_argv(OFFLINE_ROUTER_BIN, Proc::kOffline);
  children_[Proc::kApi].argv = bin_argv(PUSH_API_BIN, Proc::kApi);
  const std::string n = std::to_string(o_.partitions);
  children_[Proc::kKafka].argv = {
      KAFKA_DEV_BROKER_BIN,
      "--brokers",
      "1",
      "--topics",
      "pushgw.push.normal:" + n + ",pushgw.push.marketing:" + n + ",pushgw.fanout.normal:" + n +
          ",pushgw.fanout.marketing:" + n + ",pushgw.offline:" + n + ",pushgw.presence:" + n +
          ",pushgw.acks:" + n +
          // Created up front: the mock broker times out CreateTopics (5 s
          // each at every start of a conn-node / push-api otherwise).
          ",pushgw.deliver.node-1:" + n + ",pushgw.deliver.node-2:" + n +
          ",pushgw.upstream.chat:" + n + ",pushgw.health:1",
      "--bootstrap-file",
      bootstrap};
}

void Cluster::spawn(Proc p) {
  auto& c = children_[p];
  std::vector<std::string> argv = c.argv;
  // The child must not outlive a crashed or timed-out test (same pid: exec).
  if (::access("/usr/bin/setpriv", X_OK) == 0) {
    argv.insert(argv.begin(), {"/usr/bin/setpriv", "--pdeathsig", "KILL", "--"});
  }
  ++c.starts;
  c.log = dir_.file(std::string(to_string(p)) + "." + std::to_string(c.starts) + ".log");
  testsupport::SpawnOptions so;
  so.stdout_path = c.log.string();
  so.stderr_path = c.log.string() + ".err";
  so.cwd = dir_.path().string();
  c.process = testsupport::Process::spawn(argv, so);
}

void Cluster::start_kafka() {
  const auto bootstrap = dir_.file("kafka.bootstrap");
  std::filesystem::remove(bootstrap);
  spawn(Proc::kKafka);
  const auto deadline = Clock::now() + 30s;
  while (Clock::now() < deadline) {
    std::error_code ec;
    if (std::filesystem::exists(bootstrap, ec) && std::filesystem::file_size(bootstrap, ec) > 0) {
      return;
    }
    if (!children_[Proc::kKafka].process.running()) break;
    std::this_thread::sleep_for(50ms);
  }
  throw std::runtime_error("kafka-dev-broker did not write its bootstrap file\n" + logs_tail());
}

Cluster::Child& Cluster::child(Proc p) { return children_.at(p); }
const Cluster::Child& Cluster::child(Proc p) const { return children_.at(p); }

void Cluster::kill9(Proc p) { child(p).process.kill(); }

void Cluster::stop(Proc p, std::chrono::milliseconds grace) { child(p).process.terminate(grace); }

void Cluster::start(Proc p, std::chrono::seconds ready_within) {
  if (p == Proc::kKafka) {
    start_kafka();
    return;
  }
  spawn(p);
  if (!wait_ready(p, ready_within)) {
    throw std::runtime_error(std::string(to_string(p)) + " not ready after restart\n" +
                             logs_tail());
  }
}

bool Cluster::running(Proc p) { return child(p).process.running(); }

bool Cluster::wait_ready(Proc p, std::chrono::seconds within) {
  const auto deadline = Clock::now() + within;
  while (Clock::now() < deadline) {
    if (!child(p).process.running()) return false;
    auto r = admin(p, "GET", "/readyz");
    if (r && r->status == 200) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

uint16_t Cluster::admin_port(Proc p) const { return child(p).admin_port; }

uint16_t Cluster::tcp_port(Proc conn) const { return tcp_ports_.at(conn); }

result<pushctl::ApiResponse> Cluster::call(const std::string& method, const std::string& path,
                                           const std::string& body, bool sign,
                                           std::chrono::milliseconds timeout) const {
  pushctl::Credentials c;
  if (sign) c = pushctl::Credentials{app_.id, app_.api_secret};
  return pushctl::call_api(api_, c, method, path, body, timeout);
}

result<pushctl::ApiResponse> Cluster::admin(Proc p, const std::string& method,
                                            const std::string& path) const {
  pushctl::ApiTarget t;
  t.host = "127.0.0.1";
  t.port = std::to_string(child(p).admin_port);
  return pushctl::call_api(t, {}, method, path, "", 5s);
}

std::string Cluster::logs_tail(size_t lines) const {
  std::ostringstream out;
  for (const auto& [p, c] : children_) {
    if (c.log.empty()) continue;
    out << "---- " << to_string(p) << " (" << c.log.filename().string() << ") ----\n"
        << tail_of(c.log, lines) << tail_of(c.log.string() + ".err", lines);
  }
  return out.str();
}

}  // namespace pushgw::e2e
