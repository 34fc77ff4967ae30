#include "fixture.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <stdexcept>
#include <thread>

#include "common/bus/kafka.h"
#include "offline_router/partition_work.h"

namespace pushgw::offline_router::testing {

namespace asio = boost::asio;

namespace {

template <class T>
T run(common::IoRunner& io, asio::awaitable<T> aw, std::chrono::milliseconds timeout = 15s) {
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

void RouterFixture::SetUp() {
  kafka_ = std::make_unique<testsupport::KafkaMock>(1);
  dir_ = std::make_unique<testsupport::TempDir>("offline-router-test");
  offline_ = kafka_->create_topic(kPartitions, "offline");
  presence_ = kafka_->create_topic(kPartitions, "presence");
  acks_ = kafka_->create_topic(kPartitions, "acks");
  deliver_prefix_ = kafka_->unique_name("deliver") + ".";
  for (const char* n : {"n1", "n2"}) {
    ASSERT_TRUE(kafka_->cluster().create_topic(deliver_topic(n), 1));
  }
  group_ = kafka_->unique_name("group");
  io_ = std::make_unique<common::IoRunner>(1);
  work_.emplace(io_->context().get_executor());
  io_->start();
  producer_ = bus::make_kafka_producer(kafka_->producer_config("offline-test-producer"));
}

void RouterFixture::TearDown() {
  stop_router();
  if (producer_) producer_->close(2s);
  producer_.reset();
  work_.reset();
  io_->stop();
  io_->join();
  io_.reset();
  kafka_.reset();
  dir_.reset();
}

RouterConfig RouterFixture::config() const {
  RouterConfig c = config_schema().defaults();
  c.kafka.bootstrap = kafka_->bootstrap_servers();
  c.kafka.client_id = "offline-router-test";
  c.kafka.group_id = group_;
  c.kafka.offline_topic = offline_;
  c.kafka.presence_topic = presence_;
  c.kafka.acks_topic = acks_;
  c.kafka.deliver_prefix = deliver_prefix_;
  c.kafka.partitions = kPartitions;
  c.kafka.session_timeout = 3s;
  c.kafka.heartbeat_interval = 500ms;
  c.kafka.message_timeout = 10s;
  c.kafka.properties = {"topic.metadata.refresh.interval.ms=500"};
  c.store.data_dir = (dir_->path() / "data").string();
  c.store.write_buffer_mb = 4;
  c.store.block_cache_mb = 4;
  c.store.open_wait = 10s;
  c.batch.poll_timeout = 50ms;
  c.batch.retry_backoff = 200ms;
  c.admin.port = 0;
  c.validate();
  return c;
}

void RouterFixture::start_router(const RouterConfig& cfg, const Clock* clock) {
  RouterOptions options;
  options.clock = clock;
  router_ = std::make_unique<OfflineRouter>(io_->executor(), cfg, options);
  auto started = router_->start();
  ASSERT_TRUE(started) << started.error().message();
  ASSERT_TRUE(wait_for([&] { return router_->stats().partitions.size() == kPartitions; }, 30s))
      << "the router did not get its partitions";
  ASSERT_TRUE(wait_for([&] { return router_->ready(); }, 30s))
      << "not ready; batches " << router_->stats().batches << ", store failures "
      << router_->stats().store_failures;
}

void RouterFixture::stop_router() {
  if (!router_) return;
  run(*io_, router_->shutdown(), 30s);
  router_.reset();
}

std::unique_ptr<OfflineRouter> RouterFixture::start_member(const RouterConfig& cfg) {
  auto r = std::make_unique<OfflineRouter>(io_->executor(), cfg);
  auto started = r->start();
  EXPECT_TRUE(started) << started.error().message();
  return r;
}

void RouterFixture::shutdown(OfflineRouter& r) { run(*io_, r.shutdown(), 30s); }

result<DeviceStored> RouterFixture::device_stored(const std::string& device, OfflineRouter* r) {
  OfflineRouter& target = r != nullptr ? *r : *router_;
  return run(*io_, target.device_stored(kApp, device), 30s);
}

bus::v1::DeliveryRecord RouterFixture::message(const std::string& device, uint64_t seq,
                                               uint64_t expires_ms, const std::string& id,
                                               uint64_t epoch) {
  bus::v1::DeliveryRecord r;
  r.set_schema_version(1);
  r.set_app_id(kApp);
  r.set_device_id(device);
  r.set_epoch(epoch);
  auto* p = r.mutable_push();
  p->set_message_id(id.empty() ? device + "-m" + std::to_string(seq) : id);
  p->set_seq(seq);
  p->set_payload("payload " + std::to_string(seq));
  p->set_created_ms(now_ms());
  p->set_expires_ms(expires_ms);
  p->set_ack_required(true);
  return r;
}

bus::Delivered RouterFixture::store(const bus::v1::DeliveryRecord& r) {
  return produce(offline_, device_key(r.app_id(), r.device_id()), r.SerializeAsString());
}

bus::Delivered RouterFixture::connect(const std::string& device, const std::string& node,
                                      uint64_t epoch, uint64_t last_seq) {
  bus::v1::Presence p;
  p.set_schema_version(1);
  p.set_kind(bus::v1::Presence::CONNECTED);
  p.set_app_id(kApp);
  p.set_device_id(device);
  p.set_node_id(node);
  p.set_epoch(epoch);
  p.set_session_id("s-" + std::to_string(epoch));
  p.set_last_seq(last_seq);
  p.set_at_ms(now_ms());
  return produce(presence_, device_key(kApp, device), p.SerializeAsString());
}

bus::Delivered RouterFixture::disconnect(const std::string& device, const std::string& node,
                                         uint64_t epoch) {
  bus::v1::Presence p;
  p.set_schema_version(1);
  p.set_kind(bus::v1::Presence::DISCONNECTED);
  p.set_app_id(kApp);
  p.set_device_id(device);
  p.set_node_id(node);
  p.set_epoch(epoch);
  p.set_at_ms(now_ms());
  return produce(presence_, device_key(kApp, device), p.SerializeAsString());
}

bus::Delivered RouterFixture::ack(const std::string& device, const std::vector<Acked>& acked,
                                  uint64_t last_seq) {
  bus::v1::AckEvent ev;
  ev.set_schema_version(1);
  ev.set_app_id(kApp);
  ev.set_device_id(device);
  for (const auto& a : acked) {
    auto* m = ev.add_acked();
    m->set_message_id(a.id);
    m->set_seq(a.seq);
  }
  ev.set_last_seq(last_seq);
  ev.set_node_id("n1");
  ev.set_at_ms(now_ms());
  return produce(acks_, device_key(kApp, device), ev.SerializeAsString());
}

bus::Delivered RouterFixture::produce(const std::string& topic, const std::string& key,
                                      const std::string& value) {
  auto d = run(*io_, producer_->produce(topic, key, value));
  if (!d) throw std::runtime_error("produce: " + d.error().message());
  return *d;
}

std::vector<bus::v1::DeliveryRecord> RouterFixture::deliveries(const std::string& node,
                                                               std::size_t count) {
  std::vector<bus::v1::DeliveryRecord> out;
  for (const auto& rec : kafka_->read(deliver_topic(node), 1, count, 15s)) {
    bus::v1::DeliveryRecord dr;
    EXPECT_TRUE(dr.ParseFromString(rec.value)) << "undecodable record on " << rec.topic;
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

}  // namespace pushgw::offline_router::testing
