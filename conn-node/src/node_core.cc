#include "node_core.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "common/bus/kafka.h"
#include "common/log.h"
#include "common/redis/command.h"
#include "common/service.h"
#include "common/spawn.h"
#include "conn_node/frame_codec.h"
#include "link.h"
#include "listener.h"
#include "status_store/redis_status_store.h"
#include "tls_context.h"
#include "worker.h"

namespace pushgw::conn_node {

namespace asio = boost::asio;
using asio::use_awaitable;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

namespace {

std::shared_ptr<spdlog::logger> log() { return common::logger("conn"); }

/// Waits for a std::future without blocking forever; false on timeout.
template <class T>
bool wait_future(std::future<T>& f, milliseconds timeout) {
  return f.wait_for(timeout) == std::future_status::ready;
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

uint64_t fnv1a(std::string_view a, std::string_view b) {
  uint64_t h = 1469598103934665603ULL;
  for (std::string_view part : {a, std::string_view("\n"), b}) {
    for (unsigned char c : part) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  }
  return h;
}

/// The idempotency key of an Upstream (status store ids are at most 256 bytes).
std::string upstream_key(std::string_view device_id, std::string_view request_id) {
  std::string k = "up:";
  k.append(device_id).push_back(':');
  k.append(request_id);
  if (k.size() <= 256) return k;
  return fmt::format("up:h:{:016x}", fnv1a(device_id, request_id));
}

bool push_expired(const v1::Push& p, uint64_t now_ms) {
  // expires_ms == created_ms marks an online-only (ttl 0) message: it has no
  // delivery window of its own and goes out whenever the device is online.
  return p.expires_ms() != 0 && p.expires_ms() != p.created_ms() && now_ms > p.expires_ms();
}

}  // namespace

NodeCore::NodeCore(asio::any_io_executor control, NodeConfig cfg, NodeOptions options)
    : control_(control),
      strand_(asio::make_strand(control)),
      cfg_(std::move(cfg)),
      options_(std::move(options)),
      process_metrics_(options_.metrics ? options_.metrics
                                        : std::make_shared<common::Metrics>("conn-node")),
      accept_bucket_(cfg_.limits.accept_rate, cfg_.limits.accept_burst, 0),
      lease_timer_(strand_),
      registry_timer_(strand_),
      counters_timer_(strand_) {
  if (options_.clock == nullptr) options_.clock = &SystemClock::instance();
  metrics_ = std::make_unique<NodeMetrics>(process_metrics_->registry());
  deliver_topic_ = "pushgw.deliver." + cfg_.node_id;
  std::random_device rd;
  session_salt_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

NodeCore::~NodeCore() { stop(); }

uint64_t NodeCore::heartbeat_timeout_ms() const {
  if (cfg_.limits.heartbeat_timeout.count() > 0) {
    return static_cast<uint64_t>(cfg_.limits.heartbeat_timeout.count());
  }
  return uint64_t{3} * cfg_.limits.heartbeat_s * 1000;
}

std::string NodeCore::new_session_id() {
  // 14 characters of [A-Za-z0-9_-] (84 bits): short enough for the string's
  // inline buffer, so a session id costs no allocation in the link and the
  // directory. splitmix64 of a random salt and a counter: unique in practice.
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  const uint64_t n = session_counter_.fetch_add(1, std::memory_order_relaxed);
  uint64_t a = mix(session_salt_ + n);
  uint64_t b = mix(a ^ options_.clock->now_ms());
  std::string id(14, '\0');
  for (int i = 0; i < 14; ++i) {
    uint64_t& src = i < 10 ? a : b;
    id[static_cast<size_t>(i)] = kAlphabet[src & 63];
    src >>= 6;
  }
  return id;
}

std::string NodeCore::dir_key(std::string_view app, std::string_view device) {
  std::string k;
  k.reserve(app.size() + 1 + device.size());
  k.append(app).push_back('/');
  k.append(device);
  return k;
}

// ---- lifecycle ---------------------------------------------------------------

result<void> NodeCore::start() {
  if (started_.exchange(true)) return errc::invalid_argument;
  auto lg = log();
  try {
    apps_ = auth::AppRegistry::load_file(cfg_.apps_file);
  } catch (const std::exception& e) {
    lg->error("apps file {}: {}", cfg_.apps_file, e.what());
    return errc::invalid_argument;
  }
  if (cfg_.listen.tls_port != 0 || cfg_.listen.wss_port != 0) {
    try {
      tls_ = std::make_unique<TlsContext>(cfg_.tls);
    } catch (const std::exception& e) {
      lg->error("{}", e.what());
      return errc::invalid_argument;
    }
  }

  // Capacity: every link is an fd.
  auto fds = common::raise_fd_limit();
  const uint64_t fd_limit = fds ? *fds : 1024;
  const uint64_t by_fds = fd_limit > cfg_.limits.fd_reserve ? fd_limit - cfg_.limits.fd_reserve : 0;
  capacity_ = cfg_.limits.max_links > 0 ? std::min<uint64_t>(cfg_.limits.max_links, by_fds) : by_fds;
  metrics_->capacity->Set(static_cast<double>(capacity_));
  lg->info("node {}: fd limit {}, link capacity {}", cfg_.node_id, fd_limit, capacity_);

  // Kafka.
  std::string bootstrap = cfg_.kafka.bootstrap;
  if (!cfg_.kafka.bootstrap_file.empty()) {
    std::ifstream in(cfg_.kafka.bootstrap_file);
    std::stringstream ss;
    ss << in.rdbuf();
    bootstrap = trim(ss.str());
    if (!in || bootstrap.empty()) {
      lg->error("kafka.bootstrap_file {}: missing or empty", cfg_.kafka.bootstrap_file);
      return errc::invalid_argument;
    }
  }
  bus::KafkaConfig kafka;
  kafka.bootstrap_servers = bootstrap;
  kafka.client_id = cfg_.kafka.client_id + "." + cfg_.node_id;
  for (const auto& p : cfg_.kafka.properties) {
    const auto eq = p.find('=');
    kafka.properties[p.substr(0, eq)] = p.substr(eq + 1);
  }
  try {
    bus::ProducerConfig pc;
    pc.kafka = kafka;
    pc.message_timeout = cfg_.kafka.message_timeout;
    pc.linger = cfg_.kafka.linger;
    producer_ = bus::make_kafka_producer(pc, &process_metrics_->registry());

    std::vector<bus::TopicSpec> topics{{deliver_topic_, cfg_.kafka.deliver_partitions, -1}};
    auto ensured = bus::ensure_topics(kafka, topics);
    if (!ensured) {
      lg->error("cannot create/find Kafka topic {}: {}", deliver_topic_,
                ensured.error().message());
      release_resources();
      return ensured.error();
    }
    // Topics this node produces to: best effort (brokers may auto-create).
    std::vector<bus::TopicSpec> out_topics{{"pushgw.presence", 1, -1}, {"pushgw.acks", 1, -1}};
    for (const auto& app : apps_.apps()) {
      for (const auto& ch : app.upstream_channels) {
        if (ch != "*") out_topics.push_back({"pushgw.upstream." + ch, 1, -1});
      }
    }
    if (auto r = bus::ensure_topics(kafka, out_topics); !r) {
      lg->warn("could not ensure the presence/acks/upstream topics: {}", r.error().message());
    }

    bus::ConsumerConfig cc;
    cc.kafka = kafka;
    // The group has one member (this node): eager assignment is enough, and
    // librdkafka 2.0.2's cooperative-sticky assignor can abort the process
    // (assertion in rd_kafka_sticky_assignor_state_destroy) when the broker
    // goes away. kafka.properties may still override it.
    cc.kafka.properties.emplace("partition.assignment.strategy", "range");
    cc.group_id = "conn-node." + cfg_.node_id;
    cc.auto_offset_reset = "earliest";
    cc.session_timeout = cfg_.kafka.session_timeout;
    cc.heartbeat_interval = cfg_.kafka.heartbeat_interval;
    // The handlers are posted to control_ and may run after this core is
    // gone (a revoke while closing): they share the counter, not `this`.
    bus::RebalanceHandlers rebalance;
    rebalance.on_assigned = [n = delivery_partitions_](std::vector<bus::TopicPartition> tps) {
      n->fetch_add(tps.size(), std::memory_order_relaxed);
    };
    rebalance.on_revoked = [n = delivery_partitions_](std::vector<bus::TopicPartition> tps) {
      uint64_t cur = n->load(std::memory_order_relaxed);
      while (!n->compare_exchange_weak(cur, cur > tps.size() ? cur - tps.size() : 0,
                                       std::memory_order_relaxed)) {
      }
    };
    consumer_ = bus::make_kafka_consumer(cc, control_, std::move(rebalance),
                                         &process_metrics_->registry());
    if (auto r = consumer_->subscribe({deliver_topic_}); !r) {
      lg->error("cannot subscribe to {}: {}", deliver_topic_, r.error().message());
      release_resources();
      return r.error();
    }
  } catch (const std::exception& e) {
    lg->error("kafka configuration: {}", e.what());
    release_resources();
    return errc::invalid_argument;
  }

  // Status store.
  auto store = status_store::make_redis_status_store(control_, cfg_.status.redis_url, {},
                                                     &process_metrics_->registry(), *options_.clock);
  if (!store) {
    lg->error("redis.url {}: {}", cfg_.status.redis_url, store.error().message());
    release_resources();
    return store.error();
  }
  store_ = std::move(*store);

  // Workers and listeners.
  unsigned threads = cfg_.threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  const double marketing_per_worker = cfg_.limits.marketing_rate / threads;
  for (unsigned i = 0; i < threads; ++i) {
    workers_.push_back(std::make_unique<Worker>(*this, i, marketing_per_worker));
  }
  for (int i = 0; i < kListenerKinds; ++i) {
    const auto kind = static_cast<ListenerKind>(i);
    if (cfg_.port(kind) == 0) continue;
    auto l = std::make_unique<Listener>(*this, kind, strand_);
    if (auto r = l->bind(cfg_.listen.host, cfg_.port(kind), cfg_.listen.backlog); !r) {
      lg->error("{} listener {}:{}: {}", listener_name(kind), cfg_.listen.host, cfg_.port(kind),
                r.error().message());
      listeners_.clear();
      release_resources();
      return r.error();
    }
    listeners_.push_back(std::move(l));
  }
  for (auto& w : workers_) w->start();

  auto fut = asio::co_spawn(strand_, start_async(), asio::use_future);
  result<void> res = make_error_code(errc::timeout);
  if (wait_future(fut, milliseconds(15'000))) res = fut.get();
  if (!res) {
    lg->error("node {} failed to start: {}", cfg_.node_id, res.error().message());
    stop();
    return res.error();
  }
  for (const auto& l : listeners_) {
    lg->info("node {}: {} listener on {}:{}", cfg_.node_id, listener_name(l->kind()),
             cfg_.listen.host, l->port());
  }
  return {};
}

asio::awaitable<result<void>> NodeCore::start_async() {
  if (auto r = co_await store_->ping(); !r) {
    log()->error("status store {} unreachable: {}", cfg_.status.redis_url, r.error().message());
    co_return r.error();
  }
  if (auto r = co_await register_node(); !r) co_return r.error();
  co_await refresh_peers();
  for (auto& l : listeners_) l->start();
  common::spawn_logged(strand_, delivery_loop(), "conn-node delivery loop");
  common::spawn_logged(strand_, lease_loop(), "conn-node lease loop");
  common::spawn_logged(strand_, registry_loop(), "conn-node registry loop");
  common::spawn_logged(strand_, counters_loop(), "conn-node counters loop");
  co_return result<void>{};
}

void NodeCore::release_resources() {
  if (consumer_) {
    auto fut = asio::co_spawn(control_, consumer_->close(), asio::use_future);
    wait_future(fut, milliseconds(10'000));
  }
  if (producer_) producer_->close(milliseconds(2000));
  if (store_) store_->client().close();
}

asio::awaitable<void> NodeCore::drain(bool fast) {
  if (stopping_) co_return;
  if (!draining_.exchange(true)) {
    metrics_->draining->Set(1);
    log()->info("node {}: draining ({} sessions)", cfg_.node_id,
                stats().sessions_total);
    // Leave the dispatch list first, so no new devices are sent here.
    if (auto r = co_await register_node(); !r) {
      log()->warn("node {}: could not mark draining in the registry: {}", cfg_.node_id,
                  r.error().message());
    }
    co_await refresh_peers();
  }
  const double rate = fast ? cfg_.drain.fast_rate : cfg_.drain.rate;
  const auto deadline = fast ? SteadyClock::now() + cfg_.drain.shutdown_grace
                             : SteadyClock::time_point::max();
  co_await redirect_all(rate, deadline);
}

asio::awaitable<void> NodeCore::redirect_all(double rate, SteadyClock::time_point deadline) {
  asio::steady_timer timer(strand_);
  if (drain_running_ && deadline == SteadyClock::time_point::max()) {
    // Another drain is redirecting: wait for the directory to empty.
    while (!directory_.empty() && !stopping_) {
      if (!co_await sleep(timer, milliseconds(50))) break;
    }
    co_return;
  }
  drain_running_ = true;
  std::unordered_set<std::string> done;  // sessions already redirected
  std::array<v1::Redirect, kListenerKinds> redirects;
  for (int i = 0; i < kListenerKinds; ++i) {
    redirects[i] = redirect_for(static_cast<ListenerKind>(i), "draining");
  }
  const auto start = SteadyClock::now();
  uint64_t sent = 0;
  while (!stopping_ && SteadyClock::now() < deadline) {
    std::vector<std::pair<unsigned, LinkOp>> todo;
    for (const auto& [key, e] : directory_) {
      if (done.count(e.session_id) != 0) continue;
      LinkOp op;
      op.kind = LinkOp::Kind::kRedirect;
      op.link_id = e.link_id;
      op.frame = std::make_shared<const std::string>(
          redirects[static_cast<int>(e.listener)].SerializeAsString());
      todo.emplace_back(e.worker, std::move(op));
      done.insert(e.session_id);
    }
    if (todo.empty()) {
      if (directory_.empty()) break;
      metrics_->drain_remaining->Set(static_cast<double>(directory_.size()));
      if (!co_await sleep(timer, milliseconds(20))) break;
      continue;
    }
    metrics_->drain_remaining->Set(static_cast<double>(todo.size()));
    size_t i = 0;
    while (i < todo.size() && !stopping_) {
      // Allowed so far: rate * elapsed (plus one to start at once).
      const double elapsed_s =
          std::chrono::duration<double>(SteadyClock::now() - start).count();
      const uint64_t allowed = static_cast<uint64_t>(elapsed_s * rate) + 1;
      std::vector<std::vector<LinkOp>> per_worker(workers_.size());
      size_t batch = 0;
      while (i < todo.size() && sent < allowed) {
        per_worker[todo[i].first].push_back(std::move(todo[i].second));
        ++i;
        ++sent;
        ++batch;
      }
      if (batch > 0) {
        for (unsigned w = 0; w < per_worker.size(); ++w) {
          if (!per_worker[w].empty()) post_ops(w, std::move(per_worker[w]));
        }
        metrics_->drain_redirected->Increment(static_cast<double>(batch));
        metrics_->drain_remaining->Set(static_cast<double>(todo.size() - i));
      }
      if (i < todo.size()) {
        const double next_at_s = static_cast<double>(sent) / rate;
        const auto wait = std::chrono::duration_cast<milliseconds>(
            std::chrono::duration<double>(next_at_s - elapsed_s));
        if (!co_await sleep(timer, std::max(milliseconds(1), wait))) break;
      }
      if (SteadyClock::now() >= deadline) break;
    }
  }
  metrics_->drain_remaining->Set(static_cast<double>(directory_.size()));
  drain_running_ = false;
  log()->info("node {}: drain redirected {} links", cfg_.node_id, sent);
}

asio::awaitable<void> NodeCore::shutdown() {
  if (stopping_) co_return;
  co_await drain(/*fast=*/true);
  co_await stop_async();
}

asio::awaitable<void> NodeCore::stop_async() {
  if (stopping_.exchange(true)) co_return;
  for (auto& l : listeners_) l->close();
  lease_timer_.cancel();
  registry_timer_.cancel();
  counters_timer_.cancel();
  // Close what is left at once; sessions end through session_closed().
  for (auto& w : workers_) {
    asio::post(w->executor(), [wp = w.get()] {
      std::vector<uint64_t> ids;
      wp->for_each_link([&](Link& l) { ids.push_back(l.id()); });
      for (uint64_t id : ids) {
        if (auto l = wp->shared(id)) l->terminate();
      }
    });
  }
  asio::steady_timer t(strand_);
  const auto deadline = SteadyClock::now() + milliseconds(3000);
  while ((sockets_.load() > 0 || pending_ops_ > 0) && SteadyClock::now() < deadline) {
    t.expires_after(milliseconds(10));
    co_await t.async_wait(asio::as_tuple(use_awaitable));
  }
  if (store_) {
    co_await flush_counters();
    (void)co_await store_->remove_node(cfg_.node_id);
    (void)co_await store_->clear_node_topics(cfg_.node_id);
  }
  if (consumer_) co_await consumer_->close();
  while (loops_running_ > 0 && SteadyClock::now() < deadline + milliseconds(2000)) {
    t.expires_after(milliseconds(10));
    co_await t.async_wait(asio::as_tuple(use_awaitable));
  }
  log()->info("node {}: stopped", cfg_.node_id);
}

void NodeCore::stop() {
  if (!started_.load() || stopped_.exchange(true)) return;
  if (!workers_.empty() || store_) {
    auto fut = asio::co_spawn(strand_, stop_async(), asio::use_future);
    wait_future(fut, milliseconds(15'000));
  }
  for (auto& w : workers_) w->stop();
  if (producer_) producer_->close(milliseconds(2000));
  if (store_) store_->client().close();
  // Let handlers still queued on the strand finish before members go away.
  auto fut = asio::post(strand_, asio::use_future);
  wait_future(fut, milliseconds(2000));
  listeners_.clear();
}

NodeStats NodeCore::stats() const {
  NodeStats s;
  for (int i = 0; i < kListenerKinds; ++i) {
    s.sessions[i] = sessions_[i].load(std::memory_order_relaxed);
    s.sessions_total += s.sessions[i];
  }
  s.sockets = sockets_.load(std::memory_order_relaxed);
  s.capacity = capacity_;
  s.draining = draining_.load(std::memory_order_relaxed);
  s.delivery_partitions = delivery_partitions_->load(std::memory_order_relaxed);
  return s;
}

uint16_t NodeCore::port(ListenerKind k) const {
  for (const auto& l : listeners_) {
    if (l->kind() == k) return l->port();
  }
  return 0;
}

bool NodeCore::at_capacity() const {
  return sockets_.load(std::memory_order_relaxed) >= capacity_;
}

void NodeCore::link_opened(ListenerKind kind) {
  sessions_[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
  metrics_->links[static_cast<int>(kind)]->Increment();
}

void NodeCore::link_gone(ListenerKind kind) {
  sessions_[static_cast<int>(kind)].fetch_sub(1, std::memory_order_relaxed);
  metrics_->links[static_cast<int>(kind)]->Decrement();
}

uint64_t NodeCore::accept_wait_ms() {
  const auto now = static_cast<uint64_t>(
      std::chrono::duration_cast<milliseconds>(SteadyClock::now().time_since_epoch()).count());
  if (accept_bucket_.try_take(now)) return 0;
  return std::max<uint64_t>(1, accept_bucket_.wait_ms(now));
}

Worker& NodeCore::next_worker() {
  const unsigned i = next_worker_.fetch_add(1, std::memory_order_relaxed);
  return *workers_[i % workers_.size()];
}

asio::awaitable<bool> NodeCore::sleep(asio::steady_timer& timer, milliseconds d) {
  if (stopping_) co_return false;
  timer.expires_after(d);
  co_await timer.async_wait(asio::as_tuple(use_awaitable));  // cancelled on stop
  co_return !stopping_;
}

// ---- sessions ------------------------------------------------------------------

asio::awaitable<Admission> NodeCore::admit(SessionInfo info) {
  co_return co_await asio::co_spawn(strand_, admit_on_strand(std::move(info)), use_awaitable);
}

asio::awaitable<Admission> NodeCore::admit_on_strand(SessionInfo info) {
  if (stopping_) co_return Admission{v1::INTERNAL, "node is stopping", 0};
  status_store::DeviceRegistration reg;
  reg.app_id = info.app_id;
  reg.device_id = info.device_id;
  reg.node_id = cfg_.node_id;
  reg.session_id = info.session_id;
  reg.platform = v1::Platform_Name(info.platform);
  reg.user_id = info.user_id;
  reg.connected_at_ms = options_.clock->now_ms();
  auto r = co_await store_->register_device(reg, cfg_.status.device_lease);
  if (!r) {
    metrics_->store_failures->Increment();
    log()->warn("register {}/{} failed: {}", info.app_id, info.device_id, r.error().message());
    co_return Admission{v1::INTERNAL, "status store unavailable", 0};
  }
  const uint64_t epoch = r->epoch;
  const std::string key = dir_key(info.app_id, info.device_id);
  auto it = directory_.find(key);
  if (it != directory_.end()) {
    if (it->second.epoch > epoch) {
      // A newer connection of the device registered meanwhile: it wins.
      co_return Admission{v1::SESSION_REPLACED, "a newer connection of this device exists", 0};
    }
    LinkOp op;
    op.kind = LinkOp::Kind::kClose;
    op.link_id = it->second.link_id;
    op.epoch = epoch;
    op.code = v1::SESSION_REPLACED;
    post_ops(it->second.worker, {std::move(op)});
    metrics_->replaced_local->Increment();
  }
  DirEntry& e = directory_[key];
  e.worker = info.worker;
  e.link_id = info.link_id;
  e.epoch = epoch;
  e.listener = info.listener;
  e.session_id = info.session_id;
  e.user_id = info.user_id;
  e.platform = info.platform;
  e.connected_at_ms = reg.connected_at_ms;

  if (r->previous && r->previous->node_id != cfg_.node_id && !r->previous->node_id.empty()) {
    bus::v1::DeliveryRecord rec;
    rec.set_schema_version(1);
    rec.set_app_id(info.app_id);
    rec.set_device_id(info.device_id);
    rec.set_node_id(r->previous->node_id);
    rec.set_epoch(r->previous->epoch);
    auto* sr = rec.mutable_session_replaced();
    sr->set_epoch(epoch);
    sr->set_old_session_id(r->previous->session_id);
    sr->set_old_epoch(r->previous->epoch);
    sr->set_by_node_id(cfg_.node_id);
    produce_detached("pushgw.deliver." + r->previous->node_id, key, rec.SerializeAsString());
    metrics_->replaced_remote_sent->Increment();
  }
  publish_presence(info, epoch, /*connected=*/true);
  co_return Admission{v1::ERROR_UNSPECIFIED, {}, epoch};
}

void NodeCore::session_closed(SessionInfo info, uint64_t epoch, std::vector<std::string> topics,
                              bool replaced) {
  asio::co_spawn(strand_, closed_on_strand(std::move(info), epoch, std::move(topics), replaced),
                 [](std::exception_ptr e) {
                   if (e) common::detail::log_escaped_exception("conn-node session close", e);
                 });
}

asio::awaitable<void> NodeCore::closed_on_strand(SessionInfo info, uint64_t epoch,
                                                 std::vector<std::string> topics, bool replaced) {
  ++pending_ops_;
  const std::string key = dir_key(info.app_id, info.device_id);
  auto it = directory_.find(key);
  if (it != directory_.end() && it->second.worker == info.worker &&
      it->second.link_id == info.link_id) {
    directory_.erase(it);
  }
  for (const auto& t : topics) {
    if (auto r = co_await store_->topic_add(info.app_id, t, cfg_.node_id, -1); !r) {
      metrics_->store_failures->Increment();
    }
  }
  auto r = co_await store_->unregister_device(info.app_id, info.device_id, epoch);
  if (!r && r.error() != make_error_code(errc::stale_epoch)) {
    metrics_->store_failures->Increment();
    log()->warn("unregister {}/{} epoch {} failed: {}", info.app_id, info.device_id, epoch,
                r.error().message());
  }
  if (!replaced) publish_presence(info, epoch, /*connected=*/false);
  --pending_ops_;
}

void NodeCore::change_topics(std::string app_id, std::vector<std::string> added,
                             std::vector<std::string> removed, std::function<void()> done) {
  asio::co_spawn(strand_, topics_on_strand(std::move(app_id), std::move(added), std::move(removed)),
                 [done = std::move(done)](std::exception_ptr e) {
                   if (e) common::detail::log_escaped_exception("conn-node topics", e);
                   if (done) done();
                 });
}

asio::awaitable<void> NodeCore::topics_on_strand(std::string app_id, std::vector<std::string> added,
                                                 std::vector<std::string> removed) {
  ++pending_ops_;
  for (const auto& t : added) {
    if (auto r = co_await store_->topic_add(app_id, t, cfg_.node_id, 1); !r) {
      metrics_->store_failures->Increment();
    }
  }
  for (const auto& t : removed) {
    if (auto r = co_await store_->topic_add(app_id, t, cfg_.node_id, -1); !r) {
      metrics_->store_failures->Increment();
    }
  }
  --pending_ops_;
}

void NodeCore::publish_presence(const SessionInfo& info, uint64_t epoch, bool connected) {
  bus::v1::Presence p;
  p.set_schema_version(1);
  p.set_kind(connected ? bus::v1::Presence::CONNECTED : bus::v1::Presence::DISCONNECTED);
  p.set_app_id(info.app_id);
  p.set_device_id(info.device_id);
  p.set_node_id(cfg_.node_id);
  p.set_epoch(epoch);
  p.set_session_id(info.session_id);
  if (connected) p.set_last_seq(info.last_seq);
  p.set_at_ms(options_.clock->now_ms());
  p.set_user_id(info.user_id);
  p.set_platform(info.platform);
  produce_detached("pushgw.presence", dir_key(info.app_id, info.device_id), p.SerializeAsString());
}

namespace {
constexpr size_t kMaxPendingCounters = 200'000;
constexpr milliseconds kCountersEvery{500};
// Counters live at least this long (push-api set them first, with the
// message's TTL; a shorter one never cuts it).
constexpr milliseconds kCountersTtl{24 * 3600 * 1000};
}  // namespace

void NodeCore::count_delivered(const std::string& message_id) {
  if (message_id.empty()) return;
  std::lock_guard lock(counters_mu_);
  if (pending_counts_.size() >= kMaxPendingCounters && !pending_counts_.count(message_id)) {
    metrics_->counters_dropped->Increment();
    return;
  }
  ++pending_counts_[message_id].delivered;
}

void NodeCore::count_acked(const std::string& message_id) {
  if (message_id.empty()) return;
  std::lock_guard lock(counters_mu_);
  if (pending_counts_.size() >= kMaxPendingCounters && !pending_counts_.count(message_id)) {
    metrics_->counters_dropped->Increment();
    return;
  }
  ++pending_counts_[message_id].acked;
}

asio::awaitable<void> NodeCore::counters_loop() {
  ++loops_running_;
  const milliseconds every = kCountersEvery;
  while (co_await sleep(counters_timer_, every)) {
    co_await flush_counters();
  }
  --loops_running_;
}

asio::awaitable<void> NodeCore::flush_counters() {
  std::unordered_map<std::string, PendingCount> taken;
  {
    std::lock_guard lock(counters_mu_);
    taken.swap(pending_counts_);
  }
  if (taken.empty()) co_return;
  std::vector<status_store::CounterUpdate> updates;
  updates.reserve(taken.size());
  for (auto& [id, c] : taken) {
    status_store::CounterUpdate u;
    u.message_id = id;
    if (c.delivered) u.deltas.emplace_back("delivered", c.delivered);
    if (c.acked) u.deltas.emplace_back("acked", c.acked);
    u.ttl = kCountersTtl;
    updates.push_back(std::move(u));
  }
  // Best effort: message counters are statistics, not delivery state; a
  // failed write is logged and counted, not retried.
  auto r = co_await store_->incr_counters_batch(std::move(updates));
  if (!r) {
    metrics_->store_failures->Increment();
    log()->warn("message counters of {} messages not written: {}", taken.size(),
                r.error().message());
  }
}

void NodeCore::publish_ack(bus::v1::AckEvent event) {
  metrics_->acks_published->Increment();
  std::string key = dir_key(event.app_id(), event.device_id());
  produce_detached("pushgw.acks", std::move(key), event.SerializeAsString());
}

void NodeCore::produce_detached(std::string topic, std::string key, std::string value) {
  bus::OutRecord rec;
  rec.topic = std::move(topic);
  rec.key = std::move(key);
  rec.value = std::move(value);
  // On the strand, so records start producing in the order they were made.
  common::spawn_logged(strand_, produce_one(this, std::move(rec)), "conn-node produce");
}

asio::awaitable<void> NodeCore::produce_one(NodeCore* self, bus::OutRecord record) {
  const std::string topic = record.topic;
  auto r = co_await self->producer_->produce(std::move(record));
  if (!r) {
    self->metrics_->bus_publish_failures->Increment();
    log()->warn("produce to {} failed: {}", topic, r.error().message());
  }
}

v1::Redirect NodeCore::redirect_for(ListenerKind kind, const std::string& reason) const {
  v1::Redirect r;
  r.set_reason(reason);
  r.set_retry_after_ms(static_cast<uint32_t>(cfg_.drain.retry_after.count()));
  std::lock_guard<std::mutex> lock(peers_mu_);
  for (const auto& p : peers_) {
    const auto& ep = p.endpoints[static_cast<int>(kind)];
    if (!ep.empty()) r.add_endpoints(ep);
    if (r.endpoints_size() >= 8) break;
  }
  return r;
}

// ---- upstream --------------------------------------------------------------------

asio::awaitable<result<std::optional<std::string>>> NodeCore::get_idempotency(std::string app_id,
                                                                              std::string key) {
  // StatusStore has put_idempotency (SET NX) but no read: read the same key.
  const std::string redis_key = store_->keys().idempotency(app_id, key);
  redis::Command get;
  get.arg("GET").arg(redis_key);
  auto r = co_await store_->client().exec(std::move(get));
  if (!r) co_return r.error();
  if (r->is_nil()) co_return std::optional<std::string>();
  if (!r->is_string()) co_return make_error_code(errc::protocol_error);
  co_return std::optional<std::string>(r->str());
}

asio::awaitable<UpstreamOutcome> NodeCore::upstream(SessionInfo info, v1::Upstream up) {
  const std::string key = upstream_key(info.device_id, up.request_id());
  auto seen = co_await get_idempotency(info.app_id, key);
  if (seen && seen->has_value()) {
    metrics_->upstream_duplicate->Increment();
    co_return UpstreamOutcome{true, {}};
  }
  if (!seen) {
    // Without Redis the duplicate check is impossible; publishing anyway
    // keeps at-least-once (the consumer sees request_id).
    metrics_->store_failures->Increment();
  }
  bus::v1::UpstreamEvent ev;
  ev.set_schema_version(1);
  ev.set_app_id(info.app_id);
  ev.set_device_id(info.device_id);
  ev.set_user_id(info.user_id);
  ev.set_channel(up.channel());
  ev.set_request_id(up.request_id());
  ev.set_payload(std::move(*up.mutable_payload()));
  ev.set_received_ms(options_.clock->now_ms());
  ev.set_node_id(cfg_.node_id);
  auto d = co_await producer_->produce("pushgw.upstream." + up.channel(),
                                       dir_key(info.app_id, info.device_id),
                                       ev.SerializeAsString());
  if (!d) {
    metrics_->upstream_unavailable->Increment();
    log()->warn("upstream {}/{} to channel {} not published: {}", info.app_id, info.device_id,
                up.channel(), d.error().message());
    co_return UpstreamOutcome{false, "unavailable"};
  }
  metrics_->upstream_published->Increment();
  auto put = co_await store_->put_idempotency(info.app_id, key, "1", cfg_.status.upstream_dedup);
  if (!put) metrics_->store_failures->Increment();
  co_return UpstreamOutcome{true, {}};
}

// ---- links on workers ------------------------------------------------------------

asio::awaitable<void> NodeCore::apply_ops(Worker* worker, std::vector<LinkOp> ops) {
  auto& m = worker->core().metrics();
  size_t n = 0;
  for (auto& op : ops) {
    if (++n % 64 == 0) {
      // Let the worker's writers run between parts of a large batch.
      co_await asio::post(worker->executor(), use_awaitable);
    }
    if (op.kind == LinkOp::Kind::kFanOut) {
      const size_t n = worker->fan_out(op.app_id, op.topic, op.frame, op.lane);
      m.deliver_queued->Increment(static_cast<double>(n));
      continue;
    }
    auto link = worker->shared(op.link_id);
    if (!link) {
      if (op.kind == LinkOp::Kind::kUnicast) m.deliver_no_link->Increment();
      continue;
    }
    switch (op.kind) {
      case LinkOp::Kind::kUnicast: {
        PushMeta meta{op.seq, std::move(op.message_id), op.ack_required, op.replay, op.after_seq};
        link->push_unicast(op.frame, op.lane, meta);
        m.deliver_queued->Increment();
        break;
      }
      case LinkOp::Kind::kReplayComplete:
        link->replay_complete(op.epoch, op.seq);
        break;
      case LinkOp::Kind::kClose:
        if (link->epoch() < op.epoch) {
          link->fail(op.code, "the device connected again elsewhere");
        }
        break;
      case LinkOp::Kind::kRedirect: {
        v1::Redirect r;
        r.ParseFromString(*op.frame);
        link->redirect(r);
        break;
      }
      case LinkOp::Kind::kFanOut:
        break;
    }
  }
  co_return;
}

void NodeCore::post_ops(unsigned worker, std::vector<LinkOp> ops) {
  Worker* w = workers_[worker].get();
  common::spawn_logged(w->executor(), apply_ops(w, std::move(ops)), "conn-node link ops");
}

asio::awaitable<void> NodeCore::run_ops(std::vector<std::vector<LinkOp>> per_worker) {
  for (unsigned w = 0; w < per_worker.size(); ++w) {
    if (per_worker[w].empty()) continue;
    Worker* wp = workers_[w].get();
    co_await asio::co_spawn(wp->executor(), apply_ops(wp, std::move(per_worker[w])),
                            use_awaitable);
  }
}

// ---- delivery --------------------------------------------------------------------

asio::awaitable<void> NodeCore::delivery_loop() {
  ++loops_running_;
  asio::steady_timer timer(strand_);
  while (!stopping_) {
    auto batch = co_await consumer_->next_batch(cfg_.kafka.consume_batch, milliseconds(200));
    if (!batch) {
      if (stopping_ || batch.error() == make_error_code(errc::shutting_down)) break;
      log()->warn("delivery consumer: {}", batch.error().message());
      if (!co_await sleep(timer, milliseconds(200))) break;
      continue;
    }
    if (batch->empty()) continue;
    co_await deliver_batch(*batch);
    // Every record is now queued on its link or dropped (no link: the
    // offline store keeps what must survive).
    consumer_->mark_processed(*batch);
  }
  --loops_running_;
}

asio::awaitable<void> NodeCore::deliver_batch(const std::vector<bus::Record>& records) {
  std::vector<std::vector<LinkOp>> per_worker(workers_.size());
  const uint64_t now = options_.clock->now_ms();
  for (const auto& rec : records) {
    bus::v1::DeliveryRecord dr;
    if (!dr.ParseFromString(rec.value)) {
      metrics_->deliver_bad_record->Increment();
      continue;
    }
    if (dr.schema_version() > 1) {
      metrics_->deliver_schema_rejected->Increment();
      continue;
    }
    const DirEntry* entry = nullptr;
    if (!dr.device_id().empty()) {
      auto it = directory_.find(dir_key(dr.app_id(), dr.device_id()));
      if (it != directory_.end()) entry = &it->second;
    }
    if (dr.has_session_replaced()) {
      const auto& sr = dr.session_replaced();
      if (entry != nullptr && entry->epoch < sr.epoch()) {
        LinkOp op;
        op.kind = LinkOp::Kind::kClose;
        op.link_id = entry->link_id;
        op.epoch = sr.epoch();
        op.code = v1::SESSION_REPLACED;
        per_worker[entry->worker].push_back(std::move(op));
        metrics_->replaced_remote_closed->Increment();
      }
      continue;
    }
    if (dr.has_replay_complete()) {
      if (entry != nullptr) {
        LinkOp op;
        op.kind = LinkOp::Kind::kReplayComplete;
        op.link_id = entry->link_id;
        op.epoch = dr.replay_complete().epoch();
        op.seq = dr.replay_complete().highest_seq();
        per_worker[entry->worker].push_back(std::move(op));
      }
      continue;
    }
    if (!dr.has_push()) {
      metrics_->deliver_bad_record->Increment();
      continue;
    }
    if (push_expired(dr.push(), now)) {
      metrics_->deliver_expired->Increment();
      continue;
    }
    const bool unicast = !dr.device_id().empty();
    if (unicast && entry == nullptr) {
      metrics_->deliver_no_link->Increment();
      continue;
    }
    if (unicast && dr.replay() && dr.epoch() != 0 && dr.epoch() != entry->epoch) {
      // A replay or late forward meant for another connection of the device
      // (read by the offline router before that connection's DISCONNECTED):
      // the store still has the message, so this connection's own replay
      // brings it. Delivering it here as well would send it twice.
      metrics_->deliver_stale_epoch->Increment();
      continue;
    }
    if (!unicast && !dr.broadcast() && dr.topic().empty()) {
      metrics_->deliver_bad_record->Increment();
      continue;
    }
    LinkOp op;
    op.lane = dr.push().traffic_class() == v1::MARKETING ? Lane::kMarketing : Lane::kNormal;
    op.seq = dr.push().seq();
    op.ack_required = dr.push().ack_required();
    op.message_id = dr.push().message_id();
    op.replay = dr.replay();
    op.after_seq = dr.replay() ? 0 : dr.after_seq();
    v1::Frame f;
    f.mutable_push()->Swap(dr.mutable_push());
    op.frame = std::make_shared<const std::string>(encode_framed(f));  // encoded once
    if (unicast) {
      op.kind = LinkOp::Kind::kUnicast;
      op.link_id = entry->link_id;
      per_worker[entry->worker].push_back(std::move(op));
    } else {
      metrics_->fanout_records->Increment();
      op.kind = LinkOp::Kind::kFanOut;
      op.app_id = dr.app_id();
      op.topic = dr.broadcast() ? std::string() : dr.topic();
      for (auto& w : per_worker) w.push_back(op);
    }
  }
  co_await run_ops(std::move(per_worker));
}

// ---- leases and registry -----------------------------------------------------

asio::awaitable<void> NodeCore::lease_loop() {
  ++loops_running_;
  const auto every = std::chrono::duration_cast<milliseconds>(cfg_.status.device_lease) / 3;
  while (co_await sleep(lease_timer_, every)) {
    co_await refresh_leases();
  }
  --loops_running_;
}

asio::awaitable<void> NodeCore::refresh_leases() {
  struct Ref {
    std::string key;
    DirEntry entry;
  };
  std::vector<Ref> refs;
  refs.reserve(directory_.size());
  for (const auto& [k, e] : directory_) refs.push_back({k, e});
  const size_t batch = cfg_.status.refresh_batch;
  for (size_t off = 0; off < refs.size() && !stopping_; off += batch) {
    const size_t end = std::min(refs.size(), off + batch);
    std::vector<status_store::LeaseRef> leases;
    leases.reserve(end - off);
    for (size_t i = off; i < end; ++i) {
      const auto slash = refs[i].key.find('/');
      leases.push_back({refs[i].key.substr(0, slash), refs[i].key.substr(slash + 1),
                        refs[i].entry.epoch, refs[i].entry.user_id});
    }
    auto states = co_await store_->refresh_leases(cfg_.node_id, leases, cfg_.status.device_lease);
    if (!states) {
      metrics_->store_failures->Increment();
      log()->warn("lease refresh of {} links failed: {}", leases.size(),
                  states.error().message());
      continue;
    }
    for (size_t i = 0; i < states->size() && i < leases.size(); ++i) {
      const auto state = (*states)[i];
      if (state == status_store::LeaseState::refreshed) continue;
      const DirEntry& e = refs[off + i].entry;
      bool stale = state == status_store::LeaseState::stale;
      if (state == status_store::LeaseState::missing) {
        // The lease lapsed (e.g. a Redis outage): restore it under the same epoch.
        status_store::DeviceRegistration reg;
        reg.app_id = leases[i].app_id;
        reg.device_id = leases[i].device_id;
        reg.node_id = cfg_.node_id;
        reg.session_id = e.session_id;
        reg.platform = v1::Platform_Name(e.platform);
        reg.user_id = e.user_id;
        reg.connected_at_ms = e.connected_at_ms;
        auto rr = co_await store_->reregister_device(reg, e.epoch, cfg_.status.device_lease);
        if (!rr) {
          if (rr.error() == make_error_code(errc::stale_epoch)) {
            stale = true;
          } else {
            metrics_->store_failures->Increment();
          }
        }
      }
      if (stale) {
        LinkOp op;
        op.kind = LinkOp::Kind::kClose;
        op.link_id = e.link_id;
        op.epoch = e.epoch + 1;
        op.code = v1::SESSION_REPLACED;
        post_ops(e.worker, {std::move(op)});
      }
    }
  }
}

asio::awaitable<void> NodeCore::registry_loop() {
  ++loops_running_;
  const auto every = std::chrono::duration_cast<milliseconds>(cfg_.status.node_lease) / 3;
  while (co_await sleep(registry_timer_, every)) {
    if (auto r = co_await register_node(); !r) {
      metrics_->store_failures->Increment();
      log()->warn("node registration failed: {}", r.error().message());
    }
    co_await refresh_peers();
  }
  --loops_running_;
}

asio::awaitable<result<void>> NodeCore::register_node() {
  status_store::NodeInfo n;
  n.node_id = cfg_.node_id;
  n.endpoints.tcp = cfg_.advertised(ListenerKind::kTcp);
  n.endpoints.tls = cfg_.advertised(ListenerKind::kTls);
  n.endpoints.ws = cfg_.advertised(ListenerKind::kWs);
  n.endpoints.wss = cfg_.advertised(ListenerKind::kWss);
  n.connections = stats().sessions_total;
  n.draining = draining_.load();
  n.admin = cfg_.advertised_admin();
  co_return co_await store_->upsert_node(std::move(n), cfg_.status.node_lease);
}

asio::awaitable<void> NodeCore::refresh_peers() {
  auto nodes = co_await store_->list_nodes();
  if (!nodes) {
    metrics_->store_failures->Increment();
    co_return;
  }
  std::vector<PeerNode> peers;
  for (auto& n : *nodes) {
    if (n.node_id == cfg_.node_id || n.draining) continue;
    PeerNode p;
    p.node_id = n.node_id;
    p.endpoints = {n.endpoints.tcp, n.endpoints.tls, n.endpoints.ws, n.endpoints.wss};
    p.connections = n.connections;
    peers.push_back(std::move(p));
  }
  std::sort(peers.begin(), peers.end(), [](const PeerNode& a, const PeerNode& b) {
    return a.connections < b.connections;
  });
  std::lock_guard<std::mutex> lock(peers_mu_);
  peers_ = std::move(peers);
}

}  // namespace pushgw::conn_node
