#include "worker.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

#include "common/log.h"
#include "common/spawn.h"
#include "link.h"
#include "node_core.h"
#include "stream_link.h"
#include "ws_link.h"

namespace pushgw::conn_node {

namespace asio = boost::asio;

namespace {

uint64_t steady_now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

Worker::Worker(NodeCore& core, unsigned index, double marketing_rate)
    : core_(core),
      index_(index),
      ctx_(1),
      wheel_(kTickMs, 4096, steady_now_ms()),
      tick_timer_(ctx_),
      scratch_(new char[kScratchBytes]),
      marketing_(marketing_rate, std::max(1.0, marketing_rate / 10), steady_now_ms()),
      marketing_timer_(ctx_) {}

Worker::~Worker() { stop(); }

void Worker::start() {
  common::spawn_logged(ctx_.get_executor(), tick_loop(), "conn-node worker tick");
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(ctx_);
    for (;;) {
      try {
        ctx_.run();
        return;
      } catch (const std::exception& e) {
        common::logger("conn")->error("worker {}: exception escaped a handler: {}", index_,
                                      e.what());
      }
    }
  });
}

void Worker::stop() {
  if (stopped_.exchange(true)) return;
  if (thread_.joinable()) {
    // Close every link on the worker's own thread, then let it finish.
    asio::post(ctx_, [this] {
      std::vector<std::shared_ptr<Link>> all;
      all.reserve(links_.size());
      for (auto& [id, l] : links_) all.push_back(l);
      for (auto& l : all) l->abort();
      boost::system::error_code ec;
      tick_timer_.cancel();
      marketing_timer_.cancel();
    });
    // Give aborted links a moment to unwind, then stop.
    asio::post(ctx_, [this] { asio::post(ctx_, [this] { ctx_.stop(); }); });
    thread_.join();
  }
  links_.clear();
  topic_index_.clear();
}

void Worker::accept(ListenerKind kind, Socket socket) {
  const uint64_t id = ++next_id_;
  std::shared_ptr<Link> link;
  if (kind == ListenerKind::kTcp || kind == ListenerKind::kTls) {
    link = std::make_shared<StreamLink>(*this, kind, id, std::move(socket));
  } else {
    link = make_ws_link(*this, kind, id, std::move(socket));
  }
  links_.emplace(id, link);
  count_.fetch_add(1, std::memory_order_relaxed);
  link->start();
}

void Worker::remove_link(uint64_t id) {
  auto it = links_.find(id);
  if (it == links_.end()) return;
  std::shared_ptr<Link> keep = std::move(it->second);
  links_.erase(it);
  count_.fetch_sub(1, std::memory_order_relaxed);
  core_.socket_closed();
}

Link* Worker::find(uint64_t id) {
  auto it = links_.find(id);
  return it == links_.end() ? nullptr : it->second.get();
}

std::shared_ptr<Link> Worker::shared(uint64_t id) {
  auto it = links_.find(id);
  return it == links_.end() ? nullptr : it->second;
}

namespace {
std::string topic_key(const std::string& app_id, const std::string& topic) {
  std::string k;
  k.reserve(app_id.size() + 1 + topic.size());
  k.append(app_id).push_back('\n');
  k.append(topic);
  return k;
}
}  // namespace

void Worker::subscribe(Link& link, const std::string& app_id, const std::string& topic) {
  topic_index_[topic_key(app_id, topic)].insert(&link);
}

void Worker::unsubscribe(Link& link, const std::string& app_id, const std::string& topic) {
  auto it = topic_index_.find(topic_key(app_id, topic));
  if (it == topic_index_.end()) return;
  it->second.erase(&link);
  if (it->second.empty()) topic_index_.erase(it);
}

size_t Worker::fan_out(const std::string& app_id, const std::string& topic,
                       const SharedFrame& frame, Lane lane) {
  size_t n = 0;
  if (topic.empty()) {
    std::vector<Link*> targets;
    for (auto& [id, link] : links_) {
      if (link->is_open() && link->app_id() == app_id) targets.push_back(link.get());
    }
    for (Link* l : targets) {
      l->push_shared(frame, lane);
      ++n;
    }
    return n;
  }
  auto it = topic_index_.find(topic_key(app_id, topic));
  if (it == topic_index_.end()) return 0;
  // push_shared may close a link (overflow), which edits the index: copy first.
  std::vector<Link*> targets(it->second.begin(), it->second.end());
  for (Link* l : targets) {
    if (!l->is_open()) continue;
    l->push_shared(frame, lane);
    ++n;
  }
  return n;
}

asio::awaitable<void> Worker::tick_loop() {
  for (;;) {
    tick_timer_.expires_after(std::chrono::milliseconds(kTickMs));
    auto [ec] = co_await tick_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || stopped_.load(std::memory_order_relaxed)) co_return;
    on_tick();
  }
}

void Worker::on_tick() {
  const uint64_t now = steady_now_ms();
  wheel_.advance(now, [this, now](WheelHook& h) {
    Link& link = static_cast<Link&>(h);
    auto keep = link.shared_from_this();
    link.on_deadline(now);
  });
}

bool Worker::take_marketing_token() { return marketing_.try_take(steady_now_ms()); }

void Worker::wait_marketing(Link& link) {
  marketing_waiters_.push_back(link.weak_from_this());
  if (marketing_loop_running_) return;
  marketing_loop_running_ = true;
  common::spawn_logged(ctx_.get_executor(), marketing_loop(), "conn-node marketing cap");
}

asio::awaitable<void> Worker::marketing_loop() {
  while (!marketing_waiters_.empty() && !stopped_.load(std::memory_order_relaxed)) {
    const uint64_t wait = std::max<uint64_t>(1, marketing_.wait_ms(steady_now_ms()));
    marketing_timer_.expires_after(std::chrono::milliseconds(wait));
    auto [ec] = co_await marketing_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    std::vector<std::weak_ptr<Link>> waiters;
    waiters.swap(marketing_waiters_);
    for (auto& w : waiters) {
      if (auto l = w.lock()) l->on_marketing_tokens();
    }
  }
  marketing_loop_running_ = false;
}

}  // namespace pushgw::conn_node
