#include "testsupport/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "testsupport/ports.h"

namespace pushgw::testsupport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Minimal blocking RESP reader over a socket with an overall deadline.
class RespReader {
 public:
  RespReader(int fd, Clock::time_point deadline) : fd_(fd), deadline_(deadline) {}

  std::string read_reply() {
    std::string line = read_line();
    if (line.empty()) throw std::runtime_error("redis_command: empty reply line");
    char kind = line[0];
    std::string body = line.substr(1);
    switch (kind) {
      case '+':
        return body;
      case '-':
        return "(error) " + body;
      case ':':
        return body;
      case '$': {
        long n = std::stol(body);
        if (n < 0) return "(nil)";
        std::string data = read_exact(static_cast<std::size_t>(n) + 2);
        return data.substr(0, static_cast<std::size_t>(n));
      }
      case '*': {
        long n = std::stol(body);
        if (n < 0) return "(nil)";
        std::string out;
        for (long i = 0; i < n; ++i) {
          if (i) out += '\n';
          out += read_reply();
        }
        return out;
      }
      default:
        throw std::runtime_error("redis_command: bad reply type: " + line);
    }
  }

 private:
  void fill() {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
    if (left <= 0ms) throw std::runtime_error("redis_command: timed out");
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r == 0) throw std::runtime_error("redis_command: timed out");
    if (r < 0) {
      if (errno == EINTR) return;
      throw std::runtime_error("redis_command: poll failed");
    }
    char tmp[16384];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) throw std::runtime_error("redis_command: connection closed");
    buf_.append(tmp, static_cast<std::size_t>(n));
  }

  std::string read_line() {
    for (;;) {
      auto pos = buf_.find("\r\n");
      if (pos != std::string::npos) {
        std::string line = buf_.substr(0, pos);
        buf_.erase(0, pos + 2);
        return line;
      }
      fill();
    }
  }

  std::string read_exact(std::size_t n) {
    while (buf_.size() < n) fill();
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }

  int fd_;
  Clock::time_point deadline_;
  std::string buf_;
};

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Slot ranges -> port, from one node's CLUSTER NODES.
std::map<int, std::pair<int, int>> slot_ranges(std::uint16_t port) {
  std::map<int, std::pair<int, int>> ranges;  // first slot -> (last slot, port)
  std::istringstream lines(redis_command(port, {"CLUSTER", "NODES"}));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::vector<std::string> tok;
    for (std::string t; f >> t;) tok.push_back(t);
    if (tok.size() < 8 || tok[2].find("master") == std::string::npos) continue;
    auto addr = tok[1].substr(0, tok[1].find('@'));
    int node_port = std::stoi(addr.substr(addr.rfind(':') + 1));
    for (std::size_t i = 8; i < tok.size(); ++i) {
      if (tok[i].empty() || tok[i][0] == '[') continue;  // migrating/importing marks
      auto dash = tok[i].find('-');
      int lo = std::stoi(tok[i].substr(0, dash));
      int hi = dash == std::string::npos ? lo : std::stoi(tok[i].substr(dash + 1));
      ranges[lo] = {hi, node_port};
    }
  }
  return ranges;
}

}  // namespace

std::string redis_command(std::uint16_t port, const std::vector<std::string>& args,
                          std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  if (fd.get() < 0) throw std::runtime_error("redis_command: socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    throw std::runtime_error("redis_command: connect to port " + std::to_string(port) +
                             " failed: " + std::strerror(errno));
  }
  std::string req = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) {
    req += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  }
  std::size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = ::send(fd.get(), req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error("redis_command: send failed");
    sent += static_cast<std::size_t>(n);
  }
  RespReader reader(fd.get(), deadline);
  return reader.read_reply();
}

RedisServer::RedisServer() : RedisServer(Options{}) {}

RedisServer::RedisServer(Options options) : options_(std::move(options)), dir_("pushgw-redis") {
  std::string last_log;
  for (int attempt = 0; attempt < 6; ++attempt) {
    port_ = free_port(options_.cluster_enabled);
    launch();
    if (wait_ready(10s)) return;
    last_log = log();
    process_.kill();
  }
  throw std::runtime_error("RedisServer: redis-server did not start; last log:\n" + last_log);
}

RedisServer::~RedisServer() {
  resume();
  process_.terminate(3s);
}

std::string RedisServer::address() const { return "127.0.0.1:" + std::to_string(port_); }

std::string RedisServer::url() const { return "redis://" + address(); }

void RedisServer::launch() {
  std::vector<std::string> argv = {"redis-server",
                                   "--port",
                                   std::to_string(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--dir",
                                   dir_.path().string(),
                                   "--daemonize",
                                   "no",
                                   "--logfile",
                                   ""};
  if (options_.cluster_enabled) {
    argv.insert(argv.end(),
                {"--cluster-enabled", "yes", "--cluster-config-file",
                 "nodes-" + std::to_string(port_) + ".conf", "--cluster-node-timeout", "2000"});
  }
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  // If the test process dies without running destructors (crash, ctest
  // timeout), the server must not outlive it: setpriv (util-linux) sets
  // PR_SET_PDEATHSIG and execs redis-server under the same pid.
  if (::access("/usr/bin/setpriv", X_OK) == 0) {
    argv.insert(argv.begin(), {"/usr/bin/setpriv", "--pdeathsig", "KILL", "--"});
  }
  SpawnOptions so;
  so.stdout_path = dir_.file("redis.log").string();
  process_ = Process::spawn(argv, so);
}

bool RedisServer::wait_ready(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (!process_.running()) return false;
    try {
      if (redis_command(port_, {"PING"}, 500ms) == "PONG") return true;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

void RedisServer::kill() {
  resume();  // a stopped process is killed all the same, but wait() needs it to run
  process_.kill();
}

void RedisServer::pause() { process_.signal(SIGSTOP); }

void RedisServer::resume() { process_.signal(SIGCONT); }

void RedisServer::stop() { process_.terminate(5s); }

void RedisServer::restart() {
  process_.kill();
  launch();
  if (!wait_ready(10s)) {
    throw std::runtime_error("RedisServer: restart on port " + std::to_string(port_) +
                             " failed; log:\n" + log());
  }
}

bool RedisServer::running() { return process_.running(); }

std::string RedisServer::command(const std::vector<std::string>& args) const {
  return redis_command(port_, args);
}

std::string RedisServer::log() const { return read_file(dir_.file("redis.log")); }

RedisCluster::RedisCluster(int masters) {
  RedisServer::Options opts;
  opts.cluster_enabled = true;
  for (int i = 0; i < masters; ++i) servers_.push_back(std::make_unique<RedisServer>(opts));
  std::vector<std::string> argv = {"redis-cli", "--cluster", "create"};
  for (auto& s : servers_) argv.push_back(s->address());
  argv.insert(argv.end(), {"--cluster-replicas", "0", "--cluster-yes"});
  TempDir out("pushgw-cluster-create");
  auto log_path = out.file("create.log").string();
  int rc = run_command(argv, 60s, log_path);
  if (rc != 0) {
    throw std::runtime_error("RedisCluster: redis-cli --cluster create failed (" +
                             std::to_string(rc) + "):\n" + read_file(log_path));
  }
  wait_consistent();
}

RedisCluster::~RedisCluster() = default;

std::string RedisCluster::url() const {
  std::string u = "redis-cluster://";
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    if (i) u += ',';
    u += servers_[i]->address();
  }
  return u;
}

std::string RedisCluster::url_with_one_seed(std::size_t i) const {
  return "redis-cluster://" + servers_.at(i)->address();
}

std::string RedisCluster::node_id(std::size_t i) const {
  return servers_.at(i)->command({"CLUSTER", "MYID"});
}

std::size_t RedisCluster::owner_of(std::uint16_t slot) const {
  auto ranges = slot_ranges(servers_.front()->port());
  for (const auto& [lo, v] : ranges) {
    if (slot >= lo && slot <= v.first) {
      for (std::size_t i = 0; i < servers_.size(); ++i) {
        if (servers_[i]->port() == v.second) return i;
      }
    }
  }
  throw std::runtime_error("RedisCluster: no owner for slot " + std::to_string(slot));
}

void RedisCluster::wait_consistent(std::chrono::milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  std::string last;
  while (Clock::now() < deadline) {
    try {
      bool ok = true;
      std::map<int, std::pair<int, int>> first;
      for (std::size_t i = 0; i < servers_.size() && ok; ++i) {
        auto info = servers_[i]->command({"CLUSTER", "INFO"});
        if (info.find("cluster_state:ok") == std::string::npos ||
            info.find("cluster_slots_ok:16384") == std::string::npos) {
          ok = false;
          last = info;
          break;
        }
        auto r = slot_ranges(servers_[i]->port());
        int covered = 0;
        for (const auto& [lo, v] : r) covered += v.first - lo + 1;
        if (covered != 16384) ok = false;
        if (i == 0) {
          first = r;
        } else if (r != first) {
          ok = false;
        }
      }
      if (ok) return;
    } catch (const std::exception& e) {
      last = e.what();
    }
    std::this_thread::sleep_for(50ms);
  }
  throw std::runtime_error("RedisCluster: cluster not consistent in time; last: " + last);
}

}  // namespace pushgw::testsupport
