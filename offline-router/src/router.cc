// The offline router: consume loop, partition ownership, store work on the
// pool, replay produce, offset marks. Everything below runs on Impl::strand_
// unless noted; store calls run on Impl::pool_ (work) or Impl::lifecycle_
// (opening and closing partition stores, one thread of its own).
//
// One batch is in flight at a time: the loop takes a batch, runs the store
// work of every partition in it on the pool, produces the replays, and only
// then marks the records processed (their offsets become committable). A
// partition whose store write failed keeps its records in held_ and the loop
// retries them (and takes nothing new) until the write succeeds.
#include "offline_router/router.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/crc.hpp>
#include <condition_variable>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <type_traits>

#include "common/bus/kafka.h"
#include "common/log.h"
#include "common/spawn.h"
#include "msg_store/store_set.h"
#include "offline_router/partition_work.h"
#include "router_metrics.h"

namespace pushgw::offline_router {

namespace asio = boost::asio;
namespace ms = msg_store;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr auto kSleepSlice = milliseconds(50);
constexpr auto kStatsEvery = std::chrono::seconds(5);
constexpr auto kProducerCloseFlush = milliseconds(5'000);
constexpr auto kTopicCheckTimeout = milliseconds(15'000);

std::shared_ptr<spdlog::logger> log() {
  static auto l = common::logger("offline");
  return l;
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

template <class R>
asio::awaitable<R> invoke(std::function<R()> fn) {
  try {
    co_return fn();
  } catch (const std::exception& e) {
    log()->error("store task threw: {}", e.what());
  }
  if constexpr (std::is_constructible_v<R, boost::system::error_code>) {
    co_return R(boost::system::error_code(errc::unavailable));
  } else {
    co_return R{};
  }
}

// Runs fn on `ex` (a pool) and resumes the caller on its own executor. An
// exception escaping fn is logged and becomes R(errc::unavailable) (or an
// empty R).
template <class R, class Executor>
asio::awaitable<R> on_executor(Executor ex, std::function<R()> fn) {
  co_return co_await asio::co_spawn(ex, invoke<R>(std::move(fn)), asio::use_awaitable);
}

// The partitions of one batch, applied by whichever pool threads are free:
// the calling thread takes items too, so it never waits for a helper that
// did not start (a helper that starts late finds nothing left and leaves
// without touching the work).
class ParallelApply {
 public:
  ParallelApply(const WorkContext* ctx, std::vector<PartitionWork>* work)
      : ctx_(ctx), work_(work), n_(work->size()), out_(work->size()) {}
  void run() {
    for (;;) {
      const std::size_t i = next_.fetch_add(1);
      if (i >= n_) return;
      out_[i] = apply_partition(*ctx_, (*work_)[i]);
      std::lock_guard lk(mu_);
      if (++done_ == n_) cv_.notify_all();
    }
  }
  std::vector<PartitionResult> wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [this] { return done_ == n_; });
    return std::move(out_);
  }

 private:
  const WorkContext* ctx_;
  std::vector<PartitionWork>* work_;
  const std::size_t n_;
  std::vector<PartitionResult> out_;
  std::atomic<std::size_t> next_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t done_ = 0;
};

// Size figures of one partition's store, for the gauges.
struct Figures {
  int32_t partition;
  ms::StoreStats stats;
  uint64_t expired_delta;
};

}  // namespace

struct OfflineRouter::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor ex, RouterConfig cfg, RouterOptions options)
      : strand_(asio::make_strand(ex)),
        cfg_(std::move(cfg)),
        options_(std::move(options)),
        metrics_(options_.metrics ? options_.metrics
                                  : std::make_shared<common::Metrics>("offline-router")),
        m_(metrics_->registry()),
        pool_(cfg_.store.pool_threads),
        lifecycle_(lifecycle_pool_.get_executor()) {
    ms::StoreOptions so;
    so.max_per_device = cfg_.store.max_per_device;
    so.max_collapsible_per_device = cfg_.store.max_collapsible_per_device;
    so.ack_retention = std::chrono::duration_cast<milliseconds>(cfg_.store.ack_retention);
    so.device_cache_entries = cfg_.store.device_cache_entries;
    so.write_buffer_bytes = static_cast<uint64_t>(cfg_.store.write_buffer_mb) << 20;
    so.block_cache_bytes = static_cast<uint64_t>(cfg_.store.block_cache_mb) << 20;
    so.clock = options_.clock;
    stores_ = std::make_shared<ms::StoreSet>(cfg_.store.data_dir, so, cfg_.store.open_wait);
    ctx_.config = &cfg_;
    ctx_.tracked = &tracked_;
    ctx_.now_ms = &wall_ms;
  }

  ~Impl() { stop_blocking(); }

  // ---- startup --------------------------------------------------------------

  result<void> start() {
    std::string bootstrap = cfg_.kafka.bootstrap;
    if (!cfg_.kafka.bootstrap_file.empty()) {
      std::ifstream in(cfg_.kafka.bootstrap_file);
      std::stringstream ss;
      ss << in.rdbuf();
      bootstrap = trim(ss.str());
      if (!in || bootstrap.empty()) {
        log()->error("kafka.bootstrap_file {}: missing or empty", cfg_.kafka.bootstrap_file);
        return errc::invalid_argument;
      }
    }
    bus::KafkaConfig kafka;
    kafka.bootstrap_servers = bootstrap;
    kafka.client_id = cfg_.kafka.client_id;
    for (const auto& p : cfg_.kafka.properties) {
      const auto eq = p.find('=');
      kafka.properties[p.substr(0, eq)] = p.substr(eq + 1);
    }

    const int n = cfg_.kafka.partitions;
    auto topics = bus::ensure_topics(kafka,
                                     {{cfg_.kafka.offline_topic, n, -1},
                                      {cfg_.kafka.presence_topic, n, -1},
                                      {cfg_.kafka.acks_topic, n, -1}},
                                     {kTopicCheckTimeout, true});
    if (!topics) {
      log()->error("cannot check the input topics: {}", topics.error().message());
      return topics.error();
    }
    for (const auto& t : *topics) {
      if (t.partitions != topics->front().partitions) {
        log()->critical(
            "partition counts differ: {} has {}, {} has {}, {} has {}. A device's records must "
            "land in the same partition number of all three topics; refusing to start",
            (*topics)[0].name, (*topics)[0].partitions, (*topics)[1].name,
            (*topics)[1].partitions, (*topics)[2].name, (*topics)[2].partitions);
        return errc::invalid_argument;
      }
    }
    log()->info("input topics {}, {}, {}: {} partitions each", cfg_.kafka.offline_topic,
                cfg_.kafka.presence_topic, cfg_.kafka.acks_topic, topics->front().partitions);
    partition_count_ = topics->front().partitions;

    try {
      bus::ProducerConfig pc;
      pc.kafka = kafka;
      pc.message_timeout = cfg_.kafka.message_timeout;
      pc.linger = cfg_.kafka.linger;
      producer_ = bus::make_kafka_producer(pc, &metrics_->registry());

      bus::ConsumerConfig cc;
      cc.kafka = kafka;
      // Range assignment gives every member the same partition numbers of all
      // three topics (they have the same partition count, checked above), so a
      // device's stores, acks and presence meet in the one store that owns it.
      cc.kafka.properties["partition.assignment.strategy"] = "range";
      cc.group_id = cfg_.kafka.group_id;
      cc.session_timeout = cfg_.kafka.session_timeout;
      cc.heartbeat_interval = cfg_.kafka.heartbeat_interval;
      std::weak_ptr<Impl> weak = weak_from_this();
      bus::RebalanceHandlers handlers;
      handlers.on_assigned = [weak](std::vector<bus::TopicPartition> parts) {
        if (auto self = weak.lock()) self->assigned(std::move(parts));
      };
      handlers.on_revoked = [weak](std::vector<bus::TopicPartition> parts) {
        if (auto self = weak.lock()) self->revoked(std::move(parts));
      };
      consumer_ = bus::make_kafka_consumer(cc, strand_, std::move(handlers), &metrics_->registry());
      // Runs on the store pool, inside a batch (the consumer outlives it).
      ctx_.offline_end_offset = [this](int32_t partition) -> std::optional<int64_t> {
        auto end = consumer_->end_offset({cfg_.kafka.offline_topic, partition},
                                         std::chrono::milliseconds(2'000));
        if (!end) return std::nullopt;
        return *end;
      };
    } catch (const bus::ConfigError& e) {
      log()->error("kafka config: {}", e.what());
      return errc::invalid_argument;
    }
    if (auto r = consumer_->subscribe(
            {cfg_.kafka.offline_topic, cfg_.kafka.presence_topic, cfg_.kafka.acks_topic});
        !r) {
      return r.error();
    }
    done_timer_ = std::make_shared<asio::steady_timer>(strand_, asio::steady_timer::time_point::max());
    started_ = true;
    auto self = shared_from_this();
    asio::co_spawn(strand_, run(self), [self](std::exception_ptr e) {
      if (e) common::detail::log_escaped_exception("offline-router loop", e);
      self->loop_done_ = true;
      self->done_timer_->cancel();
    });
    common::spawn_logged(strand_, stats_loop(self), "offline-router stats");
    return {};
  }

  // ---- ownership (strand) ---------------------------------------------------

  void assigned(std::vector<bus::TopicPartition> parts) {
    for (const auto& tp : parts) {
      if (tp.topic != cfg_.kafka.offline_topic) continue;
      auto state = std::make_shared<PartitionState>(&tracked_);
      state->gen = ++gen_;
      owned_[tp.partition] = state;
      // Open now rather than on the first record: a moved partition may
      // wait for its previous holder, better before records pile up.
      open_store(tp.partition, state->gen);
    }
    m_.partitions->Set(static_cast<double>(owned_.size()));
  }

  void revoked(std::vector<bus::TopicPartition> parts) {
    for (const auto& tp : parts) {
      if (tp.topic != cfg_.kafka.offline_topic) continue;
      if (owned_.erase(tp.partition) == 0) continue;
      // Closes once the batch in flight (if any) lets go of it.
      asio::post(lifecycle_, [stores = stores_, p = tp.partition] { stores->close(p); });
      m_.store_bytes->Remove(&m_.store_bytes->Add({{"partition", std::to_string(tp.partition)}}));
      m_.store_keys->Remove(&m_.store_keys->Add({{"partition", std::to_string(tp.partition)}}));
    }
    m_.partitions->Set(static_cast<double>(owned_.size()));
  }

  void open_store(int32_t p, uint64_t gen) {
    auto self = shared_from_this();
    asio::post(lifecycle_, [self, p, gen] {
      auto opened = self->stores_->open(p);
      asio::post(self->strand_, [self, p, gen, opened = std::move(opened)]() mutable {
        self->opened(p, gen, std::move(opened));
      });
    });
  }

  void opened(int32_t p, uint64_t gen, result<std::shared_ptr<ms::MessageStore>> store) {
    auto it = owned_.find(p);
    if (!store) {
      log()->error("partition {}: cannot open its store in {}: {}", p,
                   stores_->dir_of(p).string(), store.error().message());
      return;
    }
    if (it == owned_.end() || it->second->gen != gen) return;  // revoked meanwhile
    if (!it->second->store) {
      it->second->store = std::move(*store);
      log()->info("partition {}: store open in {}", p, stores_->dir_of(p).string());
    }
  }

  // ---- the loop (strand) ----------------------------------------------------

  static asio::awaitable<void> run(std::shared_ptr<Impl> self) {
    auto last_warn = SteadyClock::time_point{};
    while (!self->stopping_) {
      std::vector<bus::Record> batch;
      if (!self->held_.empty()) {
        co_await self->sleep(self->cfg_.batch.retry_backoff);
        if (self->stopping_) break;
        batch.swap(self->held_);
      } else {
        auto next = co_await self->consumer_->next_batch(self->cfg_.batch.max_records,
                                                         self->cfg_.batch.poll_timeout);
        if (!next) {
          if (next.error() == errc::shutting_down) break;
          if (SteadyClock::now() - last_warn > std::chrono::seconds(5)) {
            last_warn = SteadyClock::now();
            log()->warn("consumer: {}", next.error().message());
          }
          co_await self->sleep(milliseconds(200));
          continue;
        }
        if (next->empty() && !self->replay_wait_due()) continue;
        batch = std::move(*next);
      }
      co_await process(self, std::move(batch));
    }
  }

  static asio::awaitable<void> process(std::shared_ptr<Impl> self,
                                       std::vector<bus::Record> records) {
    const auto t0 = SteadyClock::now();
    std::map<int32_t, PartitionWork> by_partition;
    uint64_t unowned = 0;
    for (auto& r : records) {
      auto it = self->owned_.find(r.partition);
      if (it == self->owned_.end()) {
        // Not marked: whoever owns the partition reads it again.
        ++unowned;
        continue;
      }
      auto& w = by_partition[r.partition];
      if (!w.state) {
        w.partition = r.partition;
        w.state = it->second;
      }
      w.records.push_back(std::move(r));
    }
    if (unowned > 0) self->m_.rejected[static_cast<int>(Rejected::kUnowned)]->Increment(
        static_cast<double>(unowned));
    // Partitions whose waiting replays are due run even without records.
    const uint64_t now = wall_ms();
    for (const auto& [part, state] : self->owned_) {
      if (by_partition.contains(part) || !due(*state, now)) continue;
      auto& w = by_partition[part];
      w.partition = part;
      w.state = state;
    }

    // (Named locals around every co_await: GCC 12 mishandles temporaries
    // with destructors and structured bindings across a suspension.)
    std::vector<PartitionWork> work;
    for (auto bp = by_partition.begin(); bp != by_partition.end(); ++bp) {
      const int32_t part = bp->first;
      PartitionWork& w = bp->second;
      if (!w.state->store) {
        // Assigned but not open yet: the open queued at assignment runs first
        // on the lifecycle strand; this one returns its result.
        auto stores = self->stores_;
        std::function<result<std::shared_ptr<ms::MessageStore>>()> open_task =
            [stores, part] { return stores->open(part); };
        auto opened = co_await on_executor<result<std::shared_ptr<ms::MessageStore>>>(
            self->lifecycle_, std::move(open_task));
        auto it = self->owned_.find(part);
        if (it == self->owned_.end() || it->second != w.state) continue;  // revoked meanwhile
        if (!opened) {
          log()->error("partition {}: store not available: {}; retrying", part,
                       opened.error().message());
          self->hold(std::move(w.records));
          continue;
        }
        if (!w.state->store) w.state->store = *opened;
      }
      w.store = w.state->store;
      work.push_back(std::move(w));
    }

    std::vector<PartitionResult> results;
    if (!work.empty()) {
      // Partitions are independent (own store, own state): they run in
      // parallel on the pool's threads.
      auto shared = std::make_shared<ParallelApply>(&self->ctx_, &work);
      auto pool = self->pool_.get_executor();
      const unsigned helpers =
          static_cast<unsigned>(std::min<std::size_t>(work.size(), self->cfg_.store.pool_threads)) -
          1;
      std::function<std::vector<PartitionResult>()> apply_task = [shared, pool, helpers] {
        for (unsigned h = 0; h < helpers; ++h) {
          asio::post(pool, [shared] { shared->run(); });
        }
        shared->run();
        return shared->wait();
      };
      results = co_await on_executor<std::vector<PartitionResult>>(self->pool_.get_executor(),
                                                                   std::move(apply_task));
    }

    // Replays and forwards of the partitions whose write succeeded.
    std::vector<ReplayGroup> groups;
    std::vector<bus::OutRecord> forwards;
    for (auto& r : results) {
      if (r.error) continue;
      for (auto& g : r.replays) groups.push_back(std::move(g));
      for (auto& f : r.forwards) forwards.push_back(std::move(f));
    }
    if (!groups.empty() || !forwards.empty()) {
      co_await self->produce(std::move(groups), std::move(forwards));
    }

    bool failed = false;
    for (std::size_t i = 0; i < results.size(); ++i) {
      auto& r = results[i];
      if (r.error) {
        failed = true;
        self->m_.store_failures->Increment();
        self->count([](RouterStats& s) { ++s.store_failures; });
        log()->error("partition {}: store write failed: {}; offsets held, retrying in {} ms",
                     r.partition, r.error.message(), self->cfg_.batch.retry_backoff.count());
        self->hold(std::move(work[i].records));
        continue;
      }
      if (self->consumer_) {
        // A presence whose replay waits is marked once the replay is out.
        if (!r.deferred_offsets.empty()) {
          const std::string& presence = self->cfg_.kafka.presence_topic;
          std::erase_if(work[i].records, [&](const bus::Record& rec) {
            return rec.topic == presence &&
                   std::find(r.deferred_offsets.begin(), r.deferred_offsets.end(), rec.offset) !=
                       r.deferred_offsets.end();
          });
        }
        self->consumer_->mark_processed(work[i].records);
        if (!r.released.empty()) self->consumer_->mark_processed(r.released);
      }
      self->account(r);
    }
    self->store_ok_ = !failed && self->held_.empty();
    self->m_.ready->Set(self->ready() ? 1 : 0);
    self->count([](RouterStats& s) { ++s.batches; });
    self->m_.batch_seconds->Observe(
        std::chrono::duration<double>(SteadyClock::now() - t0).count());
  }

  static uint64_t wall_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  }
  static bool due(const PartitionState& ps, uint64_t now) {
    return std::any_of(ps.pending.begin(), ps.pending.end(),
                       [now](const auto& kv) { return kv.second.deadline_ms <= now; });
  }
  bool replay_wait_due() const {
    const uint64_t now = wall_ms();
    return std::any_of(owned_.begin(), owned_.end(),
                       [now](const auto& kv) { return due(*kv.second, now); });
  }

  void hold(std::vector<bus::Record> records) {
    for (auto& r : records) held_.push_back(std::move(r));
    store_ok_ = false;
  }

  // Produces every replay group whole (a group failing in part is produced
  // again whole: the client drops duplicates by message_id) and every
  // forward, with a few attempts.
  asio::awaitable<void> produce(std::vector<ReplayGroup> groups,
                                std::vector<bus::OutRecord> forwards) {
    std::vector<std::size_t> pending_groups(groups.size());
    for (std::size_t i = 0; i < groups.size(); ++i) pending_groups[i] = i;
    std::vector<std::size_t> pending_forwards(forwards.size());
    for (std::size_t i = 0; i < forwards.size(); ++i) pending_forwards[i] = i;
    for (uint32_t attempt = 1;; ++attempt) {
      std::vector<bus::OutRecord> out;
      for (auto g : pending_groups) {
        for (const auto& r : groups[g].records) out.push_back(r);
      }
      for (auto f : pending_forwards) out.push_back(forwards[f]);
      auto delivered = co_await producer_->produce_batch(std::move(out));
      std::size_t at = 0;
      std::vector<std::size_t> failed_groups;
      std::vector<std::size_t> failed_forwards;
      boost::system::error_code last_error;
      for (auto g : pending_groups) {
        bool ok = true;
        for (std::size_t k = 0; k < groups[g].records.size(); ++k, ++at) {
          if (!delivered[at]) {
            ok = false;
            last_error = delivered[at].error();
          }
        }
        if (ok) {
          m_.replays_ok->Increment();
          m_.replayed->Increment(groups[g].messages);
          count([&](RouterStats& s) {
            ++s.replays;
            s.replayed += groups[g].messages;
          });
        } else {
          failed_groups.push_back(g);
        }
      }
      for (auto f : pending_forwards) {
        if (delivered[at]) {
          m_.forwarded->Increment();
          count([](RouterStats& s) { ++s.forwarded; });
        } else {
          last_error = delivered[at].error();
          failed_forwards.push_back(f);
        }
        ++at;
      }
      if (failed_groups.empty() && failed_forwards.empty()) co_return;
      if (attempt >= cfg_.replay.produce_attempts || stopping_) {
        log()->error("{} replays and {} forwards not delivered after {} attempts ({}); the "
                     "messages stay stored for the next connect",
                     failed_groups.size(), failed_forwards.size(), attempt, last_error.message());
        m_.replays_failed->Increment(static_cast<double>(failed_groups.size()));
        count([&](RouterStats& s) { s.replay_failures += failed_groups.size(); });
        co_return;
      }
      pending_groups = std::move(failed_groups);
      pending_forwards = std::move(failed_forwards);
      co_await sleep(milliseconds(200) * attempt);
    }
  }

  void account(const PartitionResult& r) {
    const auto& st = r.applied.store;
    uint64_t stored = 0;
    uint64_t not_stored = 0;
    for (auto o : st.outcomes) {
      m_.outcomes[static_cast<std::size_t>(o)]->Increment();
      if (o == ms::StoreOutcome::kStored || o == ms::StoreOutcome::kCollapsed ||
          o == ms::StoreOutcome::kOverflowed) {
        ++stored;
      } else {
        ++not_stored;
      }
      if (o == ms::StoreOutcome::kExpired) m_.expired_store->Increment();
    }
    m_.stored->Increment(static_cast<double>(stored));
    m_.collapsed->Increment(static_cast<double>(st.collapsed_away));
    m_.overflowed->Increment(static_cast<double>(st.overflow_dropped));
    m_.markers->Increment(static_cast<double>(st.markers_written));
    m_.expired_trim->Increment(static_cast<double>(st.expired_removed));
    m_.acked->Increment(static_cast<double>(r.applied.ack.deleted));
    m_.ack_events->Increment(static_cast<double>(r.ack_events));
    m_.skipped_applied->Increment(static_cast<double>(r.skipped_applied));
    m_.state_gaps->Increment(static_cast<double>(r.state_gaps));
    m_.replays_skipped->Increment(static_cast<double>(r.replays_skipped));
    m_.replays_failed->Increment(static_cast<double>(r.replay_read_failures));
    m_.replay_waits_deferred->Increment(static_cast<double>(r.replays_deferred));
    m_.replay_waits_caught_up->Increment(static_cast<double>(r.replays_caught_up));
    m_.replay_waits_timeout->Increment(static_cast<double>(r.replays_wait_timeouts));
    m_.rejected[static_cast<int>(Rejected::kBadMessage)]->Increment(
        static_cast<double>(r.rejected_bad));
    m_.rejected[static_cast<int>(Rejected::kSchemaVersion)]->Increment(
        static_cast<double>(r.rejected_schema));
    count([&](RouterStats& s) {
      s.stored += stored;
      s.not_stored += not_stored;
      s.acked += r.applied.ack.deleted;
      s.ack_events += r.ack_events;
      s.skipped_applied += r.skipped_applied;
      s.rejected += r.rejected_bad + r.rejected_schema;
      s.replay_failures += r.replay_read_failures;
    });
  }

  template <class F>
  void count(F&& f) {
    std::lock_guard lk(stats_mu_);
    f(stats_);
  }

  // Sleeps in slices so that shutdown does not wait for a long back-off.
  asio::awaitable<void> sleep(milliseconds d) {
    asio::steady_timer t(strand_);
    const auto until = SteadyClock::now() + d;
    while (!stopping_ && SteadyClock::now() < until) {
      t.expires_after(std::min<SteadyClock::duration>(kSleepSlice, until - SteadyClock::now()));
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  // Store size gauges and TTL-compaction counts, every few seconds.
  static asio::awaitable<void> stats_loop(std::shared_ptr<Impl> self) {
    while (!self->stopping_) {
      co_await self->sleep(std::chrono::duration_cast<milliseconds>(kStatsEvery));
      if (self->stopping_) break;
      std::vector<std::pair<int32_t, std::shared_ptr<PartitionState>>> open;
      for (const auto& entry : self->owned_) {
        if (entry.second->store) open.emplace_back(entry.first, entry.second);
      }
      if (open.empty()) continue;
      std::function<std::vector<Figures>()> stats_task = [open] {
        std::vector<Figures> out;
        for (const auto& entry : open) {
          const auto& st = entry.second;
          auto s = st->store->stats();
          if (!s) continue;
          // Read and written on the pool only (one stats task at a time).
          const uint64_t delta = s->expired_compacted >= st->expired_compacted_seen
                                     ? s->expired_compacted - st->expired_compacted_seen
                                     : 0;
          st->expired_compacted_seen = s->expired_compacted;
          out.push_back({entry.first, *s, delta});
        }
        return out;
      };
      auto figures = co_await on_executor<std::vector<Figures>>(self->pool_.get_executor(),
                                                                std::move(stats_task));
      for (const auto& f : figures) {
        if (!self->owned_.contains(f.partition)) continue;
        const std::string label = std::to_string(f.partition);
        self->m_.store_bytes->Add({{"partition", label}})
            .Set(static_cast<double>(f.stats.sst_bytes + f.stats.memtable_bytes));
        self->m_.store_keys->Add({{"partition", label}})
            .Set(static_cast<double>(f.stats.estimated_keys));
        self->m_.expired_compaction->Increment(static_cast<double>(f.expired_delta));
      }
    }
  }

  // ---- diagnostics (strand) -------------------------------------------------

  static asio::awaitable<result<DeviceStored>> device_stored(std::shared_ptr<Impl> self,
                                                             std::string app, std::string device) {
    if (app.empty() || device.empty()) co_return result<DeviceStored>(errc::invalid_argument);
    const int32_t n = self->partition_count_.load();
    if (n <= 0) co_return result<DeviceStored>(errc::unavailable);
    DeviceStored out;
    out.partition = partition_of_key(device_key(app, device), n);
    auto it = self->owned_.find(out.partition);
    if (it == self->owned_.end() || !it->second->store) co_return out;
    out.owned = true;
    auto store = it->second->store;
    std::function<result<ms::DeviceStats>()> task = [store, app, device] {
      return store->device_stats(app, device);
    };
    auto figures = co_await on_executor<result<ms::DeviceStats>>(self->pool_.get_executor(),
                                                                 std::move(task));
    if (!figures) co_return result<DeviceStored>(figures.error());
    out.stats = *figures;
    co_return out;
  }

  // ---- shutdown ---------------------------------------------------------------

  static asio::awaitable<void> shutdown(std::shared_ptr<Impl> self) {
    self->stopping_ = true;
    if (!self->started_) co_return;
    if (!self->loop_done_) {
      co_await self->done_timer_->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (self->consumer_) co_await self->consumer_->close();
    auto producer = self->producer_.get();
    auto stores = self->stores_;
    std::function<result<void>()> close_task = [producer, stores] {
      if (producer) producer->close(kProducerCloseFlush);
      stores->close_all();
      return result<void>();
    };
    co_await on_executor<result<void>>(self->pool_.get_executor(), std::move(close_task));
    self->owned_.clear();
    self->m_.ready->Set(0);
    log()->info("offline router stopped");
  }

  void stop_blocking() {
    stopping_ = true;
    if (consumer_) consumer_.reset();  // closes (commits processed offsets) if not done
    if (producer_) producer_->close(milliseconds(1'000));
    stores_->close_all();
    pool_.join();
    lifecycle_pool_.join();
  }

  bool ready() const {
    return started_ && !stopping_ && store_ok_ && consumer_ && !consumer_->fatal_error() &&
           producer_ && !producer_->fatal_error();
  }

  RouterStats stats() const {
    std::lock_guard lk(stats_mu_);
    RouterStats s = stats_;
    s.partitions = owned_partitions_snapshot();
    return s;
  }

  std::vector<int32_t> owned_partitions_snapshot() const {
    // owned_ belongs to the strand; the store set is thread-safe.
    return stores_->open_partitions();
  }

  asio::strand<asio::any_io_executor> strand_;
  RouterConfig cfg_;
  RouterOptions options_;
  std::shared_ptr<common::Metrics> metrics_;
  RouterMetrics m_;
  asio::thread_pool pool_;
  // Opening a store may block for store.open_wait (its previous holder):
  // on its own thread, so that the batch holding that store can finish.
  asio::thread_pool lifecycle_pool_{1};
  asio::thread_pool::executor_type lifecycle_;
  std::shared_ptr<ms::StoreSet> stores_;
  WorkContext ctx_;
  std::atomic<uint64_t> tracked_{0};
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::map<int32_t, std::shared_ptr<PartitionState>> owned_;
  std::atomic<int32_t> partition_count_{0};
  uint64_t gen_ = 0;
  std::vector<bus::Record> held_;
  std::shared_ptr<asio::steady_timer> done_timer_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> loop_done_{false};
  std::atomic<bool> store_ok_{true};
  mutable std::mutex stats_mu_;
  RouterStats stats_;
};

OfflineRouter::OfflineRouter(asio::any_io_executor executor, RouterConfig config,
                             RouterOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(config), std::move(options))) {}

OfflineRouter::~OfflineRouter() { stop(); }

result<void> OfflineRouter::start() { return impl_->start(); }

asio::awaitable<void> OfflineRouter::shutdown() {
  co_await asio::co_spawn(impl_->strand_, Impl::shutdown(impl_), asio::use_awaitable);
}

void OfflineRouter::stop() { impl_->stop_blocking(); }

bool OfflineRouter::ready() const { return impl_->ready(); }

RouterStats OfflineRouter::stats() const { return impl_->stats(); }

asio::awaitable<result<DeviceStored>> OfflineRouter::device_stored(std::string app_id,
                                                                  std::string device_id) {
  co_return co_await asio::co_spawn(
      impl_->strand_, Impl::device_stored(impl_, std::move(app_id), std::move(device_id)),
      asio::use_awaitable);
}

int32_t partition_of_key(std::string_view key, int32_t partitions) {
  if (partitions <= 0) return -1;
  boost::crc_32_type crc;
  crc.process_bytes(key.data(), key.size());
  return static_cast<int32_t>(crc.checksum() % static_cast<uint32_t>(partitions));
}

}  // namespace pushgw::offline_router
