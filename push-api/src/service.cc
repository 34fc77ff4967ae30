#include "push_api/service.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "common/admin_server.h"
#include "common/auth/apps.h"
#include "common/bus/kafka.h"
#include "common/log.h"
#include "push_api/http_server.h"
#include "status_store/redis_status_store.h"

namespace pushgw::push_api {

namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

std::string trim(std::string s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

asio::awaitable<bool> check_store(Api* api) { co_return co_await api->store_ready(); }
asio::awaitable<bool> check_bus(Api* api) { co_return co_await api->bus_ready(); }

}  // namespace

struct Service::Impl {
  Impl(asio::any_io_executor executor, PushApiConfig c, ServiceOptions o)
      : ex(std::move(executor)), cfg(std::move(c)), options(std::move(o)) {
    if (!options.metrics) options.metrics = std::make_shared<common::Metrics>("push-api");
  }

  void release() {
    if (http) http->stop();
    if (admin) admin->stop();
    if (producer) producer->close(milliseconds(2000));
    if (store) store->client().close();
    // Sessions end once their sockets are closed and pending calls have
    // failed; wait (bounded) so none outlives the objects it uses.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (http && http->connections() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(5));
    }
  }

  asio::any_io_executor ex;
  PushApiConfig cfg;
  ServiceOptions options;
  auth::AppRegistry apps;
  std::unique_ptr<bus::Producer> producer;
  std::unique_ptr<status_store::RedisStatusStore> store;
  std::unique_ptr<Api> api;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<common::AdminServer> admin;
  bool stopped = false;
};

Service::Service(asio::any_io_executor ex, PushApiConfig cfg, ServiceOptions options)
    : impl_(std::make_unique<Impl>(std::move(ex), std::move(cfg), std::move(options))) {}

Service::~Service() { stop(); }

const PushApiConfig& Service::config() const { return impl_->cfg; }

result<void> Service::start() {
  auto log = common::logger("push-api");
  auto& s = *impl_;
  const auto& cfg = s.cfg;
  try {
    s.apps = auth::AppRegistry::load_file(cfg.apps_file);
  } catch (const std::exception& e) {
    log->error("apps file {}: {}", cfg.apps_file, e.what());
    return errc::invalid_argument;
  }
  log->info("{} apps loaded from {}", s.apps.size(), cfg.apps_file);

  std::string bootstrap = cfg.kafka.bootstrap;
  if (!cfg.kafka.bootstrap_file.empty()) {
    std::ifstream in(cfg.kafka.bootstrap_file);
    std::stringstream ss;
    ss << in.rdbuf();
    bootstrap = trim(ss.str());
    if (!in || bootstrap.empty()) {
      log->error("kafka.bootstrap_file {}: missing or empty", cfg.kafka.bootstrap_file);
      return errc::invalid_argument;
    }
  }
  bus::ProducerConfig pc;
  pc.kafka.bootstrap_servers = bootstrap;
  pc.kafka.client_id = cfg.kafka.client_id;
  for (const auto& p : cfg.kafka.properties) {
    const auto eq = p.find('=');
    pc.kafka.properties[p.substr(0, eq)] = p.substr(eq + 1);
  }
  pc.message_timeout = cfg.kafka.produce_timeout;
  pc.linger = cfg.kafka.linger;
  pc.max_queue_messages = cfg.kafka.max_queue_messages;
  try {
    s.producer = bus::make_kafka_producer(pc, &s.options.metrics->registry());
  } catch (const std::exception& e) {
    log->error("kafka configuration: {}", e.what());
    return errc::invalid_argument;
  }
  if (cfg.kafka.ensure_topics) {
    std::vector<bus::TopicSpec> topics;
    for (auto cls : {TrafficClass::kNormal, TrafficClass::kMarketing}) {
      topics.push_back({push_topic(cls), cfg.kafka.topic_partitions, -1});
      topics.push_back({fanout_topic(cls), cfg.kafka.topic_partitions, -1});
    }
    if (!cfg.readiness.probe_topic.empty()) topics.push_back({cfg.readiness.probe_topic, 1, -1});
    if (auto r = bus::ensure_topics(pc.kafka, topics); !r) {
      log->warn("could not ensure the push topics (brokers may auto-create them): {}",
                r.error().message());
    }
  }

  status_store::RedisStatusStoreOptions so;
  so.key_prefix = cfg.redis_key_prefix;
  auto store = status_store::make_redis_status_store(
      s.ex, cfg.redis_url, so, &s.options.metrics->registry(), *s.options.clock);
  if (!store) {
    log->error("redis.url {}: {}", cfg.redis_url, store.error().message());
    return store.error();
  }
  s.store = std::move(*store);

  ApiDeps deps;
  deps.apps = &s.apps;
  deps.store = s.store.get();
  deps.producer = s.producer.get();
  deps.metrics = s.options.metrics.get();
  deps.clock = s.options.clock;
  s.api = std::make_unique<Api>(deps, cfg);

  HttpServerOptions ho;
  ho.host = cfg.listen.host;
  ho.port = cfg.listen.port;
  ho.backlog = cfg.listen.backlog;
  ho.max_connections = cfg.listen.max_connections;
  ho.idle_timeout = cfg.listen.idle_timeout;
  ho.max_body_bytes = cfg.limits.max_body_bytes;
  ho.max_header_bytes = cfg.limits.max_header_bytes;
  ho.max_headers = cfg.limits.max_headers;
  ho.session_executors = s.options.session_executors;
  Api* api = s.api.get();
  s.http = std::make_unique<HttpServer>(
      s.ex, ho, [api](common::HttpRequest req) { return api->handle(std::move(req)); },
      &s.options.metrics->registry());
  if (auto r = s.http->start(); !r) {
    log->error("listen {}:{}: {}", cfg.listen.host, cfg.listen.port, r.error().message());
    return r.error();
  }

  if (cfg.admin_enabled) {
    s.admin = std::make_unique<common::AdminServer>(s.ex, cfg.admin, s.options.metrics);
    s.admin->add_readiness_check("status_store", [api] { return check_store(api); });
    s.admin->add_readiness_check("bus", [api] { return check_bus(api); });
    if (auto r = s.admin->start(); !r) {
      log->error("admin listener {}:{}: {}", cfg.admin.bind_address, cfg.admin.port,
                 r.error().message());
      return r.error();
    }
  }

  // Reachability at startup is information, not a reason to exit: readiness
  // reports it until Redis and Kafka are there.
  auto pinged = asio::co_spawn(asio::make_strand(s.ex), check_store(api), asio::use_future);
  if (pinged.wait_for(std::chrono::seconds(5)) != std::future_status::ready || !pinged.get()) {
    log->warn("status store {} is not reachable yet", cfg.redis_url);
  }
  return {};
}

uint16_t Service::port() const { return impl_->http ? impl_->http->port() : 0; }

uint16_t Service::admin_port() const { return impl_->admin ? impl_->admin->port() : 0; }

asio::awaitable<void> Service::shutdown() {
  if (impl_->http) co_await impl_->http->shutdown(impl_->cfg.shutdown_grace);
  if (impl_->admin) impl_->admin->stop();
}

void Service::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->release();
}

}  // namespace pushgw::push_api
