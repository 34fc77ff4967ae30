// The online router: consume loop, planning (status store I/O), produce and
// completion. Everything below runs on Impl::strand_ unless noted; the
// completions run on Impl::produce_strand_.
//
// Order: the loop routes one batch at a time; each batch's records are handed
// to librdkafka (produce_batch) by a completion coroutine that the loop starts
// on the produce strand in batch order, so records enter the producer in
// input order and the idempotent producer keeps that order per partition.
// Completions then wait for their delivery reports concurrently (up to
// max_in_flight batches), while the loop plans the next batches.
#include "online_router/router.h"

#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "common/bus/kafka.h"
#include "common/log.h"
#include "common/spawn.h"
#include "online_router/routing.h"
#include "router_metrics.h"
#include "status_store/redis_status_store.h"

namespace pushgw::online_router {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;
using bus::v1::PushRequest;

namespace {

constexpr auto kWarnEvery = std::chrono::seconds(5);
constexpr auto kSleepSlice = milliseconds(50);
constexpr auto kProducerCloseFlush = milliseconds(2'000);
// Devices remembered for DeliveryRecord.after_seq (~100 bytes each).
constexpr std::size_t kOrderMemoEntries = 1'000'000;

std::shared_ptr<spdlog::logger> log() {
  static auto l = common::logger("router");
  return l;
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

double seconds_since(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

// One record to produce, described well enough to rebuild it for a retry.
struct Recipe {
  enum class Kind : uint8_t { kDeliver, kOffline, kFanout };
  Kind kind = Kind::kDeliver;
  uint32_t request = 0;  // index into Plan::requests
  uint64_t seq = 0;
  uint64_t epoch = 0;
  std::string node;
  bool dropped = false;  // its node's topic does not exist: not produced
  uint64_t after_seq = 0;  // kDeliver: DeliveryRecord.after_seq
};

// Counter deltas of one request.
struct Tally {
  int64_t routed = 0;
  int64_t stored = 0;
  int64_t expired = 0;
};

// One routed batch, from planning to its last delivery report.
struct Plan {
  std::vector<bus::Record> inputs;    // marked processed when everything is acked
  google::protobuf::Arena arena;              // owns the decoded requests
  std::vector<const PushRequest*> requests;  // the decodable, valid ones
  std::vector<Tally> tallies;         // per request
  std::vector<Recipe> recipes;
  std::vector<bus::OutRecord> records;  // records[i] built from recipes[i]
  uint64_t expired = 0;
  uint64_t unknown_node = 0;
  uint64_t now = 0;  // wall clock when decoded (expiry decisions)
  // Resolution (status store), per request index.
  std::vector<uint32_t> unicast;  // requests to one device, in input order
  std::vector<uint32_t> fanout;   // topic and broadcast requests, in input order
  std::vector<std::optional<status_store::DeviceRoute>> where;
  std::vector<uint64_t> seqs;
  std::vector<bool> looked_up;
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> topic_nodes;
  bool need_broadcast = false;
};

}  // namespace

struct Router::Impl : std::enable_shared_from_this<Router::Impl> {
  Impl(asio::any_io_executor ex, RouterConfig cfg, RouterOptions options)
      : ex_(std::move(ex)),
        strand_(asio::make_strand(ex_)),
        produce_strand_(asio::make_strand(ex_)),
        cfg_(std::move(cfg)),
        opts_(std::move(options)),
        clock_(opts_.clock != nullptr ? *opts_.clock : SystemClock::instance()),
        metrics_(opts_.metrics ? opts_.metrics
                               : std::make_shared<common::Metrics>("online-router")),
        m_(metrics_->registry(), cfg_.traffic_class),
        wake_(strand_) {}

  struct Counters {
    std::atomic<uint64_t> consumed{0}, batches{0}, completed{0}, online{0}, stored{0}, expired{0},
        fanned_out{0}, unknown_node{0}, bad_records{0}, produce_retries{0}, store_retries{0},
        counter_failures{0}, in_flight{0};
  };

  asio::any_io_executor ex_;
  asio::strand<asio::any_io_executor> strand_;
  // Completions (produce, wait for reports, mark processed, counters) run
  // here, beside the loop: planning the next batches and producing the
  // earlier ones overlap on two threads. Started in order, so records still
  // reach librdkafka in input order.
  asio::strand<asio::any_io_executor> produce_strand_;
  RouterConfig cfg_;
  RouterOptions opts_;
  const Clock& clock_;
  std::shared_ptr<common::Metrics> metrics_;
  RouterMetrics m_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::unique_ptr<status_store::RedisStatusStore> store_;

  // Strand state.
  asio::steady_timer wake_;  // cancelled when a completion frees an in-flight slot
  NodeView nodes_;
  // Newest offline-only message per device (DeliveryRecord.after_seq); strand only.
  OfflineOnlyMemo offline_only_{kOrderMemoEntries};
  uint32_t in_flight_ = 0;
  bool loop_running_ = false;
  uint64_t batches_seen_ = 0;
  std::mutex warn_mu_;
  std::map<std::string, SteadyClock::time_point> last_warn_;  // guarded by warn_mu_

  // Any thread.
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> store_ok_{false};
  std::atomic<bool> shutdown_started_{false};
  std::atomic<bool> shutdown_done_{false};
  std::array<std::atomic<bool>, kBadReasons> bad_logged_{};
  Counters stats_;
  mutable std::mutex fatal_mu_;
  std::optional<std::string> fatal_;

  // ---- startup ----------------------------------------------------------------

  result<void> start() {
    if (started_.exchange(true)) return errc::invalid_argument;
    auto lg = log();
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
    const std::string cls(class_name(cfg_.traffic_class));
    bus::KafkaConfig kafka;
    kafka.bootstrap_servers = bootstrap;
    kafka.client_id = cfg_.kafka.client_id + "." + cls;
    for (const auto& p : cfg_.kafka.properties) {
      const auto eq = p.find('=');
      if (eq == std::string::npos || eq == 0) {
        lg->error("kafka.properties: \"{}\" is not name=value", p);
        return errc::invalid_argument;
      }
      kafka.properties[p.substr(0, eq)] = p.substr(eq + 1);
    }

    status_store::RedisStatusStoreOptions so;
    so.key_prefix = cfg_.redis_key_prefix;
    try {
      auto store = status_store::make_redis_status_store(ex_, cfg_.redis_url, so,
                                                         &metrics_->registry(), clock_);
      if (!store) {
        lg->error("redis.url {}: {}", cfg_.redis_url, store.error().message());
        return store.error();
      }
      store_ = std::move(*store);
    } catch (const std::exception& e) {
      lg->error("status store: {}", e.what());
      return errc::invalid_argument;
    }

    const std::vector<std::string> inputs{push_topic(cfg_.traffic_class),
                                          fanout_topic(cfg_.traffic_class)};
    try {
      bus::ProducerConfig pc;
      pc.kafka = kafka;
      pc.message_timeout = cfg_.kafka.message_timeout;
      pc.linger = cfg_.kafka.linger;
      pc.max_queue_messages = cfg_.kafka.max_queue_messages;
      pc.queue_full = bus::QueueFullPolicy::kFail;
      bus::ConsumerConfig cc;
      cc.kafka = kafka;
      cc.group_id = cfg_.group_id();
      cc.auto_offset_reset = "earliest";
      cc.session_timeout = cfg_.kafka.session_timeout;
      cc.heartbeat_interval = cfg_.kafka.heartbeat_interval;
      cc.auto_commit_interval = cfg_.kafka.commit_interval;
      cc.max_buffered = cfg_.kafka.max_buffered;
      bus::check_producer_config(pc);
      bus::check_consumer_config(cc);

      std::vector<bus::TopicSpec> topics;
      for (const auto& t : inputs) topics.push_back({t, cfg_.kafka.topic_partitions, -1});
      topics.push_back({std::string(kOfflineTopic), cfg_.kafka.topic_partitions, -1});
      bus::EnsureTopicsOptions eo;
      eo.timeout = cfg_.kafka.ensure_topics_timeout;
      if (auto r = bus::ensure_topics(kafka, topics, eo); !r) {
        lg->warn("could not check/create the input and offline topics ({}); continuing",
                 r.error().message());
      }

      producer_ = bus::make_kafka_producer(pc, &metrics_->registry());
      bus::RebalanceHandlers handlers;
      handlers.on_assigned = [](std::vector<bus::TopicPartition> parts) {
        log()->info("assigned {} partition(s)", parts.size());
      };
      handlers.on_revoked = [](std::vector<bus::TopicPartition> parts) {
        log()->info("revoked {} partition(s)", parts.size());
      };
      consumer_ = bus::make_kafka_consumer(cc, strand_, std::move(handlers), &metrics_->registry());
    } catch (const std::exception& e) {
      lg->error("kafka configuration: {}", e.what());
      release();
      return errc::invalid_argument;
    }
    if (auto r = consumer_->subscribe(inputs); !r) {
      lg->error("cannot subscribe to {} and {}: {}", inputs[0], inputs[1], r.error().message());
      release();
      return r.error();
    }
    loop_running_ = true;
    common::spawn_logged(strand_, run(shared_from_this()), "online-router loop");
    lg->info("online router ({}) started: group {}, topics {} and {}, batch {}, in flight {}", cls,
             cfg_.group_id(), inputs[0], inputs[1], cfg_.batch_size, cfg_.max_in_flight);
    return {};
  }

  // Blocking; for failed starts only.
  void release() {
    if (consumer_) {
      auto fut = asio::co_spawn(strand_, consumer_->close(), asio::use_future);
      fut.wait_for(std::chrono::seconds(10));
    }
    if (producer_) producer_->close(kProducerCloseFlush);
    if (store_) store_->client().close();
  }

  // ---- helpers ------------------------------------------------------------------

  // Any thread.
  void warn_limited(const std::string& what, const std::string& text) {
    auto now = SteadyClock::now();
    std::lock_guard lk(warn_mu_);
    auto it = last_warn_.find(what);
    if (it != last_warn_.end() && now - it->second < kWarnEvery) return;
    last_warn_[what] = now;
    log()->warn("{}: {}", what, text);
  }

  void set_store_ok(bool ok) {
    store_ok_ = ok;
    m_.ready->Set(ready() ? 1 : 0);
  }

  bool ready() const {
    std::lock_guard lk(fatal_mu_);
    return started_ && !stopping_ && store_ok_ && !fatal_;
  }

  void set_fatal(std::string reason) {
    {
      std::lock_guard lk(fatal_mu_);
      if (fatal_) return;
      fatal_ = reason;
    }
    log()->critical("online router stops: {}", reason);
    stopping_ = true;
    m_.ready->Set(0);
    asio::post(strand_, [self = shared_from_this()] { self->wake_.cancel(); });
    if (opts_.on_fatal) opts_.on_fatal(std::move(reason));
  }

  // Sleeps `d` in short slices; false once stopping.
  asio::awaitable<bool> sleep(milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    const auto until = SteadyClock::now() + d;
    while (!stopping_) {
      const auto now = SteadyClock::now();
      if (now >= until) co_return true;
      t.expires_after(std::min<SteadyClock::duration>(until - now, kSleepSlice));
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return false;
  }

  void note_bad(BadReason why, const bus::Record& rec) {
    const auto i = static_cast<std::size_t>(why);
    m_.rejected[i]->Increment();
    ++stats_.bad_records;
    if (!bad_logged_[i].exchange(true)) {
      log()->warn(
          "skipping {} record at {}/{}@{} (logged once per kind; see "
          "pushgw_bus_records_rejected_total)",
          bad_reason_name(why), rec.topic, rec.partition, rec.offset);
    }
  }

  // Calls `call()` until it succeeds, fails with invalid_argument (a retry
  // cannot help) or the router stops. `call` returns an awaitable of result<T>.
  template <class Call>
  auto with_retry(Call call, std::string what) -> decltype(call()) {
    auto backoff = cfg_.retry_backoff_min;
    for (;;) {
      auto r = co_await call();
      if (r) {
        if (!store_ok_) set_store_ok(true);
        co_return r;
      }
      if (r.error() == make_error_code(errc::invalid_argument) || stopping_) co_return r;
      set_store_ok(false);
      ++stats_.store_retries;
      m_.store_retries->Increment();
      warn_limited(what, r.error().message() + " (retrying; consumption paused)");
      if (!co_await sleep(backoff)) co_return r;
      backoff = std::min(backoff * 2, cfg_.retry_backoff_max);
    }
  }

  // Re-reads the live-node list. Best effort when `required` is false.
  asio::awaitable<bool> refresh_nodes(bool required) {
    auto self = this;
    auto call = [self] { return self->store_->list_nodes(); };
    result<std::vector<status_store::NodeInfo>> r = make_error_code(errc::unavailable);
    if (required) {
      r = co_await with_retry(call, "list_nodes");
    } else {
      r = co_await call();
      if (!r) warn_limited("list_nodes", r.error().message() + " (treating nodes as live)");
    }
    if (!r) co_return false;
    std::vector<std::string> ids;
    ids.reserve(r->size());
    for (auto& n : *r) ids.push_back(std::move(n.node_id));
    nodes_.update(std::move(ids), clock_.now_ms());
    co_return true;
  }

  // ---- the loop -----------------------------------------------------------------
  //
  // Two batches overlap: while the status store resolves batch N+1 (one
  // pipeline: where each device is and its next seq), batch N is planned and
  // handed to its completion. Pipelines are sent strictly one after another,
  // each after the previous one answered, so seqs of a device follow input
  // order; plans are launched in input order, so records reach librdkafka in
  // input order.

  static asio::awaitable<void> run(std::shared_ptr<Impl> self) { co_await self->loop(); }

  asio::awaitable<void> loop() {
    // Wait for the status store before taking records.
    for (auto backoff = cfg_.retry_backoff_min; !stopping_;) {
      auto r = co_await store_->ping();
      if (r) break;
      set_store_ok(false);
      warn_limited("status store ping", r.error().message() + " (waiting)");
      if (!co_await sleep(backoff)) break;
      backoff = std::min(backoff * 2, cfg_.retry_backoff_max);
    }
    if (!stopping_) set_store_ok(true);

    std::shared_ptr<Plan> prev;  // resolved, not planned yet
    while (!stopping_) {
      while (in_flight_ >= cfg_.max_in_flight && !stopping_) {
        wake_.expires_after(milliseconds(100));
        co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      if (stopping_) break;
      // With a resolved batch waiting, take only what is buffered already.
      const auto wait = prev ? milliseconds(0) : cfg_.batch_wait;
      auto batch = co_await consumer_->next_batch(cfg_.batch_size, wait);
      if (!batch) {
        if (batch.error() == make_error_code(errc::shutting_down)) break;
        if (auto f = consumer_->fatal_error()) {
          set_fatal("consumer: " + *f);
          break;
        }
        warn_limited("consumer", batch.error().message());
        co_await sleep(cfg_.retry_backoff_min);
        continue;
      }
      if (batch->empty()) {
        if (prev) {
          const bool ok = co_await launch(std::move(prev));
          prev = nullptr;
          if (!ok) break;
        }
        continue;
      }
      ++batches_seen_;
      if (cfg_.crash_after_consume != 0 && batches_seen_ == cfg_.crash_after_consume) {
        log()->critical(
            "failpoint crash_after_consume: exiting after batch {} ({} records), "
            "before producing",
            batches_seen_, batch->size());
        common::flush_logs();
        ::_exit(kFailpointExitCode);
      }
      const auto n = batch->size();
      stats_.consumed += n;
      ++stats_.batches;
      m_.consumed->Increment(static_cast<double>(n));
      m_.batch_size->Observe(static_cast<double>(n));
      if (batch->back().timestamp_ms > 0) {
        const auto now = static_cast<int64_t>(clock_.now_ms());
        m_.lag_seconds->Set(
            static_cast<double>(std::max<int64_t>(0, now - batch->back().timestamp_ms)) / 1000.0);
      }
      auto cur = prepare(std::move(*batch));
      bool ok = true;
      if (prev) {
        // The lookups of this batch run while the previous one is planned.
        // (A spawned task and an event, not awaitable_operators: GCC 12
        // destroyed the moved-from Plan twice with `a && b`.)
        auto pending = std::make_shared<PendingResolve>(strand_);
        common::spawn_logged(strand_, resolve_task(shared_from_this(), cur, pending),
                             "online-router resolve");
        const bool launched = co_await launch(std::move(prev));
        prev = nullptr;
        while (!pending->done) {
          co_await pending->event.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        ok = launched && pending->ok;
      } else {
        ok = co_await resolve(cur);
      }
      // Not ok: stopping; unprocessed batches are redelivered.
      if (!ok) break;
      prev = std::move(cur);
    }
    loop_running_ = false;
  }

  struct PendingResolve {
    explicit PendingResolve(asio::strand<asio::any_io_executor>& s)
        : event(s, SteadyClock::time_point::max()) {}
    asio::steady_timer event;  // cancelled when done
    bool done = false;
    bool ok = false;
  };

  static asio::awaitable<void> resolve_task(std::shared_ptr<Impl> self, std::shared_ptr<Plan> plan,
                                            std::shared_ptr<PendingResolve> pending) {
    try {
      pending->ok = co_await self->resolve(std::move(plan));
    } catch (const std::exception& e) {
      log()->error("status lookup failed: {}", e.what());
      pending->ok = false;
    }
    pending->done = true;
    pending->event.cancel();
  }

  // Plans a resolved batch and starts its completion; false once stopping.
  asio::awaitable<bool> launch(std::shared_ptr<Plan> plan) {
    const auto c = co_await check_nodes(plan);
    if (!c) co_return false;
    plan_records(*plan, *c);
    ++in_flight_;
    stats_.in_flight = in_flight_;
    m_.in_flight->Set(in_flight_);
    // Started in order on the produce strand: records reach librdkafka in
    // input order.
    common::spawn_logged(produce_strand_, complete(shared_from_this(), std::move(plan)),
                         "online-router batch");
    co_return true;
  }

  // ---- planning -------------------------------------------------------------------

  // Decodes a batch (no I/O).
  std::shared_ptr<Plan> prepare(std::vector<bus::Record> batch) {
    auto plan = std::make_shared<Plan>();
    plan->now = clock_.now_ms();
    plan->requests.reserve(batch.size());
    for (const auto& rec : batch) {
      auto d = decode_request(rec.value, plan->arena);
      if (auto* bad = std::get_if<BadReason>(&d)) {
        note_bad(*bad, rec);
        continue;
      }
      auto& ok = std::get<Decoded>(d);
      const auto idx = static_cast<uint32_t>(plan->requests.size());
      plan->requests.push_back(ok.request);
      plan->tallies.emplace_back();
      if (is_expired(*ok.request, plan->now)) {
        plan->tallies.back().expired = 1;
        ++plan->expired;
        continue;
      }
      (ok.kind == TargetKind::kDevice ? plan->unicast : plan->fanout).push_back(idx);
    }
    plan->inputs = std::move(batch);
    plan->where.resize(plan->requests.size());
    plan->seqs.assign(plan->requests.size(), 0);
    plan->looked_up.assign(plan->requests.size(), false);
    return plan;
  }

  // The status store part: where each unicast target is plus its next seq
  // (one pipeline; every message that is not expired takes a seq, so a ttl 0
  // message to an offline device leaves a gap, which seqs allow), and the
  // nodes with subscribers of each topic. False once stopping.
  asio::awaitable<bool> resolve(std::shared_ptr<Plan> plan) {
    const auto t0 = SteadyClock::now();
    auto& reqs = plan->requests;
    if (!plan->unicast.empty()) {
      std::vector<status_store::ResolveRequest> entries;
      entries.reserve(plan->unicast.size());
      for (auto idx : plan->unicast) {
        entries.push_back({reqs[idx]->app_id(), reqs[idx]->device_id(), true});
      }
      auto* store = store_.get();
      auto r = co_await with_retry([store, &entries] { return store->resolve(entries); },
                                   "status lookup");
      if (!r) {
        if (stopping_) co_return false;
        // invalid_argument: not retryable; decode_request checked the ids,
        // so this only happens if the store's rules changed.
        for (auto idx : plan->unicast) {
          m_.rejected[static_cast<std::size_t>(BadReason::kInvalid)]->Increment();
          ++stats_.bad_records;
          plan->tallies[idx] = Tally{};
        }
      } else {
        for (std::size_t k = 0; k < plan->unicast.size() && k < r->size(); ++k) {
          const auto idx = plan->unicast[k];
          plan->where[idx] = std::move((*r)[k].route);
          plan->seqs[idx] = (*r)[k].seq;
          plan->looked_up[idx] = true;
        }
      }
    }

    // Topic subscribers per node: one call per distinct (app, topic).
    for (auto idx : plan->fanout) {
      const auto& r = *reqs[idx];
      if (r.broadcast()) {
        plan->need_broadcast = true;
        continue;
      }
      auto key = std::make_pair(r.app_id(), r.topic());
      if (plan->topic_nodes.count(key) != 0) continue;
      auto* store = store_.get();
      auto tn = co_await with_retry(
          [store, &key] { return store->topic_nodes(key.first, key.second); }, "topic nodes");
      if (!tn) {
        if (stopping_) co_return false;
        plan->topic_nodes[key] = {};
        continue;
      }
      std::vector<std::string> nodes;
      for (const auto& [node, count] : *tn) {
        if (count > 0) nodes.push_back(node);
      }
      plan->topic_nodes[key] = std::move(nodes);
    }
    m_.lookup_seconds->Observe(seconds_since(t0));
    co_return true;
  }

  // What the node list says, for one batch.
  struct NodeCheck {
    bool refreshed = false;  // re-read for this batch
    bool list_ok = false;    // the list is known (else unknown nodes count as live)
  };

  // Re-reads the live-node list when it is old, for a broadcast, or when a
  // node the batch names is unknown to it; unicast fails open if it cannot.
  // nullopt once stopping. (No reference locals or lambdas across the
  // co_awaits: GCC 12 miscompiled them in this coroutine.)
  asio::awaitable<std::optional<NodeCheck>> check_nodes(std::shared_ptr<Plan> plan) {
    NodeCheck c;
    c.list_ok = nodes_.known();
    bool any_online = false;
    for (auto idx : plan->unicast) {
      any_online = any_online || (plan->looked_up[idx] && plan->where[idx]);
    }
    const bool busy = any_online || !plan->topic_nodes.empty() || plan->need_broadcast;
    if (busy && (plan->need_broadcast || !nodes_.fresh(clock_.now_ms(), cfg_.node_list_max_age))) {
      c.refreshed = true;
      c.list_ok = co_await refresh_nodes(plan->need_broadcast);
      if (stopping_) co_return std::nullopt;
      co_return c;
    }
    if (busy && names_unknown_node(*plan)) {
      c.refreshed = true;
      c.list_ok = co_await refresh_nodes(false);
      if (stopping_) co_return std::nullopt;
    }
    co_return c;
  }

  bool names_unknown_node(const Plan& plan) const {
    for (auto idx : plan.unicast) {
      const auto& st = plan.where[idx];
      if (plan.looked_up[idx] && st &&
          nodes_.check(st->node_id, st->connected_at_ms) == NodeView::Liveness::kUnknown) {
        return true;
      }
    }
    for (const auto& [key, nodes] : plan.topic_nodes) {
      for (const auto& n : nodes) {
        if (nodes_.check(n, UINT64_MAX) == NodeView::Liveness::kUnknown) return true;
      }
    }
    return false;
  }

  // After a successful re-read, a node missing from the list is dead; if the
  // list could not be read, unknown nodes count as live.
  bool node_live(const NodeCheck& c, const std::string& node, uint64_t connected_at) const {
    if (!valid_node_topic(node)) return false;
    if (!c.list_ok) return true;
    const auto l = nodes_.check(node, connected_at);
    return l == NodeView::Liveness::kLive || (l == NodeView::Liveness::kUnknown && !c.refreshed);
  }

  // Decisions and records of a resolved batch, in input order.
  void plan_records(Plan& plan, const NodeCheck& c) {
    const uint64_t now = plan.now;
    const TrafficClass cls = cfg_.traffic_class;
    const auto& reqs = plan.requests;
    plan.recipes.reserve(plan.unicast.size() * 2 + plan.fanout.size());
    plan.records.reserve(plan.unicast.size() * 2 + plan.fanout.size());
    std::size_t next_unicast = 0;
    std::size_t next_fanout = 0;
    for (uint32_t idx = 0; idx < reqs.size(); ++idx) {
      const auto& r = *reqs[idx];
      if (next_unicast < plan.unicast.size() && plan.unicast[next_unicast] == idx) {
        ++next_unicast;
        if (!plan.looked_up[idx]) continue;
        const auto& st = plan.where[idx];
        const bool online = st.has_value() && !st->node_id.empty();
        const bool live = online && node_live(c, st->node_id, st->connected_at_ms);
        const auto p = plan_unicast(r, online, live, now);
        if (p.unknown_node) ++plan.unknown_node;
        if (p.expired) {
          plan.tallies[idx].expired = 1;
          ++plan.expired;
        }
        if (!p.needs_seq()) continue;
        const uint64_t seq = plan.seqs[idx];
        const uint64_t epoch = st ? st->epoch : 0;
        std::optional<std::string_view> node;
        uint64_t after_seq = 0;
        const std::string key = device_key(r.app_id(), r.device_id());
        if (p.live) {
          node = st->node_id;
          after_seq = offline_only_.take_after_seq(key, epoch, now);
        } else if (p.store) {
          offline_only_.routed_offline_only(key, seq, epoch, expires_at_ms(r));
        }
        auto recs = unicast_records(r, seq, node, epoch, p.store, cls, after_seq);
        if (recs.deliver) {
          plan.recipes.push_back(
              {Recipe::Kind::kDeliver, idx, seq, epoch, st->node_id, false, after_seq});
          plan.records.push_back(std::move(*recs.deliver));
          plan.tallies[idx].routed += 1;
        }
        if (recs.offline) {
          plan.recipes.push_back({Recipe::Kind::kOffline, idx, seq, epoch, {}, false});
          plan.records.push_back(std::move(*recs.offline));
          plan.tallies[idx].stored += 1;
        }
        continue;
      }
      if (next_fanout < plan.fanout.size() && plan.fanout[next_fanout] == idx) {
        ++next_fanout;
        const std::vector<std::string>* nodes = nullptr;
        if (r.broadcast()) {
          nodes = &nodes_.nodes();
        } else {
          nodes = &plan.topic_nodes[std::make_pair(r.app_id(), r.topic())];
        }
        for (const auto& n : *nodes) {
          if (!r.broadcast() && !node_live(c, n, UINT64_MAX)) continue;
          if (!valid_node_topic(n)) continue;
          plan.recipes.push_back({Recipe::Kind::kFanout, idx, 0, 0, n, false});
          plan.records.push_back(fanout_record(r, n, cls));
          plan.tallies[idx].routed += 1;
        }
      }
    }
  }

  bus::OutRecord rebuild(const Plan& plan, const Recipe& rc) const {
    const auto& r = *plan.requests[rc.request];
    switch (rc.kind) {
      case Recipe::Kind::kDeliver:
        return std::move(*unicast_records(r, rc.seq, rc.node, rc.epoch, false,
                                          cfg_.traffic_class, rc.after_seq)
                              .deliver);
      case Recipe::Kind::kOffline:
        return std::move(
            *unicast_records(r, rc.seq, std::nullopt, rc.epoch, true, cfg_.traffic_class).offline);
      case Recipe::Kind::kFanout:
        break;
    }
    return fanout_record(r, rc.node, cfg_.traffic_class);
  }

  // ---- completion -------------------------------------------------------------------

  // On produce_strand_ (touches no loop state but through strand_).
  static asio::awaitable<void> complete(std::shared_ptr<Impl> self, std::shared_ptr<Plan> plan) {
    const bool done = co_await self->produce_all(*plan);
    if (done) co_await self->finish(*plan);
    asio::post(self->strand_, [self] {
      --self->in_flight_;
      self->stats_.in_flight = self->in_flight_;
      self->m_.in_flight->Set(self->in_flight_);
      self->wake_.cancel();
    });
  }

  // Produces every record of the plan; true once all are acknowledged (or
  // dropped as addressed to an unknown node), false if the router stopped.
  asio::awaitable<bool> produce_all(Plan& plan) {
    const auto t0 = SteadyClock::now();
    std::vector<std::size_t> pending(plan.records.size());
    for (std::size_t i = 0; i < pending.size(); ++i) pending[i] = i;
    std::vector<bus::OutRecord> out = std::move(plan.records);
    auto backoff = cfg_.retry_backoff_min;
    while (!pending.empty()) {
      auto results = co_await producer_->produce_batch(std::move(out));
      std::vector<std::size_t> failed;
      boost::system::error_code first_error;
      for (std::size_t k = 0; k < results.size(); ++k) {
        if (results[k]) continue;
        const auto ec = results[k].error();
        Recipe& rc = plan.recipes[pending[k]];
        if (ec == make_error_code(errc::invalid_argument) && rc.kind != Recipe::Kind::kOffline) {
          // The node's topic does not exist (node gone): the offline copy,
          // if any, still carries the message.
          rc.dropped = true;
          auto& t = plan.tallies[rc.request];
          t.routed -= 1;
          ++plan.unknown_node;
          if (rc.kind == Recipe::Kind::kDeliver && plan.requests[rc.request]->ttl_s() == 0) {
            t.expired += 1;
            ++plan.expired;
          }
          continue;
        }
        if (!first_error) first_error = ec;
        failed.push_back(pending[k]);
      }
      if (failed.empty()) break;
      if (auto f = producer_->fatal_error()) {
        set_fatal("producer: " + *f);
        co_return false;
      }
      if (stopping_) co_return false;
      stats_.produce_retries += failed.size();
      m_.produce_retries->Increment(static_cast<double>(failed.size()));
      warn_limited("produce", std::to_string(failed.size()) + " record(s) failed (" +
                                  first_error.message() + "); retrying");
      if (!co_await sleep(backoff)) co_return false;
      backoff = std::min(backoff * 2, cfg_.retry_backoff_max);
      out.clear();
      out.reserve(failed.size());
      for (auto i : failed) out.push_back(rebuild(plan, plan.recipes[i]));
      pending = std::move(failed);
    }
    m_.produce_seconds->Observe(seconds_since(t0));
    co_return true;
  }

  asio::awaitable<void> finish(Plan& plan) {
    consumer_->mark_processed(plan.inputs);
    stats_.completed += plan.inputs.size();
    uint64_t online = 0, stored = 0, fanned = 0;
    for (const auto& rc : plan.recipes) {
      if (rc.dropped) continue;
      switch (rc.kind) {
        case Recipe::Kind::kDeliver:
          ++online;
          break;
        case Recipe::Kind::kOffline:
          ++stored;
          break;
        case Recipe::Kind::kFanout:
          ++fanned;
          break;
      }
    }
    stats_.online += online;
    stats_.stored += stored;
    stats_.fanned_out += fanned;
    stats_.expired += plan.expired;
    stats_.unknown_node += plan.unknown_node;
    m_.online->Increment(static_cast<double>(online));
    m_.stored->Increment(static_cast<double>(stored));
    m_.fanned_out->Increment(static_cast<double>(fanned));
    m_.expired->Increment(static_cast<double>(plan.expired));
    m_.unknown_node->Increment(static_cast<double>(plan.unknown_node));

    if (!cfg_.counters) co_return;
    CounterBatch counters;
    counters.reserve(plan.requests.size());
    for (std::size_t i = 0; i < plan.requests.size(); ++i) {
      const auto& t = plan.tallies[i];
      if (t.routed == 0 && t.stored == 0 && t.expired == 0) continue;
      const PushRequest& r = *plan.requests[i];
      counters.add(r.message_id(), expires_at_ms(r), t.routed, t.stored, t.expired,
                   r.counters_expire_ms(), r.targets() == 1 && !r.device_id().empty());
    }
    if (counters.empty()) co_return;
    auto r = co_await store_->incr_counters_batch(
        counters.updates(clock_.now_ms(), cfg_.counters_min_ttl));
    if (!r) {
      ++stats_.counter_failures;
      m_.counter_failures->Increment();
      warn_limited("message counters", r.error().message() + " (counters are best effort)");
    }
  }

  // ---- shutdown -----------------------------------------------------------------------

  static asio::awaitable<void> shutdown(std::shared_ptr<Impl> self) {
    co_await self->do_shutdown();
  }

  asio::awaitable<void> do_shutdown() {
    asio::steady_timer t(strand_);
    auto wait_until = [&t](SteadyClock::time_point deadline) {
      t.expires_at(std::min(deadline, SteadyClock::now() + milliseconds(10)));
      return t.async_wait(asio::as_tuple(asio::use_awaitable));
    };
    if (shutdown_started_.exchange(true)) {
      const auto deadline = SteadyClock::now() + cfg_.drain_timeout + std::chrono::seconds(30);
      while (!shutdown_done_ && SteadyClock::now() < deadline) co_await wait_until(deadline);
      co_return;
    }
    const bool was_stopping = stopping_.exchange(true);
    m_.ready->Set(0);
    wake_.cancel();
    (void)was_stopping;
    // The loop notices within batch_wait; in-flight batches get drain_timeout
    // to be acknowledged (their failed records are not retried any more).
    const auto loop_deadline = SteadyClock::now() + cfg_.batch_wait + std::chrono::seconds(5);
    while (loop_running_ && SteadyClock::now() < loop_deadline) co_await wait_until(loop_deadline);
    const auto drain_deadline = SteadyClock::now() + cfg_.drain_timeout;
    while (in_flight_ > 0 && SteadyClock::now() < drain_deadline) {
      co_await wait_until(drain_deadline);
    }
    if (in_flight_ > 0) {
      log()->warn("{} batch(es) not acknowledged within drain_timeout: they will be redelivered",
                  in_flight_);
    }
    if (consumer_) co_await consumer_->close();  // commits what was marked processed
    if (producer_) producer_->close(kProducerCloseFlush);
    const auto end_deadline = SteadyClock::now() + std::chrono::seconds(5);
    while ((in_flight_ > 0 || loop_running_) && SteadyClock::now() < end_deadline) {
      co_await wait_until(end_deadline);
    }
    if (store_) store_->client().close();
    const auto s = stats_snapshot();
    log()->info(
        "online router ({}) stopped: consumed {}, online {}, stored {}, expired {}, "
        "fanned out {}, bad {}",
        class_name(cfg_.traffic_class), s.consumed, s.online, s.stored, s.expired, s.fanned_out,
        s.bad_records);
    shutdown_done_ = true;
  }

  RouterStats stats_snapshot() const {
    RouterStats s;
    s.consumed = stats_.consumed;
    s.batches = stats_.batches;
    s.completed = stats_.completed;
    s.online = stats_.online;
    s.stored = stats_.stored;
    s.expired = stats_.expired;
    s.fanned_out = stats_.fanned_out;
    s.unknown_node = stats_.unknown_node;
    s.bad_records = stats_.bad_records;
    s.produce_retries = stats_.produce_retries;
    s.store_retries = stats_.store_retries;
    s.counter_failures = stats_.counter_failures;
    s.in_flight = stats_.in_flight;
    return s;
  }
};

Router::Router(asio::any_io_executor ex, RouterConfig cfg, RouterOptions options)
    : impl_(std::make_shared<Impl>(std::move(ex), std::move(cfg), std::move(options))) {}

Router::~Router() { stop(); }

result<void> Router::start() { return impl_->start(); }

asio::awaitable<void> Router::shutdown() {
  if (!impl_->started_) co_return;
  co_await asio::co_spawn(impl_->strand_, Impl::shutdown(impl_), asio::use_awaitable);
}

void Router::stop() {
  if (!impl_->started_ || impl_->shutdown_done_) return;
  auto fut = asio::co_spawn(impl_->strand_, Impl::shutdown(impl_), asio::use_future);
  const auto limit = impl_->cfg_.drain_timeout + std::chrono::seconds(30);
  if (fut.wait_for(limit) != std::future_status::ready) {
    log()->error("online router shutdown did not finish within {} ms", limit.count());
  }
}

bool Router::ready() const { return impl_->ready(); }

RouterStats Router::stats() const { return impl_->stats_snapshot(); }

std::optional<std::string> Router::fatal_error() const {
  std::lock_guard lk(impl_->fatal_mu_);
  return impl_->fatal_;
}

}  // namespace pushgw::online_router
