// bench_status_store: registers N devices, then runs pipelined batch lookups
// for a few seconds per batch size on one thread and prints lookups/s and
// batch latency percentiles. Against --redis URL, or --spawn to start a
// private redis-server on a free port.
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "status_store/redis_status_store.h"

extern char** environ;

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using pushgw::result;
namespace ss = pushgw::status_store;

// A private redis-server for --spawn, stopped on exit.
class SpawnedRedis {
 public:
  SpawnedRedis() {
    dir_ = std::filesystem::temp_directory_path() /
           ("pushgw-bench-redis-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    std::mt19937 rng{std::random_device{}()};
    for (int attempt = 0; attempt < 20 && pid_ < 0; ++attempt) {
      port_ = static_cast<std::uint16_t>(std::uniform_int_distribution<int>(20000, 31999)(rng));
      if (!bindable(port_)) continue;
      // setpriv: the server gets SIGKILL if the bench dies without cleaning up.
      std::vector<std::string> argv = {"setpriv",
                                       "--pdeathsig",
                                       "KILL",
                                       "--",
                                       "redis-server",
                                       "--port",
                                       std::to_string(port_),
                                       "--bind",
                                       "127.0.0.1",
                                       "--save",
                                       "",
                                       "--appendonly",
                                       "no",
                                       "--dir",
                                       dir_.string(),
                                       "--logfile",
                                       (dir_ / "redis.log").string()};
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      pid_t pid = -1;
      if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) {
        throw std::runtime_error("cannot start redis-server (is it installed?)");
      }
      pid_ = pid;
    }
    if (pid_ < 0) throw std::runtime_error("no free port for redis-server");
  }
  ~SpawnedRedis() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      for (int i = 0; i < 300 && ::waitpid(pid_, &st, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(10ms);
      }
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, WNOHANG);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  /// CPU seconds the server has used (from /proc), or -1.
  double cpu_seconds() const {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid_) + "/stat").c_str(), "r");
    if (!f) return -1;
    char buf[1024];
    std::size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::fclose(f);
    buf[n] = 0;
    // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
    const char* p = std::strrchr(buf, ')');
    if (!p) return -1;
    unsigned long utime = 0, stime = 0;
    if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) !=
        2) {
      return -1;
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }

 private:
  static bool bindable(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(fd);
    return ok;
  }
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

struct Options {
  std::string redis;
  bool spawn = false;
  int devices = 100000;
  std::vector<int> batches{1, 10, 100, 1000, 10000};
  int inflight = 2;
  double seconds = 3;
};

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct Row {
  int batch = 0;
  double lookups_per_s = 0;
  double lookups_per_cpu_s = 0;
  double lookups_per_redis_cpu_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  std::uint64_t batches = 0;
  std::uint64_t errors = 0;
};

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<result<void>> wait_ready(ss::RedisStatusStore* store) {
  auto deadline = Clock::now() + 10s;
  for (;;) {
    auto r = co_await store->ping();
    if (r || Clock::now() > deadline) co_return r;
    co_await sleep_for(50ms);
  }
}

asio::awaitable<void> register_worker(ss::RedisStatusStore* store, int first, int step, int n,
                                      int* failures) {
  for (int i = first; i < n; i += step) {
    ss::DeviceRegistration reg{"bench",
                               "dev-" + std::to_string(i),
                               "node-" + std::to_string(i % 8),
                               "sess-" + std::to_string(i),
                               "android",
                               i % 3 == 0 ? "user-" + std::to_string(i / 3) : "",
                               1'700'000'000'000ULL};
    auto r = co_await store->register_device(std::move(reg), std::chrono::hours(1));
    if (!r) ++*failures;
  }
}

asio::awaitable<void> lookup_worker(ss::RedisStatusStore* store, int batch, int devices,
                                    Clock::time_point until, std::uint32_t seed,
                                    std::vector<double>* latencies_ms, std::uint64_t* errors) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick(0, devices - 1);
  std::vector<std::string> ids(static_cast<std::size_t>(batch));
  while (Clock::now() < until) {
    for (auto& id : ids) id = "dev-" + std::to_string(pick(rng));
    auto t0 = Clock::now();
    auto r = co_await store->lookup("bench", ids);
    auto dt = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!r || r->size() != ids.size() || !r->front()) {
      if (!*errors) {
        std::fprintf(stderr, "lookup failed: %s\n",
                     !r ? r.error().message().c_str() : "device missing from the result");
      }
      ++*errors;
      continue;
    }
    latencies_ms->push_back(dt);
  }
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[idx];
}

asio::awaitable<int> run(ss::RedisStatusStore* store, Options opt, const SpawnedRedis* redis) {
  if (auto r = co_await wait_ready(store); !r) {
    std::fprintf(stderr, "redis not reachable: %s\n", r.error().message().c_str());
    co_return 1;
  }
  auto ex = co_await asio::this_coro::executor;
  // Register the devices with 512 concurrent register_device() calls.
  int failures = 0;
  {
    auto t0 = Clock::now();
    constexpr int kWorkers = 512;
    int done = 0;
    auto timer = std::make_shared<asio::steady_timer>(ex, Clock::time_point::max());
    for (int w = 0; w < kWorkers; ++w) {
      asio::co_spawn(ex, register_worker(store, w, kWorkers, opt.devices, &failures),
                     [&done, timer](std::exception_ptr e) {
                       if (e) std::fprintf(stderr, "register worker failed\n");
                       if (++done == kWorkers) timer->cancel();
                     });
    }
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
    auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("registered %d devices in %.2f s (%.0f registrations/s, %d failures)\n",
                opt.devices, secs, opt.devices / secs, failures);
  }

  std::vector<Row> rows;
  for (int batch : opt.batches) {
    if (batch <= 0) continue;
    std::vector<std::vector<double>> lat(static_cast<std::size_t>(opt.inflight));
    std::vector<std::uint64_t> errs(static_cast<std::size_t>(opt.inflight), 0);
    // Warm-up (connections, allocator) for a moment, then measure.
    auto t0 = Clock::now();
    const double cpu0 = cpu_seconds();
    const double redis_cpu0 = redis ? redis->cpu_seconds() : -1;
    auto until = t0 + std::chrono::duration_cast<Clock::duration>(
                          std::chrono::duration<double>(opt.seconds));
    int done = 0;
    auto timer = std::make_shared<asio::steady_timer>(ex, Clock::time_point::max());
    for (int w = 0; w < opt.inflight; ++w) {
      auto i = static_cast<std::size_t>(w);
      asio::co_spawn(ex,
                     lookup_worker(store, batch, opt.devices, until,
                                   1234u + static_cast<unsigned>(w), &lat[i], &errs[i]),
                     [&done, timer, &opt](std::exception_ptr e) {
                       if (e) std::fprintf(stderr, "lookup worker failed\n");
                       if (++done == opt.inflight) timer->cancel();
                     });
    }
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
    auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = cpu_seconds() - cpu0;
    const double redis_cpu = redis && redis_cpu0 >= 0 ? redis->cpu_seconds() - redis_cpu0 : -1;
    std::vector<double> all;
    Row row;
    row.batch = batch;
    for (std::size_t i = 0; i < lat.size(); ++i) {
      all.insert(all.end(), lat[i].begin(), lat[i].end());
      row.errors += errs[i];
    }
    row.batches = all.size();
    row.lookups_per_s = static_cast<double>(all.size()) * batch / secs;
    row.lookups_per_cpu_s = cpu > 0 ? static_cast<double>(all.size()) * batch / cpu : 0;
    row.lookups_per_redis_cpu_s =
        redis_cpu > 0 ? static_cast<double>(all.size()) * batch / redis_cpu : 0;
    row.p50_ms = percentile(all, 0.50);
    row.p99_ms = percentile(all, 0.99);
    rows.push_back(row);
  }
  // per client CPU-s: lookups per second of this process's CPU time, i.e.
  // what one client core sustains whatever else runs on the box; per Redis
  // CPU-s: the same for the server (--spawn only).
  std::printf("\n%7s %9s %11s %19s %18s %9s %9s %8s %6s\n", "batch", "in-flight", "lookups/s",
              "per client CPU-s", "per Redis CPU-s", "p50 ms", "p99 ms", "batches", "errors");
  for (const auto& r : rows) {
    std::printf("%7d %9d %11.0f %19.0f %18.0f %9.3f %9.3f %8llu %6llu\n", r.batch, opt.inflight,
                r.lookups_per_s, r.lookups_per_cpu_s, r.lookups_per_redis_cpu_s, r.p50_ms, r.p99_ms,
                static_cast<unsigned long long>(r.batches),
                static_cast<unsigned long long>(r.errors));
  }
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"status-store batch lookup benchmark (one client thread)"};
  app.add_option("--redis", opt.redis,
                 "redis://host:port or redis-cluster://h1:p1,h2:p2 of a Redis to use "
                 "(keys use the prefix 'pgwbench'; they are left behind)");
  app.add_flag("--spawn", opt.spawn, "start a private redis-server on a free port");
  app.add_option("--devices", opt.devices, "devices to register")->check(CLI::Range(1, 10000000));
  app.add_option("--batch", opt.batches, "batch sizes to measure")->delimiter(',');
  app.add_option("--inflight", opt.inflight, "concurrent batches")->check(CLI::Range(1, 1024));
  app.add_option("--seconds", opt.seconds, "measuring time per batch size")
      ->check(CLI::Range(0.1, 600.0));
  CLI11_PARSE(app, argc, argv);
  if (opt.redis.empty() == !opt.spawn) {
    std::fprintf(stderr, "give exactly one of --redis URL or --spawn\n");
    return 2;
  }
  try {
    std::unique_ptr<SpawnedRedis> spawned;
    if (opt.spawn) {
      spawned = std::make_unique<SpawnedRedis>();
      opt.redis = spawned->url();
    }
    std::printf("redis: %s, devices: %d, in-flight batches: %d, %.1f s per batch size\n",
                opt.redis.c_str(), opt.devices, opt.inflight, opt.seconds);
    asio::io_context io(1);
    ss::RedisStatusStoreOptions so;
    so.key_prefix = "pgwbench";
    auto store = ss::make_redis_status_store(io.get_executor(), opt.redis, so);
    if (!store) {
      std::fprintf(stderr, "bad --redis: %s\n", store.error().message().c_str());
      return 2;
    }
    // Run the benchmark on the client's own strand so no call needs to hop.
    int rc = 1;
    asio::co_spawn((*store)->client().executor(), run(store->get(), opt, spawned.get()),
                   [&](std::exception_ptr e, int code) {
                     rc = e ? 1 : code;
                     (*store)->client().close();
                   });
    io.run();
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_status_store: %s\n", e.what());
    return 1;
  }
}
