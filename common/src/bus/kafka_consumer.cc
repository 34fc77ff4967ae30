// Kafka Consumer: a librdkafka group consumer with a dedicated poll thread,
// a bounded record buffer drained by next_batch(), and offsets stored only
// for processed records (enable.auto.offset.store=false).
//
// Threads: the poll thread alone calls rd_kafka_consumer_poll, serves the
// rebalance callback (inside poll), runs commit requests and the final
// close. Other threads only take the mutex-protected state and, under the
// same mutex, call the thread-safe rd_kafka_offsets_store / rd_kafka_subscribe.
// The handle is destroyed by the poll thread after the state turned closed
// under that mutex, so no other thread can touch it afterwards.
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>

#include "common/bus/kafka.h"
#include "common/bus/offset_tracker.h"
#include "metrics.h"
#include "rdkafka_util.h"

namespace pushgw::bus {
namespace {

namespace asio = boost::asio;
using WakeHandler = asio::any_completion_handler<void()>;
using CommitHandler = asio::any_completion_handler<void(result<void>)>;

constexpr int kPollIntervalMs = 100;
constexpr std::size_t kDrainMax = 1'000;

// The executor a handler completes on, keeping its context busy (work
// tracked) while the operation is pending. Taken before the handler is type
// erased: any_completion_executor cannot be posted to in Boost 1.81.
template <class Handler>
asio::any_io_executor tracked_executor_of(const Handler& handler) {
  asio::any_io_executor ex = asio::get_associated_executor(handler);
  return asio::prefer(ex, asio::execution::outstanding_work.tracked);
}

template <class Handler, class... Args>
void post_handler(Handler handler, asio::any_io_executor work, Args... args) {
  asio::post(work, [h = std::move(handler), ... a = std::move(args)]() mutable {
    std::move(h)(std::move(a)...);
  });
}

std::string describe(const std::vector<TopicPartition>& parts) {
  std::string out;
  for (const auto& tp : parts) {
    if (!out.empty()) {
      out += ",";
    }
    out += tp.topic + "[" + std::to_string(tp.partition) + "]";
  }
  return out.empty() ? "(none)" : out;
}

Record to_record(const rd_kafka_message_t* m) {
  Record r;
  r.topic = rd_kafka_topic_name(m->rkt);
  r.partition = m->partition;
  r.offset = m->offset;
  if (m->key != nullptr) {
    r.key.assign(static_cast<const char*>(m->key), m->key_len);
  }
  if (m->payload != nullptr) {
    r.value.assign(static_cast<const char*>(m->payload), m->len);
  }
  rd_kafka_timestamp_type_t ts_type;
  r.timestamp_ms = rd_kafka_message_timestamp(m, &ts_type);
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0;
         rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      r.headers.push_back(
          {name, value ? std::string(static_cast<const char*>(value), size) : std::string()});
    }
  }
  return r;
}

class ConsumerCore : public std::enable_shared_from_this<ConsumerCore> {
 public:
  ConsumerCore(const ConsumerConfig& cfg, asio::any_io_executor executor,
               RebalanceHandlers handlers, prometheus::Registry* registry)
      : cfg_(cfg),
        executor_(std::move(executor)),
        handlers_(std::move(handlers)),
        metrics_(detail::ConsumerMetrics::make(registry, cfg.kafka.client_id, cfg.group_id)) {
    auto conf = detail::make_conf(consumer_properties(cfg));
    rd_kafka_conf_set_opaque(conf.get(), this);
    rd_kafka_conf_set_rebalance_cb(conf.get(), &ConsumerCore::on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf.get(), &ConsumerCore::on_commit);
    rd_kafka_conf_set_error_cb(conf.get(), &ConsumerCore::on_error);
    rk_ = detail::make_handle(RD_KAFKA_CONSUMER, std::move(conf));
    rd_kafka_poll_set_consumer(rk_.get());
    queue_.reset(rd_kafka_queue_get_consumer(rk_.get()));
  }

  ~ConsumerCore() { stop_and_join(); }
  ConsumerCore(const ConsumerCore&) = delete;
  ConsumerCore& operator=(const ConsumerCore&) = delete;

  void start() {
    thread_ = std::thread([this] { run(); });
  }

  void stop_and_join() {
    request_stop();
    if (thread_.joinable()) {
      if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();
      } else {
        thread_.join();
      }
    }
  }

  result<void> subscribe(const std::vector<std::string>& topics) {
    if (topics.empty()) {
      return errc::invalid_argument;
    }
    detail::PartitionListPtr list(
        rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
    for (const auto& t : topics) {
      if (t.empty()) {
        return errc::invalid_argument;
      }
      rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
    }
    std::lock_guard lk(mu_);
    if (state_ != State::kRunning) {
      return errc::shutting_down;
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk_.get(), list.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      spdlog::error("kafka consumer {}: subscribe failed: {}", cfg_.kafka.client_id,
                    rd_kafka_err2str(err));
      return errc::invalid_argument;
    }
    return {};
  }

  // Marks the caller as the one pending next_batch(); false if one already is.
  bool claim_batch() {
    std::lock_guard lk(mu_);
    if (batch_pending_) {
      return false;
    }
    batch_pending_ = true;
    return true;
  }

  void release_batch() {
    std::lock_guard lk(mu_);
    batch_pending_ = false;
  }

  result<std::vector<Record>> take(std::size_t max) {
    std::vector<Record> out;
    {
      std::lock_guard lk(mu_);
      if (fatal_) {
        return errc::rejected;
      }
      if (buffer_.empty() && state_ == State::kClosed) {
        return errc::shutting_down;
      }
      const std::size_t n = std::min(max, buffer_.size());
      out.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        out.push_back(std::move(buffer_.front()));
        buffer_.pop_front();
      }
    }
    if (!out.empty()) {
      room_cv_.notify_one();
    }
    return out;
  }

  // Parks the next_batch() coroutine until records arrive, the timer fires
  // or the consumer closes.
  void arm(WakeHandler handler, asio::any_io_executor work,
           std::shared_ptr<asio::steady_timer> timer) {
    std::unique_lock lk(mu_);
    if (!buffer_.empty() || state_ == State::kClosed || fatal_) {
      lk.unlock();
      post_handler(std::move(handler), std::move(work));
      return;
    }
    const uint64_t id = ++waiter_seq_;
    waiter_.emplace(Waiter{std::move(handler), std::move(work), timer, id});
    timer->async_wait([weak = weak_from_this(), id](boost::system::error_code) {
      if (auto self = weak.lock()) {
        self->wake_waiter(id);
      }
    });
  }

  std::size_t mark_processed(std::span<const Record> records) {
    std::lock_guard lk(mu_);
    if (state_ == State::kClosed) {
      return 0;
    }
    std::size_t accepted = 0;
    std::map<TopicPartition, PartitionState*> advanced;
    // Records come in runs of one partition: look each run's state up once.
    auto it = owned_.end();
    TopicPartition run{{}, -1};
    const PartitionState* last_advanced = nullptr;
    for (const auto& r : records) {
      if (r.partition != run.partition || r.topic != run.topic) {
        run = TopicPartition{r.topic, r.partition};
        it = owned_.find(run);
      }
      if (it == owned_.end() || it->second.epoch != r.assignment_epoch) {
        continue;
      }
      auto before = it->second.tracker.committable();
      if (!it->second.tracker.processed(r.offset)) {
        continue;
      }
      ++accepted;
      if (it->second.tracker.committable() != before && last_advanced != &it->second) {
        advanced[it->first] = &it->second;
        last_advanced = &it->second;
      }
    }
    if (!advanced.empty()) {
      detail::PartitionListPtr list(
          rd_kafka_topic_partition_list_new(static_cast<int>(advanced.size())));
      for (const auto& [tp, state] : advanced) {
        rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset =
            *state->tracker.committable();
      }
      rd_kafka_resp_err_t err = rd_kafka_offsets_store(rk_.get(), list.get());
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        spdlog::warn("kafka consumer {}: storing offsets failed: {}", cfg_.kafka.client_id,
                     rd_kafka_err2str(err));
      }
    }
    return accepted;
  }

  void request_commit(CommitHandler handler, asio::any_io_executor work) {
    {
      std::lock_guard lk(mu_);
      if (state_ != State::kClosed) {
        commits_.push_back({std::move(handler), std::move(work)});
        wake_poll_thread();
        return;
      }
    }
    post_handler(std::move(handler), std::move(work), result<void>(errc::shutting_down));
  }

  void request_close(WakeHandler handler, asio::any_io_executor work) {
    {
      std::lock_guard lk(mu_);
      if (state_ != State::kClosed) {
        close_waiters_.push_back({std::move(handler), std::move(work)});
        stop_requested_ = true;
        wake_poll_thread();
        return;
      }
    }
    post_handler(std::move(handler), std::move(work));
  }

  void request_stop() {
    std::lock_guard lk(mu_);
    if (state_ != State::kClosed) {
      stop_requested_ = true;
      wake_poll_thread();
    }
  }

  std::vector<TopicPartition> assignment() const {
    std::lock_guard lk(mu_);
    std::vector<TopicPartition> out;
    for (const auto& [tp, state] : owned_) {
      out.push_back(tp);
    }
    return out;
  }

  std::optional<std::string> fatal_error() const {
    std::lock_guard lk(mu_);
    return fatal_;
  }

  result<int64_t> end_offset(const TopicPartition& tp, std::chrono::milliseconds timeout) const {
    std::shared_lock lk(rk_mu_);  // the poll thread destroys the handle on close
    if (!rk_) return errc::shutting_down;
    int64_t low = 0;
    int64_t high = 0;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
        rk_.get(), tp.topic.c_str(), tp.partition, &low, &high, static_cast<int>(timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return detail::to_error_code(err);
    return high;
  }

 private:
  enum class State { kRunning, kClosed };

  struct PartitionState {
    uint64_t epoch = 0;
    OffsetTracker tracker;
    int64_t next_offset = -1;
  };
  struct Waiter {
    WakeHandler handler;
    asio::any_io_executor work;
    std::shared_ptr<asio::steady_timer> timer;
    uint64_t id;
  };
  struct PendingCommit {
    CommitHandler handler;
    asio::any_io_executor work;
  };
  struct CloseWaiter {
    WakeHandler handler;
    asio::any_io_executor work;
  };

  // Called with mu_ held.
  void wake_poll_thread() {
    rd_kafka_queue_yield(queue_.get());
    room_cv_.notify_all();
  }

  // Completes the parked next_batch(), if any (id 0: whichever is parked).
  void wake_waiter(uint64_t id) {
    std::optional<Waiter> w;
    {
      std::lock_guard lk(mu_);
      if (!waiter_ || (id != 0 && waiter_->id != id)) {
        return;
      }
      w.swap(waiter_);
    }
    if (id == 0) {
      // Woken by records or close: stop the timer so it does not keep the
      // caller's executor busy.
      asio::post(w->timer->get_executor(), [t = w->timer] { t->cancel(); });
    }
    post_handler(std::move(w->handler), std::move(w->work));
  }

  void run() {
    for (;;) {
      serve_commits();
      {
        std::unique_lock lk(mu_);
        if (stop_requested_) {
          break;
        }
        if (buffer_.size() >= cfg_.max_buffered) {
          // Back-pressure: no fetching until the caller takes a batch. Rebalances
          // wait too; max.poll.interval.ms bounds how long that may last.
          room_cv_.wait_for(lk, std::chrono::milliseconds(kPollIntervalMs));
          continue;
        }
      }
      rd_kafka_message_t* first = rd_kafka_consumer_poll(rk_.get(), kPollIntervalMs);
      if (first == nullptr) {
        continue;
      }
      std::vector<detail::MessagePtr> batch;
      batch.emplace_back(first);
      while (batch.size() < kDrainMax) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_.get(), 0);
        if (m == nullptr) {
          break;
        }
        batch.emplace_back(m);
      }
      accept(batch);
    }
    shutdown();
  }

  void accept(const std::vector<detail::MessagePtr>& batch) {
    std::vector<Record> records;
    records.reserve(batch.size());
    for (const auto& m : batch) {
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        message_error(m.get());
        continue;
      }
      records.push_back(to_record(m.get()));
    }
    std::size_t accepted = 0;
    std::vector<std::pair<TopicPartition, int64_t>> touched;
    {
      std::lock_guard lk(mu_);
      // Records come in runs of one partition: look each run's state up once.
      auto it = owned_.end();
      TopicPartition run{{}, -1};  // the partition of the current run
      for (auto& r : records) {
        if (r.partition != run.partition || r.topic != run.topic) {
          run = TopicPartition{r.topic, r.partition};
          it = owned_.find(run);
        }
        // Not owned any more (revoked while this batch was drained), or a
        // record this assignment already handed out: drop it.
        if (it == owned_.end() || !it->second.tracker.handed_out(r.offset)) {
          continue;
        }
        r.assignment_epoch = it->second.epoch;
        it->second.next_offset = r.offset + 1;
        if (touched.empty() || touched.back().first != it->first) {
          touched.emplace_back(it->first, 0);
        }
        touched.back().second = it->second.next_offset;
        buffer_.push_back(std::move(r));
        ++accepted;
      }
    }
    detail::inc(metrics_.consumed, static_cast<double>(accepted));
    for (const auto& [tp, next] : touched) {
      int64_t low = 0;
      int64_t high = 0;
      if (rd_kafka_get_watermark_offsets(rk_.get(), tp.topic.c_str(), tp.partition, &low, &high) ==
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        metrics_.set_lag(tp, std::max<int64_t>(0, high - next));
      }
    }
    if (accepted > 0) {
      wake_waiter(0);
    }
  }

  void message_error(const rd_kafka_message_t* m) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      return;
    }
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
      std::array<char, 512> buf{};
      rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk_.get(), buf.data(), buf.size());
      set_fatal(std::string(rd_kafka_err2name(orig)) + ": " + buf.data());
      return;
    }
    spdlog::warn("kafka consumer {}: {}{}: {}", cfg_.kafka.client_id,
                 m->rkt ? rd_kafka_topic_name(m->rkt) : "",
                 m->rkt ? "[" + std::to_string(m->partition) + "]" : std::string(),
                 rd_kafka_message_errstr(m));
  }

  void set_fatal(std::string text) {
    spdlog::critical("kafka consumer {}: fatal error, consumer stops delivering: {}",
                     cfg_.kafka.client_id, text);
    {
      std::lock_guard lk(mu_);
      if (!fatal_) {
        fatal_ = std::move(text);
      }
    }
    wake_waiter(0);
  }

  void serve_commits() {
    std::vector<PendingCommit> pending;
    {
      std::lock_guard lk(mu_);
      pending.swap(commits_);
    }
    if (pending.empty()) {
      return;
    }
    result<void> r = commit_stored("commit()");
    for (auto& p : pending) {
      post_handler(std::move(p.handler), std::move(p.work), r);
    }
  }

  // Synchronous commit of the stored offsets of the current assignment.
  result<void> commit_stored(const char* why) {
    rd_kafka_resp_err_t err = rd_kafka_commit(rk_.get(), nullptr, 0);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
      return {};
    }
    spdlog::warn("kafka consumer {}: {} commit failed: {}", cfg_.kafka.client_id, why,
                 rd_kafka_err2str(err));
    return detail::to_error_code(err);
  }

  void rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
    const bool cooperative =
        std::string_view(rd_kafka_rebalance_protocol(rk_.get())) == "COOPERATIVE";
    auto list = detail::to_vector(parts);
    detail::inc(metrics_.rebalances);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      {
        std::lock_guard lk(mu_);
        for (const auto& tp : list) {
          owned_[tp] = PartitionState{next_epoch_++, {}, -1};
        }
      }
      if (cooperative) {
        detail::ErrorPtr e(rd_kafka_incremental_assign(rk_.get(), parts));
        if (e) {
          spdlog::error("kafka consumer {}: incremental assign failed: {}", cfg_.kafka.client_id,
                        rd_kafka_error_string(e.get()));
        }
      } else {
        rd_kafka_assign(rk_.get(), parts);
      }
      if (!list.empty()) {
        spdlog::info("kafka consumer {}: assigned {}", cfg_.kafka.client_id, describe(list));
      }
      notify(handlers_.on_assigned, std::move(list));
      return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      const bool lost = rd_kafka_assignment_lost(rk_.get()) != 0;
      forget(list);
      // Marks after this point are ignored, so the commit below holds every
      // record processed under this assignment. A lost assignment belongs to
      // someone else already: committing would be refused.
      if (!lost) {
        (void)commit_stored("revoke");
      }
      if (cooperative) {
        detail::ErrorPtr e(rd_kafka_incremental_unassign(rk_.get(), parts));
        if (e) {
          spdlog::error("kafka consumer {}: incremental unassign failed: {}", cfg_.kafka.client_id,
                        rd_kafka_error_string(e.get()));
        }
      } else {
        rd_kafka_assign(rk_.get(), nullptr);
      }
      if (!list.empty()) {
        spdlog::info("kafka consumer {}: {} {}", cfg_.kafka.client_id, lost ? "lost" : "revoked",
                     describe(list));
      }
      notify(handlers_.on_revoked, std::move(list));
      return;
    }
    spdlog::error("kafka consumer {}: rebalance error: {}", cfg_.kafka.client_id,
                  rd_kafka_err2str(err));
    auto all = assignment();
    forget(all);
    rd_kafka_assign(rk_.get(), nullptr);
    notify(handlers_.on_revoked, std::move(all));
  }

  // Drops partitions from the owned set and their not-yet-handed-out records.
  void forget(const std::vector<TopicPartition>& list) {
    std::set<TopicPartition> gone(list.begin(), list.end());
    {
      std::lock_guard lk(mu_);
      for (const auto& tp : list) {
        owned_.erase(tp);
      }
      std::erase_if(buffer_, [&](const Record& r) {
        return gone.count(TopicPartition{r.topic, r.partition}) != 0;
      });
    }
    room_cv_.notify_one();
    for (const auto& tp : list) {
      metrics_.forget_lag(tp);
    }
  }

  void notify(const std::function<void(std::vector<TopicPartition>)>& fn,
              std::vector<TopicPartition> list) {
    // Cooperative rebalances report empty increments: nothing changed.
    if (!fn || list.empty()) {
      return;
    }
    asio::post(executor_, [fn, list = std::move(list), id = cfg_.kafka.client_id]() mutable {
      try {
        fn(std::move(list));
      } catch (const std::exception& e) {
        spdlog::error("kafka consumer {}: rebalance handler threw: {}", id, e.what());
      }
    });
  }

  void shutdown() {
    if (!rd_kafka_assignment_lost(rk_.get())) {
      (void)commit_stored("close");
    }
    // Leaves the group; the revoke callback runs (commit + on_revoked) inside.
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(rk_.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      spdlog::warn("kafka consumer {}: close: {}", cfg_.kafka.client_id, rd_kafka_err2str(err));
    }
    std::vector<PendingCommit> commits;
    std::vector<CloseWaiter> closers;
    {
      std::lock_guard lk(mu_);
      state_ = State::kClosed;
      commits.swap(commits_);
      closers.swap(close_waiters_);
      buffer_.clear();
      owned_.clear();
    }
    queue_.reset();
    {
      std::unique_lock lk(rk_mu_);
      rk_.reset();
    }
    wake_waiter(0);
    for (auto& c : commits) {
      post_handler(std::move(c.handler), std::move(c.work), result<void>(errc::shutting_down));
    }
    for (auto& c : closers) {
      post_handler(std::move(c.handler), std::move(c.work));
    }
    spdlog::info("kafka consumer {}: closed", cfg_.kafka.client_id);
  }

  static void on_rebalance(rd_kafka_t*, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* parts, void* opaque) {
    static_cast<ConsumerCore*>(opaque)->rebalance(err, parts);
  }

  static void on_commit(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t*,
                        void* opaque) {
    auto* self = static_cast<ConsumerCore*>(opaque);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      detail::inc(self->metrics_.commits);
    } else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
      detail::inc(self->metrics_.commit_failures);
      spdlog::warn("kafka consumer {}: offset commit failed: {}", self->cfg_.kafka.client_id,
                   rd_kafka_err2str(err));
    }
  }

  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* self = static_cast<ConsumerCore*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      std::array<char, 512> buf{};
      rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf.data(), buf.size());
      self->set_fatal(std::string(rd_kafka_err2name(orig)) + ": " + buf.data());
      return;
    }
    spdlog::warn("kafka consumer {}: {}: {}", self->cfg_.kafka.client_id,
                 rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
  }

  const ConsumerConfig cfg_;
  const asio::any_io_executor executor_;
  const RebalanceHandlers handlers_;
  detail::ConsumerMetrics metrics_;  // poll thread only (lag); counters are thread-safe
  detail::KafkaPtr rk_;
  detail::QueuePtr queue_;
  std::thread thread_;

  mutable std::mutex mu_;
  mutable std::shared_mutex rk_mu_;  // end_offset() (shared) vs the handle's destruction
  std::condition_variable room_cv_;
  State state_ = State::kRunning;
  bool stop_requested_ = false;
  bool batch_pending_ = false;
  std::deque<Record> buffer_;
  std::map<TopicPartition, PartitionState> owned_;
  uint64_t next_epoch_ = 1;
  std::optional<Waiter> waiter_;
  uint64_t waiter_seq_ = 0;
  std::vector<PendingCommit> commits_;
  std::vector<CloseWaiter> close_waiters_;
  std::optional<std::string> fatal_;
};

class BatchClaim {
 public:
  explicit BatchClaim(ConsumerCore& core) : core_(core) {}
  ~BatchClaim() { core_.release_batch(); }
  BatchClaim(const BatchClaim&) = delete;
  BatchClaim& operator=(const BatchClaim&) = delete;

 private:
  ConsumerCore& core_;
};

asio::awaitable<result<std::vector<Record>>> next_batch_impl(std::shared_ptr<ConsumerCore> core,
                                                             std::size_t max,
                                                             std::chrono::milliseconds timeout) {
  if (max == 0 || timeout.count() < 0) {
    co_return errc::invalid_argument;
  }
  if (!core->claim_batch()) {
    co_return errc::invalid_argument;
  }
  BatchClaim claim(*core);
  auto first = core->take(max);
  if (!first || !first->empty() || timeout.count() == 0) {
    co_return first;
  }
  auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor, timeout);
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [&core, &timer](auto handler) {
        auto work = tracked_executor_of(handler);
        core->arm(WakeHandler(std::move(handler)), std::move(work), timer);
      },
      asio::use_awaitable);
  co_return core->take(max);
}

asio::awaitable<result<void>> commit_impl(std::shared_ptr<ConsumerCore> core) {
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(result<void>)>(
      [&core](auto handler) {
        auto work = tracked_executor_of(handler);
        core->request_commit(CommitHandler(std::move(handler)), std::move(work));
      },
      asio::use_awaitable);
}

asio::awaitable<void> close_impl(std::shared_ptr<ConsumerCore> core) {
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [&core](auto handler) {
        auto work = tracked_executor_of(handler);
        core->request_close(WakeHandler(std::move(handler)), std::move(work));
      },
      asio::use_awaitable);
}

class KafkaConsumer final : public Consumer {
 public:
  KafkaConsumer(const ConsumerConfig& cfg, asio::any_io_executor executor,
                RebalanceHandlers handlers, prometheus::Registry* registry)
      : core_(std::make_shared<ConsumerCore>(cfg, std::move(executor), std::move(handlers),
                                             registry)) {
    core_->start();
  }
  ~KafkaConsumer() override { core_->stop_and_join(); }

  result<void> subscribe(std::vector<std::string> topics) override {
    return core_->subscribe(topics);
  }
  asio::awaitable<result<std::vector<Record>>> next_batch(
      std::size_t max, std::chrono::milliseconds timeout) override {
    return next_batch_impl(core_, max, timeout);
  }
  std::size_t mark_processed(std::span<const Record> records) override {
    return core_->mark_processed(records);
  }
  asio::awaitable<result<void>> commit() override { return commit_impl(core_); }
  asio::awaitable<void> close() override { return close_impl(core_); }
  std::vector<TopicPartition> assignment() const override { return core_->assignment(); }
  std::optional<std::string> fatal_error() const override { return core_->fatal_error(); }
  result<int64_t> end_offset(const TopicPartition& tp,
                             std::chrono::milliseconds timeout) const override {
    return core_->end_offset(tp, timeout);
  }

 private:
  std::shared_ptr<ConsumerCore> core_;
};

}  // namespace

std::unique_ptr<Consumer> make_kafka_consumer(const ConsumerConfig& cfg,
                                              boost::asio::any_io_executor executor,
                                              RebalanceHandlers handlers,
                                              prometheus::Registry* metrics) {
  return std::make_unique<KafkaConsumer>(cfg, std::move(executor), std::move(handlers), metrics);
}

}  // namespace pushgw::bus
