// bench_online_router: preloads N PushRequests for online devices into an
// in-process Kafka mock cluster, registers the devices in a local Redis, runs
// the online router over them and prints routed messages per second.
//
//   bench_online_router [--messages 200000] [--devices 10000] [--nodes 4]
//                       [--batch 4000] [--in-flight 8] [--threads 2] [--ttl 3600]
//                       [--redis redis://host:port] [--no-counters]
//
// Without --redis a private redis-server is started on a free port. The mock
// cluster, the router and the preloading producer share this process; Redis
// and the mock share the machine with it, so the figure is a lower bound for
// a router with its own cores. Each message's counters hash is created
// first (start_counters), as push-api does before producing a request. Besides
// the rate it prints the CPU per routed message of this process and of the
// private redis-server: steadier than the rate on a shared machine.
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/bus/kafka.h"
#include "common/bus/mock_cluster.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/service.h"
#include "online_router/router.h"
#include "online_router/routing.h"
#include "proto/bus.pb.h"
#include "status_store/redis_status_store.h"

extern char** environ;

namespace {

namespace asio = boost::asio;
namespace ss = pushgw::status_store;
namespace orr = pushgw::online_router;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

struct Options {
  int messages = 200'000;
  int devices = 10'000;
  int nodes = 4;
  int partitions = 8;
  uint32_t batch = 4000;
  uint32_t in_flight = 8;
  unsigned routers = 1;  // router instances in the group (each its own consumer)
  unsigned threads = 2;
  uint32_t ttl = 3600;
  std::string redis;
  bool counters = true;
  std::vector<std::string> properties;
};

// A private redis-server on a free loopback port, stopped on destruction.
class SpawnedRedis {
 public:
  SpawnedRedis() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(fd);
      throw std::runtime_error("no free port");
    }
    port_ = ntohs(a.sin_port);
    ::close(fd);
    std::vector<std::string> argv = {
        "redis-server", "--port", std::to_string(port_), "--bind",   "127.0.0.1", "--save", "",
        "--appendonly", "no",     "--logfile",           "/dev/null"};
    std::vector<char*> args;
    for (auto& x : argv) args.push_back(x.data());
    args.push_back(nullptr);
    if (posix_spawnp(&pid_, "redis-server", nullptr, nullptr, args.data(), environ) != 0) {
      throw std::runtime_error("cannot start redis-server");
    }
  }
  ~SpawnedRedis() {
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }

 private:
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// CPU seconds (user + system) of another process, -1 if unknown.
double process_cpu_seconds(pid_t pid) {
  if (pid <= 0) return -1;
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (f == nullptr) return -1;
  char buf[1024];
  const std::size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = 0;
  // Fields after the command name (which may hold spaces): state is field 3,
  // utime and stime are fields 14 and 15.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return -1;
  unsigned long long ut = 0, st = 0;
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
    return -1;
  }
  return static_cast<double>(ut + st) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

template <class T>
T run(pushgw::common::IoRunner& io, asio::awaitable<T> aw) {
  return asio::co_spawn(io.executor(), std::move(aw), asio::use_future).get();
}

asio::awaitable<int> register_all(ss::RedisStatusStore* store, Options opt) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (int i = 0; !co_await store->ping(); ++i) {
    if (i == 200) co_return -1;
    t.expires_after(25ms);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  for (int n = 0; n < opt.nodes; ++n) {
    ss::NodeInfo node;
    node.node_id = "node-" + std::to_string(n);
    if (auto r = co_await store->upsert_node(node, std::chrono::hours(1)); !r) co_return 1;
  }
  // Registration is one script call each: several in flight hide the round trips.
  int failures = 0;
  for (int i = 0; i < opt.devices; ++i) {
    ss::DeviceRegistration reg;
    reg.app_id = "bench";
    reg.device_id = "dev-" + std::to_string(i);
    reg.node_id = "node-" + std::to_string(i % opt.nodes);
    reg.session_id = "s" + std::to_string(i);
    reg.platform = "android";
    reg.connected_at_ms = now_ms();
    auto r = co_await store->register_device(std::move(reg), std::chrono::hours(1));
    if (!r) ++failures;
  }
  co_return failures;
}

// What push-api does before it produces a request: the message's counters
// hash, with targets/class/app set and its expiry (start_counters). The
// router then only updates existing hashes, as in a running cluster.
int start_all_counters(pushgw::common::IoRunner& io, ss::RedisStatusStore* store, int messages,
                       uint64_t counters_ttl_s) {
  constexpr int kWorkers = 64;
  auto worker = [](ss::RedisStatusStore* st, int first, int n,
                   uint64_t ttl_s) -> asio::awaitable<int> {
    int bad = 0;
    for (int i = first; i < n; i += kWorkers) {
      std::vector<std::pair<std::string, std::int64_t>> fields = {
          {"targets", 1}, {"class", 0}, {"app:bench", 1}};
      auto r = co_await st->start_counters("msg-" + std::to_string(i), std::move(fields),
                                           std::chrono::seconds(ttl_s));
      if (!r) ++bad;
    }
    co_return bad;
  };
  std::vector<std::future<int>> done;
  for (int w = 0; w < kWorkers; ++w) {
    done.push_back(asio::co_spawn(io.executor(), worker(store, w, messages, counters_ttl_s),
                                  asio::use_future));
  }
  int failures = 0;
  for (auto& f : done) failures += f.get();
  return failures;
}

// Records the broker no longer holds at the start of `topic` (sum of the low
// watermarks), or -1 if they could not be read.
int64_t dropped_at_start(const std::string& bootstrap, const std::string& topic, int partitions) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof(err)) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  int64_t dropped = 0;
  for (int p = 0; p < partitions && dropped >= 0; ++p) {
    int64_t low = 0;
    int64_t high = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 5000) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      dropped = -1;
    } else {
      dropped += low;
    }
  }
  rd_kafka_destroy(rk);
  return dropped;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"online router throughput: routed msg/s against local Redis and the Kafka mock"};
  app.add_option("--messages", opt.messages, "push requests preloaded")->capture_default_str();
  app.add_option("--devices", opt.devices, "online devices (registered in Redis)")
      ->capture_default_str();
  app.add_option("--nodes", opt.nodes, "connection nodes the devices are spread over")
      ->capture_default_str();
  app.add_option("--partitions", opt.partitions, "partitions of the input and output topics")
      ->capture_default_str();
  app.add_option("--batch", opt.batch, "router batch_size")->capture_default_str();
  app.add_option("--in-flight", opt.in_flight, "router max_in_flight")->capture_default_str();
  app.add_option("--routers", opt.routers,
                 "router instances in this process, one consumer group (as several router "
                 "processes would share the partitions)")
      ->capture_default_str()
      ->check(CLI::Range(1, 8));
  app.add_option("--threads", opt.threads, "router io threads")->capture_default_str();
  app.add_option("--ttl", opt.ttl, "ttl_s of the requests (> 0: also a pushgw.offline record)")
      ->capture_default_str();
  app.add_option("--redis", opt.redis, "use this Redis instead of a private redis-server");
  bool no_counters = false;
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "log level (debug shows librdkafka debug output)")
      ->capture_default_str();
  app.add_option("--property", opt.properties,
                 "extra librdkafka property name=value for the router (repeatable)");
  app.add_flag("--no-counters", no_counters, "disable the per-message counters");
  CLI11_PARSE(app, argc, argv);
  opt.counters = !no_counters;
  pushgw::common::LogConfig lc;
  lc.level = log_level;
  pushgw::common::setup_logging(lc);

  std::unique_ptr<SpawnedRedis> own_redis;
  if (opt.redis.empty()) {
    own_redis = std::make_unique<SpawnedRedis>();
    opt.redis = own_redis->url();
  }
  auto cluster = pushgw::bus::MockCluster::start(1);
  if (!cluster) {
    std::fprintf(stderr, "mock cluster: %s\n", cluster.error().message().c_str());
    return 1;
  }
  auto& mock = **cluster;
  for (auto t : {orr::push_topic(orr::TrafficClass::kNormal),
                 orr::fanout_topic(orr::TrafficClass::kNormal), std::string(orr::kOfflineTopic)}) {
    if (!mock.create_topic(t, opt.partitions)) return 1;
  }
  for (int n = 0; n < opt.nodes; ++n) {
    if (!mock.create_topic(orr::deliver_topic("node-" + std::to_string(n)), opt.partitions)) {
      return 1;
    }
  }

  pushgw::common::IoRunner io(opt.threads);
  auto work = asio::make_work_guard(io.context());
  io.start();
  ss::RedisStatusStoreOptions so;
  so.key_prefix = "bench" + std::to_string(::getpid());
  auto store = ss::make_redis_status_store(io.executor(), opt.redis, so);
  if (!store) {
    std::fprintf(stderr, "redis %s: %s\n", opt.redis.c_str(), store.error().message().c_str());
    return 1;
  }
  auto t_reg = SteadyClock::now();
  if (int failed = run(io, register_all(store->get(), opt)); failed != 0) {
    std::fprintf(stderr, "%d registrations failed\n", failed);
    return 1;
  }
  const double reg_s = std::chrono::duration<double>(SteadyClock::now() - t_reg).count();

  // Preload.
  pushgw::bus::ProducerConfig pc;
  pc.kafka.bootstrap_servers = mock.bootstrap_servers();
  pc.kafka.client_id = "bench-preload";
  pc.linger = 5ms;
  pc.max_queue_messages = 1'000'000;
  auto producer = pushgw::bus::make_kafka_producer(pc);
  auto t_load = SteadyClock::now();
  const uint64_t created = now_ms();
  constexpr int kChunk = 20'000;
  for (int base = 0; base < opt.messages; base += kChunk) {
    std::vector<pushgw::bus::OutRecord> records;
    for (int i = base; i < std::min(opt.messages, base + kChunk); ++i) {
      pushgw::bus::v1::PushRequest r;
      r.set_schema_version(1);
      r.set_message_id("msg-" + std::to_string(i));
      r.set_app_id("bench");
      r.set_device_id("dev-" + std::to_string(i % opt.devices));
      r.set_payload(std::string(64, 'x'));
      r.set_ttl_s(opt.ttl);
      r.set_created_ms(created);
      r.set_expires_ms(created + uint64_t{opt.ttl} * 1000 + 3'600'000);
      // As push-api does: it creates the counters hash with this expiry first.
      r.set_counters_expire_ms(created + (std::max<uint64_t>(opt.ttl, 86'400) + 3'600) * 1000);
      r.set_targets(1);  // a push to one device, as push-api marks it
      pushgw::bus::OutRecord o;
      o.topic = orr::push_topic(orr::TrafficClass::kNormal);
      o.key = orr::device_key(r.app_id(), r.device_id());
      o.value = r.SerializeAsString();
      records.push_back(std::move(o));
    }
    auto results = run(io, producer->produce_batch(std::move(records)));
    for (const auto& d : results) {
      if (!d) {
        std::fprintf(stderr, "preload: %s\n", d.error().message().c_str());
        return 1;
      }
    }
  }
  producer->close(5s);
  // librdkafka's mock keeps at most 5 MiB (or 100k batches) per partition and
  // deletes older records: a preload above that would never be routed.
  if (const auto dropped = dropped_at_start(
          mock.bootstrap_servers(), orr::push_topic(orr::TrafficClass::kNormal), opt.partitions);
      dropped != 0) {
    std::fprintf(stderr,
                 dropped < 0 ? "cannot read the input topic's watermarks\n"
                             : "the Kafka mock dropped %lld preloaded records (it keeps at most "
                               "5 MiB per partition): use more --partitions or fewer --messages\n",
                 static_cast<long long>(dropped));
    return 1;
  }
  const double load_s = std::chrono::duration<double>(SteadyClock::now() - t_load).count();
  // As push-api does before producing each request (start_counters).
  const uint64_t counters_ttl_s = std::max<uint64_t>(opt.ttl, 86'400) + 3'600;
  const auto t_counters = SteadyClock::now();
  if (opt.counters) {
    if (int failed = start_all_counters(io, store->get(), opt.messages, counters_ttl_s);
        failed != 0) {
      std::fprintf(stderr, "%d counters hashes could not be created\n", failed);
      return 1;
    }
  }
  const double counters_s =
      std::chrono::duration<double>(SteadyClock::now() - t_counters).count();

  orr::RouterConfig cfg;
  cfg.threads = opt.threads;
  cfg.batch_size = opt.batch;
  cfg.max_in_flight = opt.in_flight;
  cfg.redis_url = opt.redis;
  cfg.redis_key_prefix = so.key_prefix;
  cfg.counters = opt.counters;
  cfg.kafka.bootstrap = mock.bootstrap_servers();
  cfg.kafka.session_timeout = 6s;
  cfg.kafka.heartbeat_interval = 1s;
  cfg.kafka.max_buffered = 50'000;
  cfg.kafka.ensure_topics_timeout = 2s;
  cfg.kafka.properties = opt.properties;
  cfg.admin.port = 0;
  cfg.validate();
  auto metrics = std::make_shared<pushgw::common::Metrics>("bench_online_router");
  std::vector<std::unique_ptr<orr::Router>> routers;
  for (unsigned i = 0; i < opt.routers; ++i) {
    orr::RouterOptions ro;
    // The first one's metrics are scraped for the per-batch figures.
    ro.metrics = i == 0 ? metrics : std::make_shared<pushgw::common::Metrics>("bench_router");
    routers.push_back(std::make_unique<orr::Router>(io.executor(), cfg, ro));
    if (auto r = routers.back()->start(); !r) {
      std::fprintf(stderr, "router: %s\n", r.error().message().c_str());
      return 1;
    }
  }
  struct Sum {
    std::vector<std::unique_ptr<orr::Router>>* all;
    orr::RouterStats stats() const {
      orr::RouterStats t;
      for (const auto& r : *all) {
        const auto s = r->stats();
        t.consumed += s.consumed;
        t.batches += s.batches;
        t.completed += s.completed;
        t.online += s.online;
        t.stored += s.stored;
        t.expired += s.expired;
        t.fanned_out += s.fanned_out;
        t.unknown_node += s.unknown_node;
        t.bad_records += s.bad_records;
        t.produce_retries += s.produce_retries;
        t.store_retries += s.store_retries;
        t.counter_failures += s.counter_failures;
        t.in_flight += s.in_flight;
      }
      return t;
    }
    void stop() {
      for (auto& r : *all) r->stop();
    }
  } router{&routers};
  // Time from the first consumed record to the last one processed (group
  // join excluded).
  const auto deadline = SteadyClock::now() + 300s;
  while (router.stats().consumed == 0 && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  const auto t0 = SteadyClock::now();
  const double cpu0 = cpu_seconds();
  const pid_t redis_pid = own_redis ? own_redis->pid() : -1;
  const double redis_cpu0 = process_cpu_seconds(redis_pid);
  auto next_progress = SteadyClock::now() + 5s;
  while (router.stats().completed < static_cast<uint64_t>(opt.messages) &&
         SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
    if (SteadyClock::now() >= next_progress) {
      next_progress += 5s;
      const auto p = router.stats();
      std::fprintf(stderr, "  ... consumed %llu, routed %llu, batches in flight %llu\n",
                   static_cast<unsigned long long>(p.consumed),
                   static_cast<unsigned long long>(p.completed),
                   static_cast<unsigned long long>(p.in_flight));
    }
  }
  const double secs = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  const double redis_cpu = redis_cpu0 < 0 ? -1 : process_cpu_seconds(redis_pid) - redis_cpu0;
  const auto s = router.stats();
  const std::string scrape = metrics->scrape();
  router.stop();
  io.stop();
  io.join();

  std::printf(
      "online-router bench: %d messages, %d online devices on %d nodes, batch %u, "
      "in-flight %u, threads %u, routers %u, ttl %u, counters %s\n",
      opt.messages, opt.devices, opt.nodes, opt.batch, opt.in_flight, opt.threads, opt.routers,
      opt.ttl,
      opt.counters ? "on" : "off");
  std::printf("  setup: registered in %.2f s, preloaded in %.2f s, counters hashes created in %.2f s\n",
              reg_s, load_s, counters_s);
  std::printf("| %-12s | %-10s | %-12s | %-14s | %-10s | %-14s |\n", "routed", "seconds",
              "routed msg/s", "records out/s", "batches", "process CPU s");
  std::printf("| %-12llu | %-10.2f | %-12.0f | %-14.0f | %-10llu | %-14.2f |\n",
              static_cast<unsigned long long>(s.completed), secs,
              static_cast<double>(s.completed) / secs,
              static_cast<double>(s.online + s.stored) / secs,
              static_cast<unsigned long long>(s.batches), cpu);
  std::printf(
      "  outcomes: online %llu, stored %llu, expired %llu, unknown node %llu, retries "
      "%llu/%llu (produce/store)\n",
      static_cast<unsigned long long>(s.online), static_cast<unsigned long long>(s.stored),
      static_cast<unsigned long long>(s.expired), static_cast<unsigned long long>(s.unknown_node),
      static_cast<unsigned long long>(s.produce_retries),
      static_cast<unsigned long long>(s.store_retries));
  // CPU per routed message: the more stable figure on a shared machine.
  if (s.completed > 0) {
    const double n = static_cast<double>(s.completed);
    if (redis_cpu >= 0) {
      std::printf("  CPU per routed message: router + Kafka mock %.2f us, redis-server %.2f us\n",
                  1e6 * cpu / n, 1e6 * redis_cpu / n);
    } else {
      std::printf("  CPU per routed message: router + Kafka mock %.2f us\n", 1e6 * cpu / n);
    }
  }
  // Mean status store and produce time per batch, from the router's histograms.
  auto value = [&scrape](const std::string& name) {
    const auto at = scrape.find("\n" + name + "{");
    if (at == std::string::npos) return 0.0;
    const auto sp = scrape.find("} ", at);
    return std::atof(scrape.c_str() + sp + 2);
  };
  const double batches = std::max(1.0, value("pushgw_router_lookup_seconds_count"));
  std::printf("  per batch: status store %.2f ms, produce to last report %.2f ms\n",
              1000 * value("pushgw_router_lookup_seconds_sum") / batches,
              1000 * value("pushgw_router_produce_seconds_sum") /
                  std::max(1.0, value("pushgw_router_produce_seconds_count")));
  if (s.completed < static_cast<uint64_t>(opt.messages)) {
    std::fprintf(stderr, "timed out: %llu of %d routed\n",
                 static_cast<unsigned long long>(s.completed), opt.messages);
    return 1;
  }
  return 0;
}
