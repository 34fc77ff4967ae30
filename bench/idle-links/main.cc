// bench_idle_links: how much memory one conn-node process spends per idle,
// authenticated and registered link, and how fast links are set up, for
// plain TCP and for TLS.
//
// It starts its own redis-server (free port), a kafka-dev-broker and, per
// run, a fresh conn-node process; opens N links with valid Hellos (tokens
// minted with the device secret of app "demo"), checks in the status store
// that every device is registered on the node, lets the node settle, and
// reads VmRSS of the conn-node process before and after. The TLS run also
// times bursts of full and of resumed handshakes. Prints one table with the
// targets beside the figures. Not a test: nothing here gates CI.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/auth/apps.h"
#include "common/auth/device_token.h"
#include "common/redis/client.h"
#include "common/redis/config.h"
#include "pushgw_client/device.h"
#include "pushgw_client/link.h"
#include "status_store/redis_status_store.h"
#include "testsupport/ports.h"
#include "testsupport/process.h"
#include "testsupport/redis_server.h"
#include "testsupport/temp_dir.h"

namespace pushgw::bench {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kApp = "demo";

struct Options {
  size_t links = 15000;
  unsigned client_threads = 2;
  size_t inflight = 256;
  size_t handshake_burst = 3000;
  std::vector<std::string> runs = {"tcp", "tls"};
  std::string conn_node = PUSHGW_BINARY_DIR "/conn-node/conn-node";
  std::string kafka_broker = PUSHGW_BINARY_DIR "/tools/kafka-dev-broker/kafka-dev-broker";
  std::string apps_file;
  unsigned node_threads = 0;
  int settle_ms = 3000;
  bool keep_dir = false;
  std::string node_log_level = "warn";
};

void say(const std::string& line) { std::cerr << "[bench] " << line << std::endl; }

uint64_t unix_s() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

/// VmRSS of `pid` in KiB (0 when unreadable).
uint64_t vm_rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

uint64_t own_rss_kib() { return vm_rss_kib(::getpid()); }

/// Soft fd limit raised to the hard one; returns the new soft limit.
rlim_t raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

/// Status code of GET http://127.0.0.1:port/path (0 when nothing answered).
int http_status(uint16_t port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int status = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string req =
        "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[64] = {};
      const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      if (n > 12 && std::string_view(buf, 5) == "HTTP/") status = std::atoi(buf + 9);
    }
  }
  ::close(fd);
  return status;
}

std::string tail_of(const std::filesystem::path& file, size_t bytes = 3000) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

std::string random_hex(size_t bytes) {
  std::random_device rd;
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", rd() & 0xFF);
    out += b;
  }
  return out;
}

/// Runs `task` on a private io_context of the calling thread, bounded.
template <class T>
std::optional<T> run_here(asio::io_context& ioc, asio::awaitable<T> task,
                          std::chrono::milliseconds limit) {
  auto out = std::make_shared<std::optional<T>>();
  auto done = std::make_shared<bool>(false);
  asio::co_spawn(ioc, std::move(task), [out, done](std::exception_ptr e, T v) {
    if (!e) out->emplace(std::move(v));
    *done = true;
  });
  ioc.restart();
  const auto deadline = SteadyClock::now() + limit;
  while (!*done && SteadyClock::now() < deadline) ioc.run_one_for(deadline - SteadyClock::now());
  return *out;
}

/// Client threads: one io_context each; links live on the thread that opened them.
class ClientPool {
 public:
  explicit ClientPool(unsigned threads) {
    for (unsigned i = 0; i < threads; ++i) workers_.push_back(std::make_unique<Worker>());
    for (auto& w : workers_) {
      Worker* wp = w.get();
      w->thread = std::thread([wp] { wp->ioc.run(); });
    }
  }
  ~ClientPool() {
    close_all();
    for (auto& w : workers_) {
      w->guard.reset();
      w->ioc.stop();
      w->thread.join();
    }
  }

  struct Job {
    client::Endpoint endpoint;
    client::ConnectOptions options;
    std::vector<std::string> device_ids;  // empty: handshake only (connect, then close)
    std::vector<std::string> tokens;
    size_t count = 0;
    std::atomic<size_t> next{0};
    std::atomic<size_t> ok{0};
    std::atomic<size_t> failed{0};
    std::atomic<size_t> resumed{0};
    std::atomic<size_t> finished_workers{0};
    std::mutex mu;
    std::string first_error;

    void note_error(const std::string& e) {
      std::lock_guard lock(mu);
      if (first_error.empty()) first_error = e;
    }
  };

  /// Opens job.count links with `inflight` attempts in flight over all
  /// threads; returns the seconds it took.
  double run(Job& job, size_t inflight) {
    const size_t per_thread = std::max<size_t>(1, inflight / workers_.size());
    std::atomic<size_t> pending{workers_.size() * per_thread};
    const auto start = SteadyClock::now();
    for (auto& w : workers_) {
      for (size_t i = 0; i < per_thread; ++i) {
        asio::co_spawn(w->ioc, opener(&job, w.get()), [&pending](std::exception_ptr e) {
          if (e) {
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& ex) {
              say(std::string("opener: escaped exception: ") + ex.what());
            }
          }
          pending.fetch_sub(1);
        });
      }
    }
    size_t last_report = 0;
    while (pending.load() > 0) {
      std::this_thread::sleep_for(20ms);
      const size_t done = job.ok.load() + job.failed.load();
      if (done >= last_report + 5000) {
        last_report = done - done % 5000;
        say("  " + std::to_string(done) + " / " + std::to_string(job.count));
      }
    }
    return std::chrono::duration<double>(SteadyClock::now() - start).count();
  }

  size_t held() const {
    size_t n = 0;
    for (auto& w : workers_) n += w->held.load();
    return n;
  }

  /// Closes and drops every held link (on their threads) and waits.
  void close_all() {
    std::atomic<size_t> pending{workers_.size()};
    for (auto& w : workers_) {
      asio::co_spawn(w->ioc, close_worker(w.get()),
                     [&pending](std::exception_ptr) { pending.fetch_sub(1); });
    }
    while (pending.load() > 0) std::this_thread::sleep_for(5ms);
  }

 private:
  struct Worker {
    asio::io_context ioc{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(ioc);
    std::vector<client::Device> devices;
    std::atomic<size_t> held{0};
    std::thread thread;
  };

  static asio::awaitable<void> opener(Job* job, Worker* w) {
    auto ex = co_await asio::this_coro::executor;
    for (;;) {
      const size_t i = job->next.fetch_add(1);
      if (i >= job->count) co_return;
      bool done = false;
      for (int attempt = 0; attempt < 3 && !done; ++attempt) {
        auto link = co_await client::Link::connect(ex, job->endpoint, job->options);
        if (!link) {
          job->note_error("connect: " + link.error().message());
          continue;
        }
        if ((*link)->tls_resumed()) job->resumed.fetch_add(1);
        if (job->device_ids.empty()) {
          co_await (*link)->close();
          done = true;
          break;
        }
        client::Device device(std::move(*link));
        client::HelloOptions ho;
        ho.timeout = 30s;
        ho.platform = v1::ANDROID;
        auto reply = co_await device.hello(kApp, job->device_ids[i], job->tokens[i], 0, {}, ho);
        if (!reply) {
          job->note_error("hello: " + reply.error().message());
          co_await device.close();
          continue;
        }
        if (!reply->accepted()) {
          job->note_error("hello refused: " + (reply->error ? reply->error->ShortDebugString()
                                                            : reply->redirect->ShortDebugString()));
          co_await device.close();
          continue;
        }
        w->devices.push_back(std::move(device));
        w->held.fetch_add(1);
        done = true;
      }
      (done ? job->ok : job->failed).fetch_add(1);
    }
  }

  static asio::awaitable<void> close_worker(Worker* w) {
    for (auto& d : w->devices) co_await d.close();
    w->devices.clear();
    w->devices.shrink_to_fit();
    w->held.store(0);
  }

  std::vector<std::unique_ptr<Worker>> workers_;
};

/// Devices of `ids` that the status store shows online on `node_id`.
asio::awaitable<result<size_t>> count_registered(status_store::StatusStore* store,
                                                 std::string node_id,
                                                 std::vector<std::string> ids) {
  size_t n = 0;
  for (size_t at = 0; at < ids.size(); at += 1000) {
    std::vector<std::string> batch(
        ids.begin() + static_cast<long>(at),
        ids.begin() + static_cast<long>(std::min(ids.size(), at + 1000)));
    auto r = co_await store->lookup(kApp, std::move(batch));
    if (!r) co_return r.error();
    for (const auto& s : *r) {
      if (s && s->node_id == node_id) ++n;
    }
  }
  co_return n;
}

asio::awaitable<result<uint64_t>> node_connections(status_store::StatusStore* store,
                                                   std::string node_id) {
  auto nodes = co_await store->list_nodes();
  if (!nodes) co_return nodes.error();
  for (const auto& n : *nodes) {
    if (n.node_id == node_id) co_return n.connections;
  }
  co_return uint64_t{0};
}

struct RunResult {
  std::string name;
  size_t links = 0;
  size_t failed = 0;
  double links_per_s = 0;
  uint64_t rss_before_kib = 0;
  uint64_t rss_after_kib = 0;
  size_t registered = 0;
  uint64_t node_connections = 0;
  double client_kib_per_link = 0;
  std::optional<double> full_hs_per_s;
  std::optional<double> resumed_hs_per_s;
  size_t resumed_in_burst = 0;
  size_t burst = 0;
  std::string tls_version;
  std::string first_error;

  double kib_per_link() const {
    return links == 0 ? 0.0
                      : (static_cast<double>(rss_after_kib) - static_cast<double>(rss_before_kib)) /
                            static_cast<double>(links);
  }
};

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)), dir_("pushgw-bench-idle") {}

  int run() {
    const int rc = run_all();
    if (o_.keep_dir) {
      // Moved aside so the TempDir cleanup leaves it alone.
      const std::string kept = dir_.path().string() + "-kept";
      std::error_code ec;
      std::filesystem::rename(dir_.path(), kept, ec);
      say("files kept in " + (ec ? dir_.path().string() + " (" + ec.message() + ")" : kept));
    }
    return rc;
  }

 private:
  int run_all() {
    const rlim_t fds = raise_fd_limit();
    const size_t need = o_.links + o_.inflight + 200;
    if (fds < need) {
      say("fd limit " + std::to_string(fds) + " is below " + std::to_string(need) +
          "; lowering --links");
      o_.links = fds > o_.inflight + 200 ? fds - o_.inflight - 200 : 1;
    }
    for (const auto& bin : {o_.conn_node, o_.kafka_broker}) {
      if (!std::filesystem::exists(bin)) {
        std::cerr << "missing binary " << bin
                  << " (build targets conn-node and kafka-dev-broker, or pass --conn-node / "
                     "--kafka-broker)\n";
        return 2;
      }
    }
    if (!prepare()) return 1;
    std::vector<RunResult> results;
    for (const auto& name : o_.runs) {
      auto r = run_once(name);
      if (!r) return 1;
      results.push_back(std::move(*r));
    }
    print(results);
    return 0;
  }

  bool prepare() {
    // Device secret of app "demo": from --apps-file, or a fresh apps file.
    if (!o_.apps_file.empty()) {
      auto apps = auth::AppRegistry::load_file(o_.apps_file);
      const auto* demo = apps.find(kApp);
      if (demo == nullptr) {
        std::cerr << o_.apps_file << " has no app \"demo\"\n";
        return false;
      }
      secret_ = demo->device_secret;
      apps_file_ = o_.apps_file;
    } else {
      secret_ = random_hex(32);
      apps_file_ = dir_.file("apps.toml").string();
      std::ofstream(apps_file_) << "[[app]]\nid = \"demo\"\napi_secret = \"" << random_hex(32)
                                << "\"\ndevice_secret = \"" << secret_
                                << "\"\nupstream_channels = [\"chat\"]\n";
    }
    cert_ = dir_.file("node.crt").string();
    key_ = dir_.file("node.key").string();
    const int rc = testsupport::run_command(
        {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key_, "-out", cert_, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"},
        20s, dir_.file("openssl.log").string());
    if (rc != 0) {
      std::cerr << "openssl req failed:\n" << tail_of(dir_.file("openssl.log"));
      return false;
    }
    say("starting redis-server");
    redis_ = std::make_unique<testsupport::RedisServer>();
    say("starting kafka-dev-broker");
    const auto bootstrap = dir_.file("kafka.bootstrap");
    testsupport::SpawnOptions so;
    so.stderr_path = dir_.file("kafka-dev-broker.log").string();
    kafka_ = testsupport::Process::spawn(
        {o_.kafka_broker, "--brokers", "1", "--topics",
         "pushgw.deliver.bench-tcp:1,pushgw.deliver.bench-tls:1,pushgw.presence:1,pushgw.acks:1",
         "--bootstrap-file", bootstrap.string()},
        so);
    const auto deadline = SteadyClock::now() + 30s;
    while (!std::filesystem::exists(bootstrap)) {
      if (SteadyClock::now() > deadline || !kafka_.running()) {
        std::cerr << "kafka-dev-broker did not start:\n"
                  << tail_of(dir_.file("kafka-dev-broker.log"));
        return false;
      }
      std::this_thread::sleep_for(50ms);
    }
    bootstrap_file_ = bootstrap.string();
    return true;
  }

  std::optional<RunResult> run_once(const std::string& name) {
    const bool tls = name == "tls";
    RunResult res;
    res.name = name;
    const std::string node_id = "bench-" + name;
    const uint16_t tcp_port = testsupport::free_port();
    uint16_t tls_port = testsupport::free_port();
    while (tls_port == tcp_port) tls_port = testsupport::free_port();
    uint16_t admin_port = testsupport::free_port();
    while (admin_port == tcp_port || admin_port == tls_port) admin_port = testsupport::free_port();

    const auto config = dir_.file("conn-node-" + name + ".toml");
    {
      std::ofstream c(config);
      c << "node_id = \"" << node_id << "\"\n"
        << "apps_file = \"" << apps_file_ << "\"\n";
      if (o_.node_threads > 0) c << "threads = " << o_.node_threads << "\n";
      c << "\n[listen]\nhost = \"127.0.0.1\"\ntcp_port = " << tcp_port
        << "\ntls_port = " << tls_port << "\nws_port = 0\nwss_port = 0\n"
        << "\n[tls]\ncert_file = \"" << cert_ << "\"\nkey_file = \"" << key_ << "\"\n"
        << "\n[limits]\naccept_rate = 0.0\nhello_timeout_s = 60\nheartbeat_s = 3600\n"
        << "\n[redis]\nurl = \"" << redis_->url() << "\"\n"
        << "\n[kafka]\nbootstrap_file = \"" << bootstrap_file_ << "\"\n"
        << "\n[admin]\nbind = \"127.0.0.1\"\nport = " << admin_port << "\n"
        << "\n[log]\nlevel = \"" << o_.node_log_level << "\"\n";
    }
    const auto log = dir_.file("conn-node-" + name + ".log");
    say(name + ": starting conn-node (" + config.string() + ")");
    testsupport::SpawnOptions so;
    so.stdout_path = log.string();
    so.stderr_path = log.string();
    auto node = testsupport::Process::spawn({o_.conn_node, "--config", config.string()}, so);
    {
      const auto deadline = SteadyClock::now() + 30s;
      while (http_status(admin_port, "/readyz") != 200) {
        if (SteadyClock::now() > deadline || !node.running()) {
          std::cerr << "conn-node did not become ready on admin port " << admin_port << ":\n"
                    << tail_of(log);
          return std::nullopt;
        }
        std::this_thread::sleep_for(100ms);
      }
    }
    std::this_thread::sleep_for(1s);
    res.rss_before_kib = vm_rss_kib(node.pid());

    std::shared_ptr<client::ClientTls> client_tls;
    if (tls) {
      client::TlsOptions to;
      to.verify_peer = false;
      to.resume_sessions = false;  // every link of the idle run pays a full handshake
      client_tls = *client::ClientTls::create(to);
    }
    ClientPool pool(o_.client_threads);
    ClientPool::Job job;
    job.endpoint = client::Endpoint{tls ? client::Transport::kTls : client::Transport::kTcp,
                                    "127.0.0.1", tls ? tls_port : tcp_port};
    job.options.tls = client_tls;
    job.options.connect_timeout = 30s;
    job.options.send_timeout = 30s;
    job.options.local_address = tls ? "127.0.0.3" : "127.0.0.2";
    job.count = o_.links;
    for (size_t i = 0; i < o_.links; ++i) {
      job.device_ids.push_back("idle-" + name + "-" + std::to_string(i));
      auth::DeviceClaims claims{kApp, job.device_ids.back(), "", unix_s() + 3600};
      job.tokens.push_back(auth::mint_device_token(claims, secret_));
    }
    const uint64_t client_rss_before = own_rss_kib();
    say(name + ": opening " + std::to_string(o_.links) + " links");
    const double secs = pool.run(job, o_.inflight);
    res.links = job.ok.load();
    res.failed = job.failed.load();
    res.first_error = job.first_error;
    res.links_per_s = static_cast<double>(res.links) / secs;
    res.client_kib_per_link =
        res.links == 0
            ? 0
            : (static_cast<double>(own_rss_kib()) - static_cast<double>(client_rss_before)) /
                  static_cast<double>(res.links);
    say(name + ": " + std::to_string(res.links) + " links in " + std::to_string(secs) + " s, " +
        std::to_string(res.failed) + " failed" +
        (res.first_error.empty() ? "" : " (first error: " + res.first_error + ")"));

    // Registered = online on this node in the status store.
    {
      asio::io_context ioc;
      auto cfg = redis::ClientConfig::parse(redis_->url());
      auto rc = cfg ? redis::make_client(ioc.get_executor(), *cfg)
                    : result<std::unique_ptr<redis::Client>>(cfg.error());
      if (!rc) {
        std::cerr << "redis client: " << rc.error().message() << "\n";
        return std::nullopt;
      }
      status_store::RedisStatusStore store(std::shared_ptr<redis::Client>(std::move(*rc)));
      const auto deadline = SteadyClock::now() + 30s;
      for (;;) {
        auto n = run_here(ioc, count_registered(&store, node_id, job.device_ids), 30s);
        res.registered = n && *n ? **n : 0;
        if (res.registered >= res.links || SteadyClock::now() > deadline) break;
        std::this_thread::sleep_for(200ms);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(o_.settle_ms));
      // The node publishes its link count with its lease refresh (every
      // status.node_lease_s / 3): wait for it to catch up, a bounded while.
      const auto registry_deadline = SteadyClock::now() + 20s;
      for (;;) {
        auto conns = run_here(ioc, node_connections(&store, node_id), 10s);
        res.node_connections = conns && *conns ? **conns : 0;
        if (res.node_connections >= res.links || SteadyClock::now() > registry_deadline) break;
        std::this_thread::sleep_for(500ms);
      }
      store.client().close();
    }
    res.rss_after_kib = vm_rss_kib(node.pid());
    say(name + ": registered " + std::to_string(res.registered) + ", RSS " +
        std::to_string(res.rss_before_kib) + " -> " + std::to_string(res.rss_after_kib) + " KiB");

    if (tls) {
      // Handshake-only bursts on top of the idle links: connect, handshake, close.
      res.burst = o_.handshake_burst;
      ClientPool::Job full;
      full.endpoint = job.endpoint;
      full.options = job.options;
      full.options.local_address = "127.0.0.4";
      full.count = o_.handshake_burst;
      say("tls: " + std::to_string(full.count) + " full handshakes");
      const double full_s = pool.run(full, o_.inflight);
      res.full_hs_per_s = static_cast<double>(full.ok.load()) / full_s;

      client::TlsOptions ro;
      ro.verify_peer = false;
      auto resuming = *client::ClientTls::create(ro);
      // One link with a Hello round trip reads the server's tickets.
      ClientPool::Job warm;
      warm.endpoint = job.endpoint;
      warm.options = job.options;
      warm.options.tls = resuming;
      warm.options.local_address = "127.0.0.5";
      warm.count = 1;
      warm.device_ids = {"idle-tls-warmup"};
      warm.tokens = {
          auth::mint_device_token({kApp, "idle-tls-warmup", "", unix_s() + 3600}, secret_)};
      pool.run(warm, 1);
      ClientPool::Job resumed;
      resumed.endpoint = job.endpoint;
      resumed.options = warm.options;
      resumed.count = o_.handshake_burst;
      say("tls: " + std::to_string(resumed.count) + " resumed handshakes (" +
          std::to_string(resuming->cached_sessions()) + " cached session)");
      const double resumed_s = pool.run(resumed, o_.inflight);
      res.resumed_hs_per_s = static_cast<double>(resumed.ok.load()) / resumed_s;
      res.resumed_in_burst = resumed.resumed.load();
      if (!full.first_error.empty()) res.first_error += " | full burst: " + full.first_error;
      if (!resumed.first_error.empty()) {
        res.first_error += " | resumed burst: " + resumed.first_error;
      }
    }

    say(name + ": closing links and stopping conn-node");
    pool.close_all();
    node.terminate(20s);
    return res;
  }

  static std::string fmt(double v, int decimals = 0) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", decimals, v);
    return b;
  }

  void print(const std::vector<RunResult>& results) const {
    const RunResult* plain = nullptr;
    const RunResult* tls = nullptr;
    for (const auto& r : results) (r.name == "tls" ? tls : plain) = &r;
    auto col = [](const RunResult* r, auto f) { return r ? f(*r) : std::string("-"); };
    struct Row {
      std::string what, plain, tls, target;
    };
    std::vector<Row> rows = {
        {"links held", col(plain, [](auto& r) { return std::to_string(r.links); }),
         col(tls, [](auto& r) { return std::to_string(r.links); }), ""},
        {"links failed", col(plain, [](auto& r) { return std::to_string(r.failed); }),
         col(tls, [](auto& r) { return std::to_string(r.failed); }), "0"},
        {"registered in status store",
         col(plain, [](auto& r) { return std::to_string(r.registered); }),
         col(tls, [](auto& r) { return std::to_string(r.registered); }), "= links held"},
        {"node registry connections",
         col(plain, [](auto& r) { return std::to_string(r.node_connections); }),
         col(tls, [](auto& r) { return std::to_string(r.node_connections); }), ""},
        {"links established/s (connect+Hello+Welcome)",
         col(plain, [](auto& r) { return fmt(r.links_per_s); }),
         col(tls, [](auto& r) { return fmt(r.links_per_s) + " (full hs)"; }), "plain >= 20000"},
        {"conn-node RSS before (MiB)",
         col(plain, [](auto& r) { return fmt(static_cast<double>(r.rss_before_kib) / 1024, 1); }),
         col(tls, [](auto& r) { return fmt(static_cast<double>(r.rss_before_kib) / 1024, 1); }),
         ""},
        {"conn-node RSS after (MiB)",
         col(plain, [](auto& r) { return fmt(static_cast<double>(r.rss_after_kib) / 1024, 1); }),
         col(tls, [](auto& r) { return fmt(static_cast<double>(r.rss_after_kib) / 1024, 1); }), ""},
        {"conn-node RSS per idle link (KiB)",
         col(plain, [](auto& r) { return fmt(r.kib_per_link(), 2); }),
         col(tls, [](auto& r) { return fmt(r.kib_per_link(), 2); }), "plain <= 2, TLS <= 6"},
        {"full TLS handshakes/s (burst, connect+hs+close)", "-",
         col(tls, [](auto& r) { return r.full_hs_per_s ? fmt(*r.full_hs_per_s) : "-"; }),
         ">= 2500"},
        {"resumed TLS handshakes/s (burst)", "-",
         col(tls,
             [](auto& r) {
               return r.resumed_hs_per_s
                          ? fmt(*r.resumed_hs_per_s) + " (" + std::to_string(r.resumed_in_burst) +
                                "/" + std::to_string(r.burst) + " resumed)"
                          : std::string("-");
             }),
         ">= 10000 (DESIGN.md)"},
        {"bench client RSS per link (KiB)",
         col(plain, [](auto& r) { return fmt(r.client_kib_per_link, 2); }),
         col(tls, [](auto& r) { return fmt(r.client_kib_per_link, 2); }), ""},
    };
    std::cout << "\nbench_idle_links: one conn-node process, " << o_.links
              << " idle links per run, " << o_.client_threads
              << " client threads; client, conn-node, redis and kafka share this box ("
              << std::thread::hardware_concurrency() << " CPUs)\n\n";
    std::printf("%-48s %-22s %-30s %s\n", "measure", "plain TCP", "TLS", "target");
    for (const auto& r : rows) {
      std::printf("%-48s %-22s %-30s %s\n", r.what.c_str(), r.plain.c_str(), r.tls.c_str(),
                  r.target.c_str());
    }
    for (const auto* r : {plain, tls}) {
      if (r && !r->first_error.empty())
        std::cout << r->name << " first error: " << r->first_error << "\n";
    }
    std::cout << std::flush;
  }

  Options o_;
  testsupport::TempDir dir_;
  std::string secret_;
  std::string apps_file_;
  std::string cert_;
  std::string key_;
  std::string bootstrap_file_;
  std::unique_ptr<testsupport::RedisServer> redis_;
  testsupport::Process kafka_;
};

}  // namespace
}  // namespace pushgw::bench

int main(int argc, char** argv) {
  pushgw::bench::Options o;
  CLI::App app{"bench_idle_links: conn-node RSS per idle link and link setup rates (tcp, tls)"};
  app.add_option("--links", o.links, "idle links per run")->check(CLI::Range(1, 1'000'000));
  app.add_option("--client-threads", o.client_threads, "client threads (one io_context each)")
      ->check(CLI::Range(1, 64));
  app.add_option("--inflight", o.inflight, "link setups in flight over all client threads")
      ->check(CLI::Range(1, 100'000));
  app.add_option("--handshake-burst", o.handshake_burst,
                 "connections per TLS handshake burst (full, resumed)")
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--runs", o.runs, "runs in order: tcp, tls")
      ->delimiter(',')
      ->check(CLI::IsMember({"tcp", "tls"}));
  app.add_option("--conn-node", o.conn_node, "conn-node binary");
  app.add_option("--kafka-broker", o.kafka_broker, "kafka-dev-broker binary");
  app.add_option("--apps-file", o.apps_file,
                 "apps TOML whose app \"demo\" signs the tokens (default: a generated one)");
  app.add_option("--node-threads", o.node_threads, "conn-node worker threads (0: its default)");
  app.add_option("--settle-ms", o.settle_ms, "wait after the last registration before RSS")
      ->check(CLI::Range(0, 600'000));
  app.add_flag("--keep-dir", o.keep_dir, "keep the temp dir (configs, logs)");
  app.add_option("--node-log-level", o.node_log_level, "conn-node log.level");
  CLI11_PARSE(app, argc, argv);
  try {
    pushgw::bench::Bench bench(o);
    return bench.run();
  } catch (const std::exception& e) {
    std::cerr << "bench_idle_links: " << e.what() << "\n";
    return 1;
  }
}
