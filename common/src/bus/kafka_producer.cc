// Kafka Producer: an idempotent librdkafka producer whose produce() completes
// on the delivery report.
//
// Each produce call owns a Completion with one Slot per record; the Slot's
// address is the librdkafka per-message opaque. The delivery report callback
// runs on the producer's poll thread, records the result in the Slot and, for
// the last report of a call, posts the awaiting coroutine's handler to the
// coroutine's own executor. Completions also sit in a registry so close() can
// fail whatever never got a report: nothing dangles.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include "common/bus/kafka.h"
#include "metrics.h"
#include "rdkafka_util.h"

namespace pushgw::bus {
namespace {

namespace asio = boost::asio;
using Results = std::vector<result<Delivered>>;
using BatchHandler = asio::any_completion_handler<void(Results)>;

constexpr std::chrono::milliseconds kPollInterval{100};
constexpr std::chrono::milliseconds kQueueFullRetry{5};
constexpr std::chrono::milliseconds kPurgeDrainLimit{5'000};
constexpr std::chrono::milliseconds kDestructorFlush{2'000};

struct Completion;

struct Slot {
  Completion* completion;
  std::size_t index;
};

// One produce / produce_batch call. `outstanding` counts the records without
// a result plus one reference held by the initiating coroutine until it has
// attached its handler (or given up).
struct Completion {
  explicit Completion(std::size_t n) : outstanding(n + 1), results(n), done(n, 0) {
    slots.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      slots.push_back({this, i});
    }
  }
  std::mutex mu;
  std::size_t outstanding;
  Results results;
  std::vector<char> done;
  std::vector<Slot> slots;  // never resized after construction: addresses are opaques
  std::optional<BatchHandler> handler;
  std::optional<asio::any_io_executor> work;
};

class ProducerCore {
 public:
  ProducerCore(const ProducerConfig& cfg, prometheus::Registry* registry)
      : cfg_(cfg), metrics_(detail::ProducerMetrics::make(registry, cfg.kafka.client_id)) {
    auto conf = detail::make_conf(producer_properties(cfg));
    rd_kafka_conf_set_opaque(conf.get(), this);
    rd_kafka_conf_set_dr_msg_cb(conf.get(), &ProducerCore::on_delivery);
    rd_kafka_conf_set_error_cb(conf.get(), &ProducerCore::on_error);
    rk_ = detail::make_handle(RD_KAFKA_PRODUCER, std::move(conf));
    poller_ = std::thread([this] { poll_loop(); });
  }

  ~ProducerCore() { close(kDestructorFlush); }
  ProducerCore(const ProducerCore&) = delete;
  ProducerCore& operator=(const ProducerCore&) = delete;

  const ProducerConfig& config() const { return cfg_; }

  std::shared_ptr<Completion> start(std::size_t n) {
    auto c = std::make_shared<Completion>(n);
    std::lock_guard lk(live_mu_);
    live_.emplace(c.get(), c);
    return c;
  }

  // Topic handles of one produce call: a few distinct topics per batch, so a
  // linear scan beats a map; misses go to the producer-wide table.
  using TopicCache = std::vector<std::pair<std::string_view, rd_kafka_topic_t*>>;

  rd_kafka_resp_err_t enqueue(Completion& c, std::size_t i, const OutRecord& r,
                              TopicCache& topics) {
    if (r.topic.empty() || (r.partition && *r.partition < 0)) {
      return RD_KAFKA_RESP_ERR__INVALID_ARG;
    }
    std::shared_lock lk(rk_mu_);
    if (closed_) {
      return RD_KAFKA_RESP_ERR__DESTROY;
    }
    rd_kafka_topic_t* rkt = nullptr;
    for (const auto& [name, h] : topics) {
      if (name == r.topic) {
        rkt = h;
        break;
      }
    }
    if (rkt == nullptr) {
      rkt = topic_handle(r.topic);
      if (rkt == nullptr) {
        return rd_kafka_last_error();
      }
      topics.emplace_back(r.topic, rkt);
    }
    detail::HeadersPtr headers;
    if (!r.headers.empty()) {
      headers.reset(rd_kafka_headers_new(r.headers.size()));
      for (const auto& h : r.headers) {
        rd_kafka_header_add(headers.get(), h.key.data(), static_cast<ssize_t>(h.key.size()),
                            h.value.data(), static_cast<ssize_t>(h.value.size()));
      }
    }
    // RD_KAFKA_MSG_F_COPY: librdkafka copies key and value before returning.
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk_.get(), RD_KAFKA_V_RKT(rkt),
        RD_KAFKA_V_PARTITION(r.partition.value_or(RD_KAFKA_PARTITION_UA)),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(r.key.empty() ? nullptr : const_cast<char*>(r.key.data()), r.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(r.value.data()), r.value.size()),
        RD_KAFKA_V_HEADERS(headers.get()), RD_KAFKA_V_OPAQUE(&c.slots[i]), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      (void)headers.release();  // owned by the message now
      detail::set(metrics_.in_flight, static_cast<double>(++in_flight_));
    }
    return err;
  }

  // A record that never reached librdkafka (refused locally).
  void fail_local(Completion& c, std::size_t i, rd_kafka_resp_err_t err) {
    detail::inc(metrics_.delivery_failures);
    finish(c, i, detail::to_error_code(err));
  }

  void finish(Completion& c, std::size_t i, result<Delivered> r) {
    bool last = false;
    {
      std::lock_guard lk(c.mu);
      if (c.done[i] != 0) {
        return;
      }
      c.done[i] = 1;
      c.results[i] = std::move(r);
      last = --c.outstanding == 0;
    }
    if (last) {
      deliver(c);
    }
  }

  // The initiating coroutine hands over its handler and its reference.
  void attach(Completion& c, BatchHandler handler, asio::any_io_executor work) {
    bool last = false;
    {
      std::lock_guard lk(c.mu);
      c.work.emplace(std::move(work));
      c.handler.emplace(std::move(handler));
      last = --c.outstanding == 0;
    }
    if (last) {
      deliver(c);
    }
  }

  // The initiating coroutine went away without attaching a handler.
  void abandon(Completion& c) {
    bool last = false;
    {
      std::lock_guard lk(c.mu);
      last = --c.outstanding == 0;
    }
    if (last) {
      deliver(c);
    }
  }

  result<void> flush(std::chrono::milliseconds timeout) {
    std::shared_lock lk(rk_mu_);
    if (closed_) {
      return errc::shutting_down;
    }
    rd_kafka_resp_err_t err = rd_kafka_flush(rk_.get(), static_cast<int>(timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return detail::to_error_code(err);
    }
    return {};
  }

  void close(std::chrono::milliseconds flush_timeout) {
    std::lock_guard close_lk(close_mu_);
    if (close_done_) {
      return;
    }
    close_done_ = true;
    {
      std::unique_lock lk(rk_mu_);
      closed_ = true;
    }
    if (rd_kafka_flush(rk_.get(), static_cast<int>(flush_timeout.count())) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      spdlog::warn("kafka producer {}: {} record(s) not delivered within {} ms; purging them",
                   cfg_.kafka.client_id, rd_kafka_outq_len(rk_.get()), flush_timeout.count());
    }
    // Purged records get delivery reports with _PURGE_QUEUE / _PURGE_INFLIGHT.
    rd_kafka_purge(rk_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    const auto deadline = std::chrono::steady_clock::now() + kPurgeDrainLimit;
    while (rd_kafka_outq_len(rk_.get()) > 0 && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_poll(rk_.get(), 10);
    }
    stop_.store(true, std::memory_order_release);
    poller_.join();
    {
      std::lock_guard lk(topics_mu_);
      for (auto& [name, rkt] : topics_) {
        rd_kafka_topic_destroy(rkt);
      }
      topics_.clear();
    }
    rk_.reset();

    std::vector<std::shared_ptr<Completion>> left;
    {
      std::lock_guard lk(live_mu_);
      for (auto& [ptr, c] : live_) {
        left.push_back(c);
      }
    }
    for (auto& c : left) {
      for (std::size_t i = 0; i < c->slots.size(); ++i) {
        finish(*c, i, errc::shutting_down);
      }
    }
    in_flight_.store(0);
    detail::set(metrics_.in_flight, 0);
  }

  std::optional<std::string> fatal_error() const {
    std::lock_guard lk(fatal_mu_);
    return fatal_;
  }

  std::size_t in_flight() const { return in_flight_.load(); }

 private:
  void deliver(Completion& c) {
    std::optional<BatchHandler> handler;
    std::optional<asio::any_io_executor> work;
    Results results;
    {
      std::lock_guard lk(c.mu);
      handler = std::move(c.handler);
      work = std::move(c.work);
      results = std::move(c.results);
    }
    std::shared_ptr<Completion> keep;
    {
      std::lock_guard lk(live_mu_);
      auto it = live_.find(&c);
      if (it != live_.end()) {
        keep = std::move(it->second);
        live_.erase(it);
      }
    }
    if (handler) {
      asio::post(*work, [h = std::move(*handler), r = std::move(results)]() mutable {
        std::move(h)(std::move(r));
      });
    }
  }

  void poll_loop() {
    while (!stop_.load(std::memory_order_acquire)) {
      rd_kafka_poll(rk_.get(), static_cast<int>(kPollInterval.count()));
    }
  }

  // The producer's handle for `name`, created on first use (by name,
  // librdkafka would look the topic up under its write lock per record).
  // Handles live until close(). Caller holds rk_mu_ shared.
  rd_kafka_topic_t* topic_handle(const std::string& name) {
    std::lock_guard lk(topics_mu_);
    auto it = topics_.find(name);
    if (it != topics_.end()) {
      return it->second;
    }
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_.get(), name.c_str(), nullptr);
    if (rkt != nullptr) {
      topics_.emplace(name, rkt);
    }
    return rkt;
  }

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<ProducerCore*>(opaque);
    auto* slot = static_cast<Slot*>(m->_private);
    if (slot == nullptr) {
      return;
    }
    detail::set(self->metrics_.in_flight, static_cast<double>(--self->in_flight_));
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      detail::inc(self->metrics_.produced);
      self->finish(*slot->completion, slot->index, Delivered{m->partition, m->offset});
      return;
    }
    detail::inc(self->metrics_.delivery_failures);
    spdlog::debug("kafka producer {}: delivery to {} failed: {}", self->cfg_.kafka.client_id,
                  m->rkt ? rd_kafka_topic_name(m->rkt) : "?", rd_kafka_err2str(m->err));
    self->finish(*slot->completion, slot->index, detail::to_error_code(m->err));
  }

  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* self = static_cast<ProducerCore*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      std::array<char, 512> buf{};
      rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf.data(), buf.size());
      std::string text = std::string(rd_kafka_err2name(orig)) + ": " + buf.data();
      spdlog::critical("kafka producer {}: fatal error, every produce now fails: {}",
                       self->cfg_.kafka.client_id, text);
      std::lock_guard lk(self->fatal_mu_);
      if (!self->fatal_) {
        self->fatal_ = std::move(text);
      }
      return;
    }
    spdlog::warn("kafka producer {}: {}: {}", self->cfg_.kafka.client_id,
                 rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
  }

  ProducerConfig cfg_;
  detail::ProducerMetrics metrics_;
  detail::KafkaPtr rk_;
  std::shared_mutex rk_mu_;  // shared: calls that need rk_; exclusive: closing
  bool closed_ = false;      // guarded by rk_mu_
  std::mutex close_mu_;
  bool close_done_ = false;  // guarded by close_mu_
  std::atomic<bool> stop_{false};
  std::thread poller_;
  std::mutex live_mu_;
  std::unordered_map<Completion*, std::shared_ptr<Completion>> live_;
  std::mutex topics_mu_;
  std::unordered_map<std::string, rd_kafka_topic_t*> topics_;  // guarded by topics_mu_
  std::atomic<std::size_t> in_flight_{0};
  mutable std::mutex fatal_mu_;
  std::optional<std::string> fatal_;
};

// Gives the initiator's reference back if the coroutine ends (or is destroyed)
// before it attached its handler.
class InitiatorRef {
 public:
  InitiatorRef(ProducerCore& core, std::shared_ptr<Completion> c) : core_(core), c_(std::move(c)) {}
  ~InitiatorRef() {
    if (c_) {
      core_.abandon(*c_);
    }
  }
  InitiatorRef(const InitiatorRef&) = delete;
  InitiatorRef& operator=(const InitiatorRef&) = delete;

  void attach(BatchHandler handler, asio::any_io_executor work) {
    auto c = std::move(c_);
    core_.attach(*c, std::move(handler), std::move(work));
  }

 private:
  ProducerCore& core_;
  std::shared_ptr<Completion> c_;
};

asio::awaitable<Results> produce_records(std::shared_ptr<ProducerCore> core,
                                         std::vector<OutRecord> records) {
  if (records.empty()) {
    co_return Results{};
  }
  auto completion = core->start(records.size());
  InitiatorRef ref(*core, completion);
  ProducerCore::TopicCache topics;
  for (std::size_t i = 0; i < records.size(); ++i) {
    rd_kafka_resp_err_t err = core->enqueue(*completion, i, records[i], topics);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
        core->config().queue_full == QueueFullPolicy::kWait) {
      const auto deadline = std::chrono::steady_clock::now() + core->config().queue_full_wait;
      asio::steady_timer timer(co_await asio::this_coro::executor);
      while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
          break;
        }
        timer.expires_after(
            std::min<std::chrono::steady_clock::duration>(kQueueFullRetry, deadline - now));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        err = core->enqueue(*completion, i, records[i], topics);
      }
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      core->fail_local(*completion, i, err);
    }
  }
  completion.reset();
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Results)>(
      [&ref](auto handler) {
        // The executor is taken before type erasure: any_completion_executor
        // cannot be posted to in Boost 1.81. Work stays tracked until then.
        asio::any_io_executor ex = asio::get_associated_executor(handler);
        auto work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
        ref.attach(BatchHandler(std::move(handler)), std::move(work));
      },
      asio::use_awaitable);
}

asio::awaitable<result<Delivered>> produce_one(std::shared_ptr<ProducerCore> core,
                                               OutRecord record) {
  std::vector<OutRecord> records;
  records.push_back(std::move(record));
  Results results = co_await produce_records(std::move(core), std::move(records));
  co_return std::move(results.front());
}

class KafkaProducer final : public Producer {
 public:
  KafkaProducer(const ProducerConfig& cfg, prometheus::Registry* registry)
      : core_(std::make_shared<ProducerCore>(cfg, registry)) {}
  ~KafkaProducer() override { core_->close(kDestructorFlush); }

  asio::awaitable<result<Delivered>> produce(std::string topic, std::string key, std::string value,
                                             std::vector<Header> headers) override {
    return produce_one(core_, OutRecord{std::move(topic), std::move(key), std::move(value),
                                        std::move(headers), std::nullopt});
  }

  asio::awaitable<result<Delivered>> produce(OutRecord record) override {
    return produce_one(core_, std::move(record));
  }

  asio::awaitable<Results> produce_batch(std::vector<OutRecord> records) override {
    return produce_records(core_, std::move(records));
  }

  result<void> flush(std::chrono::milliseconds timeout) override { return core_->flush(timeout); }
  void close(std::chrono::milliseconds flush_timeout) override { core_->close(flush_timeout); }
  std::optional<std::string> fatal_error() const override { return core_->fatal_error(); }
  std::size_t in_flight() const override { return core_->in_flight(); }

 private:
  std::shared_ptr<ProducerCore> core_;
};

}  // namespace

std::unique_ptr<Producer> make_kafka_producer(const ProducerConfig& cfg,
                                              prometheus::Registry* metrics) {
  return std::make_unique<KafkaProducer>(cfg, metrics);
}

}  // namespace pushgw::bus
