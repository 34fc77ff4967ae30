// bench_push_api: accepted POST /v1/push requests per second over keep-alive,
// signed connections, and their latency (p50/p99/p999).
//
//   bench_push_api                      # self-contained: private redis-server,
//                                       # in-process Kafka mock, in-process push-api
//   bench_push_api --url http://h:8080 --app demo --secret S   # an existing push-api
//
// Every request is signed (HMAC over method, path, timestamp and body hash)
// and targets one device (--devices-per-push for more), so each accepted
// request is one record acknowledged by the Kafka mock (acks=all) plus one
// Redis round trip for the message counters.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/auth/request_signature.h"
#include "common/bus/mock_cluster.h"
#include "common/log.h"
#include "common/service.h"
#include "common/spawn.h"
#include "push_api/config.h"
#include "push_api/service.h"

extern char** environ;

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  std::string url;
  std::string app = "bench";
  std::string secret = "bench-api-secret";
  unsigned connections = 64;
  unsigned client_threads = 1;
  unsigned server_threads = 2;  // push-api's default (threads = 2)
  double seconds = 5;
  double warmup = 3;  // the first second has ~1 s outliers (connection and producer start-up)
  unsigned devices_per_push = 1;
  unsigned payload_bytes = 64;
  std::string klass = "normal";
  int linger_ms = -1;  // < 0: push-api's default
};

bool port_free(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

uint16_t pick_port() {
  std::mt19937 rng(std::random_device{}());
  for (int i = 0; i < 200; ++i) {
    const auto p = static_cast<uint16_t>(20000 + rng() % 12000);
    if (port_free(p)) return p;
  }
  throw std::runtime_error("no free port");
}

// A private redis-server, stopped on exit.
class SpawnedRedis {
 public:
  SpawnedRedis()
      : port_(pick_port()),
        dir_(std::filesystem::temp_directory_path() /
             ("bench-push-api-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir_);
    std::vector<std::string> argv = {
        "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
        "--save",       "",       "--appendonly",        "no",     "--dir",
        dir_.string()};
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid_, "redis-server", &fa, nullptr, args.data(), environ) != 0) {
      throw std::runtime_error("cannot start redis-server (is it installed?)");
    }
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 200 && port_free(port_); ++i) std::this_thread::sleep_for(25ms);
  }
  ~SpawnedRedis() {
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }

 private:
  uint16_t port_;
  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

struct Shared {
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> failed{0};
  std::string first_refusal;
  std::mutex mu;
  std::set<pid_t> client_tids;  // guarded by mu
  std::atomic<int> running{0};  // client coroutines not yet finished
};

bool client_tasks_running(const Shared& s) { return s.running.load() > 0; }

struct Connection {
  std::vector<uint32_t> latencies_us;
};

std::string push_body(const Options& o, unsigned conn, uint64_t n, const std::string& payload) {
  std::string body = R"({"to":{"device_ids":[)";
  for (unsigned i = 0; i < o.devices_per_push; ++i) {
    if (i) body += ',';
    body += "\"bench-" + std::to_string(conn) + "-" + std::to_string((n + i) % 1000) + "\"";
  }
  body += R"(]},"payload":")" + payload + R"(","class":")" + o.klass + R"("})";
  return body;
}

// Each connection replays a ring of requests built and signed up front (a
// load generator, like wrk with a script): the figures are the server's, not
// the cost of building requests. Signatures are renewed well inside the 300 s
// window.
constexpr unsigned kRing = 256;
constexpr int64_t kResignAfterS = 120;

std::vector<std::string> signed_requests(const Options& o, const std::string& host, unsigned conn,
                                         const std::string& payload, int64_t ts_s) {
  const std::string ts = std::to_string(ts_s);
  std::vector<std::string> out;
  out.reserve(kRing);
  for (unsigned n = 0; n < kRing; ++n) {
    const std::string body = push_body(o, conn, n, payload);
    std::string r = "POST /v1/push HTTP/1.1\r\nHost: " + host +
                    "\r\nContent-Type: application/json\r\nX-App-Id: " + o.app +
                    "\r\nX-Timestamp: " + ts + "\r\nX-Signature: " +
                    pushgw::auth::sign_request(o.secret, "POST", "/v1/push", ts, body) +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    out.push_back(std::move(r));
  }
  return out;
}

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

asio::awaitable<void> client(Options o, std::string host, std::string port, unsigned id,
                             Shared* shared, Connection* out) {
  struct Running {
    explicit Running(Shared* s) : s(s) { ++s->running; }
    ~Running() { --s->running; }
    Shared* s;
  } running(shared);
  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  auto [rec, eps] =
      co_await resolver.async_resolve(host, port, asio::as_tuple(asio::use_awaitable));
  if (rec) {
    ++shared->failed;
    co_return;
  }
  tcp::socket socket(ex);
  auto [cec, ep] = co_await asio::async_connect(socket, eps, asio::as_tuple(asio::use_awaitable));
  if (cec) {
    ++shared->failed;
    co_return;
  }
  boost::system::error_code nodelay_ec;
  socket.set_option(tcp::no_delay(true), nodelay_ec);
  {
    std::lock_guard<std::mutex> lock(shared->mu);
    shared->client_tids.insert(::gettid());
  }
  const std::string payload(o.payload_bytes, 'p');
  int64_t signed_at = unix_seconds();
  auto ring = signed_requests(o, host, id, payload, signed_at);
  beast::flat_buffer buffer;
  uint64_t n = 0;
  while (!shared->stop.load(std::memory_order_relaxed)) {
    if (const auto now_s = unix_seconds(); now_s - signed_at > kResignAfterS) {
      signed_at = now_s;
      ring = signed_requests(o, host, id, payload, signed_at);
    }
    const auto start = Clock::now();
    auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(ring[n++ % kRing]),
                                                asio::as_tuple(asio::use_awaitable));
    if (wec) {
      ++shared->failed;
      co_return;
    }
    http::response<http::string_body> res;
    auto [ec, rn] =
        co_await http::async_read(socket, buffer, res, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      ++shared->failed;
      co_return;
    }
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
    if (!shared->measuring.load(std::memory_order_relaxed)) continue;
    if (res.result_int() == 202) {
      ++shared->accepted;
      out->latencies_us.push_back(static_cast<uint32_t>(us.count()));
    } else {
      if (shared->refused++ == 0) {
        std::lock_guard<std::mutex> lock(shared->mu);
        shared->first_refusal = std::to_string(res.result_int()) + " " + res.body();
      }
    }
  }
}

// CPU seconds (user + system) of /proc/<path>/stat: "self", "self/task/<tid>",
// "<pid>".
double cpu_seconds(const std::string& path = "self") {
  std::ifstream in("/proc/" + path + "/stat");
  if (!in) return 0;
  std::string s((std::istreambuf_iterator<char>(in)), {});
  const auto close = s.rfind(')');
  std::istringstream rest(s.substr(close + 2));
  std::string f;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15; ++i) {
    rest >> f;
    if (i == 14) utime = std::stoul(f);
    if (i == 15) stime = std::stoul(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

int run(Options o) {
  std::unique_ptr<SpawnedRedis> redis;
  std::unique_ptr<pushgw::bus::MockCluster> kafka;
  std::unique_ptr<pushgw::common::IoPool> server_io;
  std::unique_ptr<pushgw::push_api::Service> service;
  std::filesystem::path apps_file;
  std::string host = "127.0.0.1";
  std::string port;

  if (o.url.empty()) {
    redis = std::make_unique<SpawnedRedis>();
    auto k = pushgw::bus::MockCluster::start(1);
    if (!k) throw std::runtime_error("cannot start the Kafka mock: " + k.error().message());
    kafka = std::move(*k);
    for (const char* t : {"pushgw.push.normal", "pushgw.push.marketing", "pushgw.fanout.normal",
                          "pushgw.fanout.marketing", "pushgw.health"}) {
      if (!kafka->create_topic(t, 8)) throw std::runtime_error(std::string("topic ") + t);
    }
    apps_file = std::filesystem::temp_directory_path() /
                ("bench-push-api-apps-" + std::to_string(::getpid()) + ".toml");
    std::ofstream(apps_file) << "[[app]]\nid = \"" << o.app << "\"\napi_secret = \"" << o.secret
                             << "\"\ndevice_secret = \"d\"\nquota_normal_rps = 10000000\n"
                             << "quota_normal_burst = 10000000\nquota_marketing_rps = 10000000\n"
                             << "quota_marketing_burst = 10000000\n";
    auto cfg = pushgw::push_api::config_schema().defaults();
    cfg.threads = o.server_threads;
    cfg.apps_file = apps_file.string();
    cfg.redis_url = redis->url();
    cfg.listen.host = "127.0.0.1";
    cfg.listen.port = 0;
    cfg.kafka.bootstrap = kafka->bootstrap_servers();
    cfg.kafka.ensure_topics = false;
    if (o.linger_ms >= 0) cfg.kafka.linger = std::chrono::milliseconds(o.linger_ms);
    cfg.admin_enabled = false;
    cfg.log.level = "warn";
    pushgw::common::setup_logging(cfg.log);
    // As push-api's main: one event loop per thread.
    server_io = std::make_unique<pushgw::common::IoPool>(o.server_threads);
    server_io->start();
    pushgw::push_api::ServiceOptions options;
    options.session_executors = server_io->executors();
    service =
        std::make_unique<pushgw::push_api::Service>(server_io->executor(0), cfg, std::move(options));
    if (auto r = service->start(); !r) {
      throw std::runtime_error("push-api failed to start: " + r.error().message());
    }
    port = std::to_string(service->port());
  } else {
    auto scheme = o.url.find("://");
    std::string rest = scheme == std::string::npos ? o.url : o.url.substr(scheme + 3);
    rest = rest.substr(0, rest.find('/'));
    const auto colon = rest.rfind(':');
    host = rest.substr(0, colon);
    port = colon == std::string::npos ? "80" : rest.substr(colon + 1);
  }

  Shared shared;
  std::vector<Connection> conns(o.connections);
  pushgw::common::IoPool client_io(o.client_threads);
  for (unsigned i = 0; i < o.connections; ++i) {
    pushgw::common::spawn_logged(client_io.executor(i % client_io.size()),
                                 client(o, host, port, i, &shared, &conns[i]), "bench client");
  }
  client_io.start();

  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  auto client_cpu = [&] {
    std::lock_guard<std::mutex> lock(shared.mu);
    double sum = 0;
    for (const pid_t t : shared.client_tids) sum += cpu_seconds("self/task/" + std::to_string(t));
    return sum;
  };
  const std::string redis_stat = redis ? std::to_string(redis->pid()) : std::string();
  const double cpu0 = cpu_seconds();
  const double client0 = client_cpu();
  const double redis0 = redis ? cpu_seconds(redis_stat) : 0;
  const auto t0 = Clock::now();
  shared.measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  shared.measuring = false;
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  const double client_used = client_cpu() - client0;
  const double redis_used = redis ? cpu_seconds(redis_stat) - redis0 : 0;
  shared.stop = true;
  // Connections end after their request in flight; then the loops go idle.
  for (int i = 0; i < 500 && client_tasks_running(shared); ++i) std::this_thread::sleep_for(10ms);
  client_io.stop();
  client_io.join();

  std::vector<uint32_t> all;
  for (auto& c : conns) all.insert(all.end(), c.latencies_us.begin(), c.latencies_us.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) -> double {
    if (all.empty()) return 0;
    const auto idx =
        std::min(all.size() - 1, static_cast<size_t>(p * static_cast<double>(all.size())));
    return all[idx] / 1000.0;
  };
  const double rate = static_cast<double>(shared.accepted.load()) / elapsed;
  std::printf(
      "push-api bench: %s, %u keep-alive connections, %u device(s)/push, %u-byte payload, "
      "class %s\n",
      o.url.empty() ? "in-process push-api + private redis-server + Kafka mock (acks=all)"
                    : o.url.c_str(),
      o.connections, o.devices_per_push, o.payload_bytes, o.klass.c_str());
  std::printf("%-12s %-14s %-10s %-10s %-10s %-10s %-10s\n", "seconds", "accepted/s", "refused",
              "failed", "p50 ms", "p99 ms", "p999 ms");
  std::printf("%-12.1f %-14.0f %-10llu %-10llu %-10.2f %-10.2f %-10.2f\n", elapsed, rate,
              static_cast<unsigned long long>(shared.refused.load()),
              static_cast<unsigned long long>(shared.failed.load()), pct(0.50), pct(0.99),
              pct(0.999));
  std::printf("process CPU during the run: %.2f cores (client%s)\n", cpu / elapsed,
              o.url.empty() ? " + push-api + Kafka mock" : "");
  if (shared.accepted.load() > 0) {
    const double per = 1e6 / static_cast<double>(shared.accepted.load());
    if (o.url.empty()) {
      std::printf(
          "CPU per accepted request: push-api + Kafka mock %.1f us, redis-server %.1f us, "
          "bench client %.1f us\n",
          (cpu - client_used) * per, redis_used * per, client_used * per);
    } else {
      std::printf("CPU per accepted request: bench client %.1f us\n", client_used * per);
    }
  }
  if (!shared.first_refusal.empty()) {
    std::printf("first refusal: %s\n", shared.first_refusal.substr(0, 300).c_str());
  }

  if (service) service->stop();
  if (server_io) {
    server_io->stop();
    server_io->join();
  }
  service.reset();
  if (!apps_file.empty()) std::filesystem::remove(apps_file);
  return shared.accepted.load() > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_push_api: accepted signed POST /v1/push per second and latency"};
  Options o;
  app.add_option("--url", o.url, "an existing push-api (default: start everything in-process)");
  app.add_option("--app", o.app, "app id")->capture_default_str();
  app.add_option("--secret", o.secret, "the app's api secret")->capture_default_str();
  app.add_option("--connections", o.connections, "keep-alive connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--client-threads", o.client_threads, "client I/O threads")->capture_default_str();
  app.add_option("--server-threads", o.server_threads, "in-process push-api I/O threads")
      ->capture_default_str();
  app.add_option("--seconds", o.seconds, "measured duration")->capture_default_str();
  app.add_option("--warmup", o.warmup, "unmeasured seconds first")->capture_default_str();
  app.add_option("--devices-per-push", o.devices_per_push, "device_ids per request")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--payload-bytes", o.payload_bytes, "payload size")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  app.add_option("--class", o.klass, "normal or marketing")
      ->capture_default_str()
      ->check(CLI::IsMember({"normal", "marketing"}));
  app.add_option("--linger-ms", o.linger_ms,
                 "in-process push-api's kafka.linger_ms (default: push-api's default)")
      ->check(CLI::Range(0, 1000));
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_push_api: %s\n", e.what());
    return 1;
  }
}
