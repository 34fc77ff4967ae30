#pragma once
// A worker: one thread running its own io_context, owning the links
// accepted onto it. Everything about those links (their sockets, queues,
// topic index, deadlines) is touched only on this thread, so links need no
// strand and no locks. Other threads reach a worker by posting to
// executor() (the node's delivery loop, drain, session replacement).
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "byte_stream.h"
#include "conn_node/config.h"
#include "conn_node/send_queue.h"
#include "conn_node/timing_wheel.h"
#include "conn_node/token_bucket.h"

namespace pushgw::conn_node {

class Link;
class NodeCore;

class Worker {
 public:
  using Executor = boost::asio::io_context::executor_type;

  /// Bytes of the per-thread read buffer every link of this worker reads into.
  static constexpr size_t kScratchBytes = 64 * 1024;
  static constexpr uint32_t kTickMs = 50;

  Worker(NodeCore& core, unsigned index, double marketing_rate);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Starts the thread (and the deadline tick).
  void start();
  /// Aborts every link, stops the io_context and joins the thread. Any thread
  /// but this worker's own. Idempotent.
  void stop();

  boost::asio::io_context& context() { return ctx_; }
  Executor executor() { return ctx_.get_executor(); }
  NodeCore& core() { return core_; }
  unsigned index() const { return index_; }
  /// Links on this worker (any thread; approximate).
  size_t link_count() const { return count_.load(std::memory_order_relaxed); }

  // The rest: this worker's thread only.
  /// Creates the link for an accepted socket and starts it.
  void accept(ListenerKind kind, Socket socket);
  /// Drops the table's reference (the link is closed).
  void remove_link(uint64_t id);
  Link* find(uint64_t id);
  template <class F>
  void for_each_link(F&& f) {
    for (auto& [id, link] : links_) f(*link);
  }
  std::shared_ptr<Link> shared(uint64_t id);

  /// Topic index (subscriptions of this worker's links).
  void subscribe(Link& link, const std::string& app_id, const std::string& topic);
  void unsubscribe(Link& link, const std::string& app_id, const std::string& topic);
  /// Queues `frame` on every open link of `app_id` subscribed to `topic`
  /// (or every open link of the app when `topic` is empty). Returns how many.
  size_t fan_out(const std::string& app_id, const std::string& topic, const SharedFrame& frame,
                 Lane lane);

  TimingWheel& wheel() { return wheel_; }
  char* scratch() { return scratch_.get(); }

  /// One marketing frame may be written now (node-wide cap, split per worker).
  bool take_marketing_token();
  /// `link` waits for marketing tokens; it is kicked when some are available.
  void wait_marketing(Link& link);

 private:
  boost::asio::awaitable<void> tick_loop();
  void on_tick();
  boost::asio::awaitable<void> marketing_loop();

  NodeCore& core_;
  const unsigned index_;
  boost::asio::io_context ctx_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  std::atomic<size_t> count_{0};
  std::unordered_map<uint64_t, std::shared_ptr<Link>> links_;
  std::unordered_map<std::string, std::unordered_set<Link*>> topic_index_;
  TimingWheel wheel_;
  boost::asio::steady_timer tick_timer_;
  std::unique_ptr<char[]> scratch_;
  TokenBucket marketing_;
  boost::asio::steady_timer marketing_timer_;
  bool marketing_loop_running_ = false;
  uint64_t next_id_ = 0;
  std::vector<std::weak_ptr<Link>> marketing_waiters_;
};

}  // namespace pushgw::conn_node
