#include "node_fixture.h"

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/auth/device_token.h"
#include "common/bus/kafka.h"
#include "common/clock.h"
#include "conn_node/frame_codec.h"
#include "status_store/redis_keys.h"
#include "testsupport/ports.h"
#include "testsupport/process.h"

namespace pushgw::conn_node::testing {

namespace asio = boost::asio;

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

namespace {

asio::awaitable<result<std::unique_ptr<client::Link>>> connect_link(
    asio::any_io_executor ex, client::Endpoint ep, client::ConnectOptions opts) {
  co_return co_await client::Link::connect(ex, std::move(ep), std::move(opts));
}

asio::awaitable<result<client::HelloReply>> do_hello(client::Device* dev, std::string device,
                                                     std::string token,
                                                     std::vector<std::string> topics,
                                                     client::HelloOptions options) {
  co_return co_await dev->hello(kApp, std::move(device), std::move(token), 0, std::move(topics),
                                options);
}

asio::awaitable<result<v1::Frame>> do_recv(client::Device* dev, std::chrono::milliseconds t) {
  co_return co_await dev->recv(t);
}

asio::awaitable<result<v1::Frame>> do_recv_until(client::Device* dev, v1::Frame::BodyCase kind,
                                                 std::chrono::milliseconds t) {
  co_return co_await dev->recv_until(kind, t);
}

asio::awaitable<result<void>> do_send(client::Device* dev, v1::Frame frame) {
  co_return co_await dev->link().send(frame);
}

asio::awaitable<result<void>> do_send_raw(client::Device* dev, std::string bytes) {
  co_return co_await dev->link().send_raw(std::move(bytes));
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

}  // namespace

NodeFixture::NodeFixture() : dir_("conn-node-test") {
  redis_ = std::make_unique<testsupport::RedisServer>();
  kafka_ = std::make_unique<testsupport::KafkaMock>(1);
  cert_file_ = dir_.file("cert.pem").string();
  key_file_ = dir_.file("key.pem").string();
  const int rc = testsupport::run_command(
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", key_file_, "-out", cert_file_, "-days", "2", "-subj", "/CN=localhost",
       "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"},
      10s, dir_.file("openssl.log").string());
  if (rc != 0) throw std::runtime_error("openssl req failed");
  apps_file_ = dir_.file("apps.toml").string();
  write_file(apps_file_, std::string("[[app]]\nid = \"") + kApp +
                             "\"\napi_secret = \"demo-api-secret\"\ndevice_secret = \"" + kSecret +
                             "\"\nupstream_channels = [\"chat\"]\n\n[[app]]\nid = \"" + kOtherApp +
                             "\"\napi_secret = \"other-api-secret\"\ndevice_secret = \"" +
                             kOtherSecret + "\"\nupstream_channels = []\n");
  client::TlsOptions tls;
  tls.ca_file = cert_file_;
  auto ctls = client::ClientTls::create(tls);
  if (!ctls) throw std::runtime_error("ClientTls::create: " + ctls.error().message());
  client_tls_ = *ctls;
  control_ = std::make_unique<common::IoRunner>(1);
  work_.emplace(control_->context().get_executor());
  control_->start();
  // The mock has no CreateTopics: create what nodes use up front.
  for (const char* t : {"pushgw.presence", "pushgw.acks", "pushgw.upstream.chat"}) {
    if (!kafka_->cluster().create_topic(t, 1)) throw std::runtime_error("create_topic failed");
  }
  producer_ = bus::make_kafka_producer(kafka_->producer_config("test-deliverer"));
  auto store = status_store::make_redis_status_store(ioc_.get_executor(), redis_->url());
  if (!store) throw std::runtime_error("status store: " + store.error().message());
  store_ = std::move(*store);
}

NodeFixture::~NodeFixture() {
  for (auto& n : nodes_) n->stop();
  nodes_.clear();
  if (producer_) producer_->close(1s);
  store_->client().close();
  work_.reset();
  control_->stop();
  control_->join();
}

NodeConfig NodeFixture::node_config(const std::string& node_id) {
  NodeConfig c = config_schema().defaults();
  c.node_id = node_id;
  c.threads = 2;
  c.apps_file = apps_file_;
  c.listen.host = "127.0.0.1";
  c.listen.tcp_port = testsupport::free_port();
  c.listen.tls_port = testsupport::free_port();
  c.listen.ws_port = testsupport::free_port();
  c.listen.wss_port = testsupport::free_port();
  c.tls.cert_file = cert_file_;
  c.tls.key_file = key_file_;
  c.status.redis_url = redis_->url();
  c.kafka.bootstrap = kafka_->bootstrap_servers();
  c.kafka.session_timeout = 3000ms;
  c.kafka.heartbeat_interval = 500ms;
  c.kafka.properties = {"topic.metadata.refresh.interval.ms=500", "fetch.wait.max.ms=20",
                        "reconnect.backoff.ms=50", "reconnect.backoff.max.ms=500"};
  c.kafka.message_timeout = 3000ms;
  c.limits.hello_timeout = std::chrono::seconds(1);
  c.replay_wait = 0ms;
  c.admin.port = 0;
  return c;
}

Node& NodeFixture::start_node(const std::string& node_id,
                              const std::function<void(NodeConfig&)>& tweak) {
  (void)kafka_->cluster().create_topic("pushgw.deliver." + node_id, 1);
  for (int attempt = 0; attempt < 3; ++attempt) {
    NodeConfig c = node_config(node_id);
    if (tweak) tweak(c);
    c.validate();
    auto node = std::make_unique<Node>(control_->executor(), c);
    auto r = node->start();
    if (r) {
      nodes_.push_back(std::move(node));
      return *nodes_.back();
    }
    // A free port may have been taken meanwhile: retry with new ones.
    ADD_FAILURE_AT(__FILE__, __LINE__) << "node start failed: " << r.error().message()
                                       << (attempt < 2 ? " (retrying)" : "");
  }
  throw std::runtime_error("node did not start");
}

client::Endpoint NodeFixture::endpoint(const Node& node, ListenerKind kind) const {
  client::Endpoint e;
  e.transport = static_cast<client::Transport>(static_cast<int>(kind));
  e.host = "127.0.0.1";
  e.port = node.port(kind);
  return e;
}

std::string NodeFixture::token(const std::string& device, const std::string& app,
                               const std::string& secret, int64_t ttl_s) const {
  auth::DeviceClaims c;
  c.app_id = app;
  c.device_id = device;
  c.user_id = "user-" + device;
  c.exp_s = static_cast<uint64_t>(static_cast<int64_t>(SystemClock::instance().now_s()) + ttl_s);
  return auth::mint_device_token(c, secret);
}

std::unique_ptr<client::Device> NodeFixture::connect(const Node& node, ListenerKind kind) {
  client::ConnectOptions opts;
  opts.tls = client_tls_;
  opts.connect_timeout = 5s;
  auto link = run(ioc_, connect_link(ioc_.get_executor(), endpoint(node, kind), opts));
  if (!link) throw std::runtime_error("connect failed: " + link.error().message());
  return std::make_unique<client::Device>(std::move(*link));
}

client::HelloReply NodeFixture::hello(client::Device& dev, const std::string& device,
                                      const std::string& tok, std::vector<std::string> topics,
                                      client::HelloOptions options) {
  options.timeout = std::min(options.timeout, std::chrono::milliseconds(5000));
  auto r = run(ioc_, do_hello(&dev, device, tok, std::move(topics), options));
  if (!r) throw std::runtime_error("hello failed: " + r.error().message());
  return *r;
}

std::unique_ptr<client::Device> NodeFixture::online(const Node& node, ListenerKind kind,
                                                    const std::string& device,
                                                    std::vector<std::string> topics) {
  auto dev = connect(node, kind);
  auto reply = hello(*dev, device, token(device), std::move(topics));
  if (!reply.accepted()) {
    throw std::runtime_error("hello not accepted: " +
                             (reply.error ? reply.error->message() : std::string("redirect")));
  }
  return dev;
}

v1::Frame NodeFixture::recv(client::Device& dev, std::chrono::milliseconds timeout) {
  auto r = run(ioc_, do_recv(&dev, timeout), timeout + 5s);
  if (!r) throw std::runtime_error("recv failed: " + r.error().message());
  return *r;
}

v1::Frame NodeFixture::recv_kind(client::Device& dev, v1::Frame::BodyCase kind,
                                 std::chrono::milliseconds timeout) {
  auto r = run(ioc_, do_recv_until(&dev, kind, timeout), timeout + 5s);
  if (!r) throw std::runtime_error("recv_until failed: " + r.error().message());
  return *r;
}

bool NodeFixture::silent(client::Device& dev, std::chrono::milliseconds wait) {
  auto r = run(ioc_, do_recv(&dev, wait), wait + 5s);
  return !r && r.error() == make_error_code(errc::timeout);
}

bool NodeFixture::closed_by_server(client::Device& dev, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = run(ioc_, do_recv(&dev, 200ms), 10s);
    if (r) continue;  // frames before the close are skipped
    if (r.error() == make_error_code(errc::timeout)) continue;
    return client::is_peer_closed(r.error()) || r.error() == asio::error::operation_aborted;
  }
  return false;
}

void NodeFixture::send(client::Device& dev, const v1::Frame& frame) {
  auto r = run(ioc_, do_send(&dev, frame));
  if (!r) throw std::runtime_error("send failed: " + r.error().message());
}

void NodeFixture::send_raw(client::Device& dev, std::string bytes) {
  auto r = run(ioc_, do_send_raw(&dev, std::move(bytes)));
  if (!r) throw std::runtime_error("send_raw failed: " + r.error().message());
}

namespace {
asio::awaitable<result<std::vector<std::optional<status_store::DeviceStatus>>>> do_lookup(
    status_store::StatusStore* store, std::string app, std::string device) {
  std::vector<std::string> ids{std::move(device)};
  co_return co_await store->lookup(std::move(app), std::move(ids));
}
asio::awaitable<result<std::map<std::string, int64_t>>> do_topic_nodes(
    status_store::StatusStore* store, std::string topic) {
  co_return co_await store->topic_nodes(kApp, std::move(topic));
}
asio::awaitable<result<std::vector<status_store::NodeInfo>>> do_list_nodes(
    status_store::StatusStore* store) {
  co_return co_await store->list_nodes();
}
}  // namespace

std::optional<status_store::DeviceStatus> NodeFixture::lookup(const std::string& device,
                                                              const std::string& app) {
  auto r = run(ioc_, do_lookup(store_.get(), app, device));
  if (!r || r->size() != 1) throw std::runtime_error("status store lookup failed");
  return (*r)[0];
}

std::string NodeFixture::registered_node(const std::string& device, const std::string& app) {
  auto s = lookup(device, app);
  return s ? s->node_id : std::string();
}

uint64_t NodeFixture::registered_epoch(const std::string& device, const std::string& app) {
  auto s = lookup(device, app);
  return s ? s->epoch : 0;
}

std::string NodeFixture::registered_session(const std::string& device, const std::string& app) {
  auto s = lookup(device, app);
  return s ? s->session_id : std::string();
}

int64_t NodeFixture::topic_count(const std::string& topic, const std::string& node) {
  auto r = run(ioc_, do_topic_nodes(store_.get(), topic));
  if (!r) throw std::runtime_error("topic_nodes failed");
  auto it = r->find(node);
  return it == r->end() ? 0 : it->second;
}

std::optional<status_store::NodeInfo> NodeFixture::node_info(const std::string& node) {
  auto r = run(ioc_, do_list_nodes(store_.get()));
  if (!r) throw std::runtime_error("list_nodes failed");
  for (auto& n : *r) {
    if (n.node_id == node) return n;
  }
  return std::nullopt;
}

namespace {
asio::awaitable<std::vector<result<bus::Delivered>>> produce_all(bus::Producer* p,
                                                                 std::vector<bus::OutRecord> recs) {
  co_return co_await p->produce_batch(std::move(recs));
}
}  // namespace

void NodeFixture::deliver(const std::string& node_id, const bus::v1::DeliveryRecord& record,
                          const std::string& key) {
  std::vector<bus::OutRecord> recs{{"pushgw.deliver." + node_id, key, record.SerializeAsString(),
                                    {}, std::nullopt}};
  auto results = run(ioc_, produce_all(producer_.get(), std::move(recs)));
  for (const auto& r : results) {
    if (!r) throw std::runtime_error("produce failed: " + r.error().message());
  }
}

void NodeFixture::deliver_many(const std::string& node_id,
                               const std::vector<bus::v1::DeliveryRecord>& records) {
  std::vector<bus::OutRecord> recs;
  for (const auto& r : records) {
    recs.push_back({"pushgw.deliver." + node_id, r.app_id() + "/" + r.device_id(),
                    r.SerializeAsString(), {}, std::nullopt});
  }
  auto results = run(ioc_, produce_all(producer_.get(), std::move(recs)), 30s);
  for (const auto& r : results) {
    if (!r) throw std::runtime_error("produce failed: " + r.error().message());
  }
}

bus::v1::DeliveryRecord NodeFixture::push_record(const std::string& device,
                                                 const std::string& message_id, uint64_t seq,
                                                 const std::string& payload,
                                                 bool ack_required) const {
  bus::v1::DeliveryRecord rec;
  rec.set_schema_version(1);
  rec.set_app_id(kApp);
  rec.set_device_id(device);
  auto* p = rec.mutable_push();
  p->set_message_id(message_id);
  p->set_seq(seq);
  p->set_payload(payload);
  const uint64_t now = SystemClock::instance().now_ms();
  p->set_created_ms(now);
  p->set_expires_ms(now + 60'000);
  p->set_ack_required(ack_required);
  return rec;
}

void NodeFixture::await_delivery_ready(Node& node) {
  auto probe = online(node, ListenerKind::kTcp, "probe");
  auto rec = push_record("probe", "probe-1", 1, "probe");
  rec.set_replay(true);  // never held
  deliver(node.config().node_id, rec, "demo/probe");
  const v1::Frame f = recv(*probe, 15s);
  if (!f.has_push()) throw std::runtime_error("probe push not delivered");
  run(ioc_, [](client::Device* d) -> asio::awaitable<int> {
    co_await d->close();
    co_return 0;
  }(probe.get()));
  if (!eventually([&] { return node.stats().sessions_total == 0; })) {
    throw std::runtime_error("probe session did not end");
  }
}

std::vector<bus::Record> NodeFixture::read_topic(const std::string& topic, size_t count,
                                                 std::chrono::milliseconds timeout) {
  return kafka_->read(topic, 1, count, timeout);
}

double NodeFixture::metric(Node& node, const std::string& name_and_labels) {
  std::istringstream in(node.metrics().scrape());
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name_and_labels + " ", 0) == 0) {
      return std::stod(line.substr(name_and_labels.size() + 1));
    }
  }
  return 0;
}

}  // namespace pushgw::conn_node::testing
