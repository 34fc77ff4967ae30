#pragma once
// The pipelined node connection behind redis::Connection and both clients.
// Everything here runs on the connection's strand (`strand_`); nothing is
// locked. Requests are PendingBatch objects: submit() encodes their commands
// into the output buffer and appends them to the in-flight FIFO; the reader
// hands each reply to the FIFO head; wait() sleeps on the batch's timer,
// which doubles as the request deadline and as the completion signal.
#include <atomic>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/redis/command.h"
#include "common/redis/config.h"
#include "common/redis/protocol.h"
#include "common/redis/reply.h"
#include "metrics.h"

namespace pushgw::redis::detail {

namespace asio = boost::asio;

/// Runs `op` on `strand` and resumes the caller on its own executor; runs it
/// inline when the caller already is on `strand`.
template <class T>
asio::awaitable<T> run_on(asio::any_io_executor strand, asio::awaitable<T> op) {
  auto ex = co_await asio::this_coro::executor;
  if (ex == strand) co_return co_await std::move(op);
  co_return co_await asio::co_spawn(strand, std::move(op), asio::use_awaitable);
}

class ConnectionImpl;

/// Completion of a batch submitted with ConnectionImpl::submit_async().
using BatchHandler = asio::any_completion_handler<void(std::vector<result<Reply>>)>;

struct PendingBatch {
  explicit PendingBatch(const asio::any_io_executor& ex) : timer(ex) {}

  std::vector<result<Reply>> results;
  std::size_t expected = 0;
  std::size_t received = 0;
  /// All results are set (replies or errors); the waiter may take them.
  bool done = false;
  /// The waiter gave up (timeout, cancellation): late replies are dropped.
  bool abandoned = false;
  asio::steady_timer timer;
  std::chrono::steady_clock::time_point started;
  /// The connection it was sent on (told when the batch times out).
  std::weak_ptr<ConnectionImpl> owner;
  /// submit_async() only: called once with the results, on `work`.
  std::optional<BatchHandler> handler;
  std::optional<asio::any_io_executor> work;

  /// Marks the batch done: wakes wait() (the timer) or posts the handler.
  void finish();
};
using BatchPtr = std::shared_ptr<PendingBatch>;

class ConnectionImpl : public std::enable_shared_from_this<ConnectionImpl> {
 public:
  ConnectionImpl(asio::any_io_executor strand, Endpoint endpoint, ConnectionOptions options,
                 std::shared_ptr<Metrics> metrics);

  /// Spawns the connect/read loop. Strand only.
  void start();
  /// Queues `n` commands as one request. Never blocks; a request that cannot
  /// be sent is returned already done with its error. Strand only.
  BatchPtr submit(const Command* const* cmds, std::size_t n);
  /// Waits for `b` (until done or its deadline). Strand only.
  static asio::awaitable<std::vector<result<Reply>>> wait(BatchPtr b);
  /// submit() + wait() without a coroutine: `handler` gets the results on
  /// `work` (an executor with outstanding work tracked). The request's
  /// deadline applies; cancellation of the caller does not. Strand only.
  void submit_async(const Command* const* cmds, std::size_t n, BatchHandler handler,
                    asio::any_io_executor work);
  /// submit_async() for `n` commands already encoded in RESP (CommandBuffer).
  void submit_encoded_async(std::string_view resp, std::size_t n, BatchHandler handler,
                            asio::any_io_executor work);
  /// Stops reconnecting and fails everything with errc::shutting_down. Strand only.
  void close();

  bool connected() const { return connected_.load(std::memory_order_relaxed); }
  std::uint64_t reconnects() const { return reconnects_.load(std::memory_order_relaxed); }
  bool closed() const { return closed_; }
  const Endpoint& endpoint() const { return endpoint_; }
  const asio::any_io_executor& strand() const { return strand_; }

 private:
  enum class State { connecting, connected, down, closed };
  using Socket = asio::ip::tcp::socket;

  static asio::awaitable<void> run(std::shared_ptr<ConnectionImpl> self);
  static asio::awaitable<boost::system::error_code> connect_once(
      std::shared_ptr<ConnectionImpl> self, std::shared_ptr<Socket> sock);
  static asio::awaitable<void> read_loop(std::shared_ptr<ConnectionImpl> self,
                                         std::shared_ptr<Socket> sock);
  static asio::awaitable<void> write_loop(std::shared_ptr<ConnectionImpl> self,
                                          std::shared_ptr<Socket> sock, std::uint64_t gen);

  /// The common part of submit(): `encode(out_)` appends the n commands'
  /// bytes and returns false if one cannot be encoded.
  template <class Encode>
  BatchPtr submit_with(std::size_t n, Encode&& encode);
  /// Hands a submitted batch's results to `handler` (now or when done).
  static void complete_async(BatchPtr b, BatchHandler handler, asio::any_io_executor work);

  void on_reply(Reply r);
  /// A request sent at `sent` timed out with `commands` replies missing: if
  /// nothing at all was read since, the connection is stalled (hung server,
  /// half-open TCP) and is reset.
  void on_timeout(std::chrono::steady_clock::time_point sent, std::size_t commands);
  void fail_all(errc code);
  void wake_writer();
  std::chrono::milliseconds next_backoff();

  asio::any_io_executor strand_;
  Endpoint endpoint_;
  ConnectionOptions options_;
  std::shared_ptr<Metrics> metrics_;

  State state_ = State::connecting;
  bool closed_ = false;
  bool ever_connected_ = false;
  std::uint64_t gen_ = 0;
  std::shared_ptr<Socket> socket_;
  std::chrono::steady_clock::time_point last_read_{};
  std::string out_;
  std::deque<BatchPtr> inflight_;
  std::size_t pending_cmds_ = 0;
  ReplyParser parser_;
  asio::steady_timer write_signal_;
  asio::steady_timer backoff_timer_;
  std::chrono::milliseconds backoff_;
  std::minstd_rand rng_;

  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> reconnects_{0};
};

}  // namespace pushgw::redis::detail
