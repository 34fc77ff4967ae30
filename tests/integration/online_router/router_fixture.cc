#include "router_fixture.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdlib>
#include <future>
#include <stdexcept>
#include <thread>

#include "common/bus/kafka.h"
#include "online_router/routing.h"

namespace pushgw::online_router::testing {

namespace asio = boost::asio;

namespace {

template <class T>
T run(common::IoRunner& io, asio::awaitable<T> aw, std::chrono::milliseconds timeout = 10s) {
  auto fut = asio::co_spawn(io.executor(), std::move(aw), asio::use_future);
  if (fut.wait_for(timeout) != std::future_status::ready) {
    throw std::runtime_error("coroutine did not finish in time");
  }
  return fut.get();
}

}  // namespace

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

testsupport::RedisServer* RouterFixture::redis_ = nullptr;

void RouterFixture::SetUpTestSuite() {
  if (redis_ == nullptr) redis_ = new testsupport::RedisServer();
}

void RouterFixture::TearDownTestSuite() {
  delete redis_;
  redis_ = nullptr;
}

void RouterFixture::SetUp() {
  kafka_ = std::make_unique<testsupport::KafkaMock>(1);
  auto& c = kafka_->cluster();
  for (auto cls : {TrafficClass::kNormal, TrafficClass::kMarketing}) {
    ASSERT_TRUE(c.create_topic(push_topic(cls), kPushPartitions));
    ASSERT_TRUE(c.create_topic(fanout_topic(cls), kFanoutPartitions));
  }
  ASSERT_TRUE(c.create_topic(std::string(kOfflineTopic), kOfflinePartitions));
  for (const auto& n : kNodes) ASSERT_TRUE(c.create_topic(deliver_topic(n), kDeliverPartitions));

  io_ = std::make_unique<common::IoRunner>(2);
  work_.emplace(io_->context().get_executor());
  io_->start();
  prefix_ = kafka_->unique_name("r");
  for (auto& ch : prefix_) {
    if (ch == '{' || ch == '}' || ch == ' ') ch = '_';
  }
  status_store::RedisStatusStoreOptions so;
  so.key_prefix = prefix_.substr(0, 60);
  prefix_ = so.key_prefix;
  auto s = status_store::make_redis_status_store(io_->executor(), redis_->url(), so);
  ASSERT_TRUE(s) << s.error().message();
  store_ = std::move(*s);
  producer_ = bus::make_kafka_producer(kafka_->producer_config("push-api"));
}

void RouterFixture::TearDown() {
  if (producer_) producer_->close(2s);
  producer_.reset();
  if (store_) store_->client().close();
  if (io_) {
    // Let the client's close finish before the context stops.
    std::this_thread::sleep_for(50ms);
    work_.reset();
    io_->stop();
    io_->join();
  }
  store_.reset();
  io_.reset();
  kafka_.reset();
}

RouterConfig RouterFixture::config(TrafficClass c) const {
  RouterConfig cfg;
  cfg.traffic_class = c;
  cfg.threads = 1;
  cfg.batch_size = 100;
  cfg.batch_wait = 20ms;
  cfg.max_in_flight = 4;
  cfg.retry_backoff_min = 20ms;
  cfg.retry_backoff_max = 200ms;
  cfg.drain_timeout = 5s;
  cfg.redis_url = redis_->url();
  cfg.redis_key_prefix = prefix_;
  cfg.kafka.bootstrap = kafka_->bootstrap_servers();
  // The 2.0.2 mock holds a group join for about the session timeout (and
  // never completes it below ~2.2 s here).
  cfg.kafka.session_timeout = 2500ms;
  cfg.kafka.heartbeat_interval = 300ms;
  cfg.kafka.commit_interval = 100ms;
  cfg.kafka.message_timeout = 10s;
  cfg.kafka.linger = 1ms;
  cfg.kafka.ensure_topics_timeout = 2s;
  cfg.kafka.properties = {"topic.metadata.refresh.interval.ms=500"};
  if (const char* dbg = std::getenv("ROUTER_TEST_RDKAFKA_DEBUG")) {
    cfg.kafka.properties.push_back(std::string("debug=") + dbg);
    spdlog::set_level(spdlog::level::debug);
  }
  cfg.admin.port = 0;
  cfg.validate();
  return cfg;
}

std::unique_ptr<Router> RouterFixture::start_router(const RouterConfig& cfg) {
  auto r = std::make_unique<Router>(io_->executor(), cfg);
  auto started = r->start();
  EXPECT_TRUE(started) << started.error().message();
  return r;
}

uint64_t RouterFixture::register_device(const std::string& device, const std::string& node,
                                        const std::string& user, uint64_t connected_at_ms) {
  status_store::DeviceRegistration reg;
  reg.app_id = kApp;
  reg.device_id = device;
  reg.node_id = node;
  reg.session_id = "s-" + device;
  reg.platform = "android";
  reg.user_id = user;
  reg.connected_at_ms = connected_at_ms != 0 ? connected_at_ms : now_ms();
  auto r = run(*io_, store_->register_device(reg, 60s));
  if (!r) throw std::runtime_error("register_device: " + r.error().message());
  return r->epoch;
}

void RouterFixture::upsert_node(const std::string& node) {
  status_store::NodeInfo n;
  n.node_id = node;
  n.endpoints.tcp = "127.0.0.1:7000";
  auto r = run(*io_, store_->upsert_node(n, 60s));
  if (!r) throw std::runtime_error("upsert_node: " + r.error().message());
}

void RouterFixture::remove_node(const std::string& node) {
  auto r = run(*io_, store_->remove_node(node));
  if (!r) throw std::runtime_error("remove_node: " + r.error().message());
}

void RouterFixture::topic_add(const std::string& topic, const std::string& node, int64_t delta) {
  auto r = run(*io_, store_->topic_add(kApp, topic, node, delta));
  if (!r) throw std::runtime_error("topic_add: " + r.error().message());
}

std::map<std::string, int64_t> RouterFixture::counters(const std::string& message_id) {
  auto r = run(*io_, store_->get_counters(message_id));
  if (!r) throw std::runtime_error("get_counters: " + r.error().message());
  return *r;
}

namespace {

bus::v1::PushRequest base_request(const std::string& message_id, uint32_t ttl_s) {
  bus::v1::PushRequest r;
  r.set_schema_version(1);
  r.set_message_id(message_id);
  r.set_app_id(kApp);
  r.set_payload("payload of " + message_id);
  r.set_ttl_s(ttl_s);
  const uint64_t created = now_ms();
  r.set_created_ms(created);
  r.set_expires_ms(created + uint64_t{ttl_s} * 1000);
  return r;
}

}  // namespace

bus::v1::PushRequest RouterFixture::unicast(const std::string& message_id,
                                            const std::string& device, uint32_t ttl_s) {
  auto r = base_request(message_id, ttl_s);
  r.set_device_id(device);
  return r;
}

bus::v1::PushRequest RouterFixture::to_topic(const std::string& message_id,
                                             const std::string& topic, uint32_t ttl_s) {
  auto r = base_request(message_id, ttl_s);
  r.set_topic(topic);
  return r;
}

bus::v1::PushRequest RouterFixture::broadcast(const std::string& message_id, uint32_t ttl_s) {
  auto r = base_request(message_id, ttl_s);
  r.set_broadcast(true);
  return r;
}

bus::Delivered RouterFixture::push(const bus::v1::PushRequest& r, TrafficClass c) {
  bus::v1::PushRequest copy = r;
  copy.set_traffic_class(c == TrafficClass::kMarketing ? pushgw::v1::MARKETING
                                                       : pushgw::v1::NORMAL);
  if (!copy.device_id().empty()) {
    return produce_raw(push_topic(c), device_key(copy.app_id(), copy.device_id()),
                       copy.SerializeAsString());
  }
  return produce_raw(fanout_topic(c), copy.message_id(), copy.SerializeAsString());
}

std::vector<bus::Delivered> RouterFixture::push_all(const std::vector<bus::v1::PushRequest>& rs,
                                                    TrafficClass c) {
  std::vector<bus::OutRecord> records;
  for (auto r : rs) {
    r.set_traffic_class(c == TrafficClass::kMarketing ? pushgw::v1::MARKETING : pushgw::v1::NORMAL);
    bus::OutRecord o;
    if (!r.device_id().empty()) {
      o.topic = push_topic(c);
      o.key = device_key(r.app_id(), r.device_id());
    } else {
      o.topic = fanout_topic(c);
      o.key = r.message_id();
    }
    o.value = r.SerializeAsString();
    records.push_back(std::move(o));
  }
  auto results = run(*io_, producer_->produce_batch(std::move(records)), 20s);
  std::vector<bus::Delivered> out;
  for (const auto& d : results) {
    if (!d) throw std::runtime_error("produce: " + d.error().message());
    out.push_back(*d);
  }
  return out;
}

bus::Delivered RouterFixture::produce_raw(const std::string& topic, const std::string& key,
                                          const std::string& value) {
  auto d = run(*io_, producer_->produce(topic, key, value));
  if (!d) throw std::runtime_error("produce: " + d.error().message());
  return *d;
}

int64_t RouterFixture::count(const std::string& topic, int partitions) {
  int64_t n = 0;
  for (int p = 0; p < partitions; ++p) n += kafka_->high_watermark(topic, p);
  return n;
}

std::vector<bus::v1::DeliveryRecord> RouterFixture::deliveries(const std::string& topic,
                                                               int partitions) {
  const auto n = count(topic, partitions);
  std::vector<bus::v1::DeliveryRecord> out;
  if (n == 0) return out;
  auto records = kafka_->read(topic, partitions, static_cast<std::size_t>(n));
  for (const auto& rec : records) {
    bus::v1::DeliveryRecord dr;
    EXPECT_TRUE(dr.ParseFromString(rec.value)) << "undecodable record on " << topic;
    out.push_back(std::move(dr));
  }
  return out;
}

bool RouterFixture::wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

}  // namespace pushgw::online_router::testing
