// pushgw-check: verifies that the Redis and Kafka a pushgw cluster is
// configured with are usable, end to end, and prints one row per step.
// Exit code 0 when every step passed, 1 otherwise, 2 on bad flags.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/bus/kafka.h"
#include "common/redis/client.h"
#include "status_store/redis_status_store.h"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pushgw::result;

namespace {

struct Step {
  std::string name;
  bool ok = false;
  double ms = 0;
  std::string detail;
};

std::string random_suffix() {
  std::random_device rd;
  return fmt::format("{:08x}", rd());
}

class Checker {
 public:
  Checker(std::string redis_uri, std::string bootstrap, std::chrono::milliseconds timeout)
      : redis_uri_(std::move(redis_uri)), bootstrap_(std::move(bootstrap)), timeout_(timeout) {}

  asio::awaitable<void> run() {
    auto ex = co_await asio::this_coro::executor;
    co_await check_redis(ex);
    if (!bootstrap_.empty()) co_await check_kafka(ex);
  }

  const std::vector<Step>& steps() const { return steps_; }

 private:
  using Clock = std::chrono::steady_clock;

  bool record(std::string name, bool ok, Clock::time_point t0, std::string detail = {}) {
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    steps_.push_back({std::move(name), ok, ms, std::move(detail)});
    return ok;
  }

  template <class T>
  static std::string why(const result<T>& r) {
    return r ? std::string() : r.error().message();
  }

  asio::awaitable<void> check_redis(asio::any_io_executor ex) {
    auto cfg = pushgw::redis::ClientConfig::parse(redis_uri_);
    if (!cfg) {
      record("redis: parse uri", false, Clock::now(), cfg.error().message());
      co_return;
    }
    cfg->connection.request_timeout = timeout_;
    auto client = pushgw::redis::make_client(ex, *cfg);
    if (!client) {
      record("redis: client", false, Clock::now(), client.error().message());
      co_return;
    }
    std::shared_ptr<pushgw::redis::Client> shared(std::move(*client));
    pushgw::status_store::RedisStatusStore store(shared);
    const std::string app = "pushgw-check";
    const std::string device = "probe-" + random_suffix();

    auto t0 = Clock::now();
    auto ping = co_await store.ping();
    if (!record("redis: ping", ping.has_value(), t0, why(ping))) co_return;

    t0 = Clock::now();
    pushgw::status_store::DeviceRegistration reg;
    reg.app_id = app;
    reg.device_id = device;
    reg.node_id = "check-node";
    reg.session_id = "s1";
    reg.platform = "OTHER";
    auto reg_r = co_await store.register_device(reg, 30s);
    if (!record("status-store: register device", reg_r.has_value(), t0,
                reg_r ? fmt::format("epoch {}", reg_r->epoch) : why(reg_r))) {
      co_return;
    }
    const uint64_t epoch = reg_r->epoch;

    t0 = Clock::now();
    // No braced lists inside co_await: GCC 12 rejects them ("array used as initializer").
    const std::vector<std::string> probe(1, device);
    auto online = co_await store.lookup(app, probe);
    const bool found =
        online && online->size() == 1 && (*online)[0] && (*online)[0]->node_id == "check-node";
    record("status-store: lookup online", found, t0,
           online ? std::string(found ? "on check-node" : "not found") : why(online));

    t0 = Clock::now();
    auto stale = co_await store.unregister_device(app, device, epoch - 1);
    const bool refused = !stale || !*stale;
    record("status-store: stale unregister refused", refused, t0,
           refused ? std::string("refused") : std::string("a stale epoch removed the device"));

    t0 = Clock::now();
    auto unreg = co_await store.unregister_device(app, device, epoch);
    record("status-store: unregister", unreg && *unreg, t0, why(unreg));

    t0 = Clock::now();
    auto offline = co_await store.lookup(app, probe);
    record("status-store: lookup offline", offline && offline->size() == 1 && !(*offline)[0], t0,
           why(offline));

    t0 = Clock::now();
    auto nodes = co_await store.list_nodes();
    record("status-store: live nodes", nodes.has_value(), t0,
           nodes ? fmt::format("{} node(s)", nodes->size()) : why(nodes));
  }

  asio::awaitable<void> check_kafka(asio::any_io_executor ex) {
    pushgw::bus::KafkaConfig kc{bootstrap_, "pushgw-check", {}};
    const std::string topic = "pushgw.check";
    auto t0 = Clock::now();
    std::vector<pushgw::bus::TopicSpec> specs{pushgw::bus::TopicSpec{topic, 1, -1}};
    pushgw::bus::EnsureTopicsOptions eto;
    eto.timeout = 3s;
    auto topics = pushgw::bus::ensure_topics(kc, specs, eto);
    if (!record("kafka: topic " + topic, topics.has_value(), t0, why(topics))) co_return;

    pushgw::bus::ProducerConfig pc;
    pc.kafka = kc;
    pc.message_timeout = timeout_;
    auto producer = pushgw::bus::make_kafka_producer(pc);
    const std::string value = "check-" + random_suffix();
    t0 = Clock::now();
    auto sent = co_await producer->produce(topic, "probe", value);
    producer->close(2s);
    if (!record("kafka: produce (acked)", sent.has_value(), t0,
                sent ? fmt::format("partition {} offset {}", sent->partition, sent->offset)
                     : why(sent))) {
      co_return;
    }

    pushgw::bus::ConsumerConfig cc;
    cc.kafka = kc;
    cc.group_id = "pushgw-check-" + random_suffix();
    cc.session_timeout = 6s;
    cc.heartbeat_interval = 500ms;
    auto consumer = pushgw::bus::make_kafka_consumer(cc, ex);
    t0 = Clock::now();
    std::string detail = "not received in time";
    bool got = false;
    if (auto s = consumer->subscribe(std::vector<std::string>{topic}); !s) {
      detail = s.error().message();
    } else {
      const auto deadline = Clock::now() + timeout_ + 10s;
      while (!got && Clock::now() < deadline) {
        auto batch = co_await consumer->next_batch(100, 500ms);
        if (!batch) {
          detail = batch.error().message();
          break;
        }
        for (const auto& rec : *batch) {
          if (rec.value == value) {
            got = true;
            detail = fmt::format("offset {}", rec.offset);
          }
        }
        consumer->mark_processed(*batch);
      }
    }
    record("kafka: consume it back", got, t0, detail);
    co_await consumer->close();
  }

  std::string redis_uri_;
  std::string bootstrap_;
  std::chrono::milliseconds timeout_;
  std::vector<Step> steps_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pushgw-check: verify that Redis (status store) and Kafka work for pushgw"};
  std::string redis_uri = "redis://127.0.0.1:6379";
  std::string bootstrap;
  std::string bootstrap_file;
  int timeout_ms = 5000;
  app.add_option("--redis", redis_uri,
                 "redis://host:port or redis-cluster://host:port,host:port,...")
      ->capture_default_str();
  app.add_option("--kafka", bootstrap, "Kafka bootstrap servers (host:port,...)");
  app.add_option("--kafka-bootstrap-file", bootstrap_file,
                 "file holding the bootstrap servers (kafka-dev-broker --bootstrap-file)");
  app.add_option("--timeout-ms", timeout_ms, "per-step timeout")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  if (!bootstrap_file.empty()) {
    std::ifstream in(bootstrap_file);
    if (!in || !std::getline(in, bootstrap) || bootstrap.empty()) {
      fmt::print(stderr, "pushgw-check: cannot read bootstrap servers from {}\n", bootstrap_file);
      return 2;
    }
  }

  asio::io_context io;
  Checker checker(redis_uri, bootstrap, std::chrono::milliseconds(timeout_ms));
  bool crashed = false;
  asio::co_spawn(io, checker.run(), [&](std::exception_ptr e) {
    if (e) {
      crashed = true;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        fmt::print(stderr, "pushgw-check: {}\n", ex.what());
      }
    }
  });
  io.run();

  bool all_ok = !crashed && !checker.steps().empty();
  fmt::print("{:<42} {:>6} {:>9}  {}\n", "step", "result", "ms", "detail");
  for (const auto& s : checker.steps()) {
    fmt::print("{:<42} {:>6} {:>9.2f}  {}\n", s.name, s.ok ? "ok" : "FAIL", s.ms, s.detail);
    all_ok = all_ok && s.ok;
  }
  fmt::print("{}\n", all_ok ? "all checks passed" : "some checks FAILED");
  return all_ok ? 0 : 1;
}
