#include "common/redis/connection.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <exception>

#include "connection_impl.h"

namespace pushgw::redis {
namespace detail {

using namespace std::chrono_literals;
using boost::system::error_code;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kFeedSlice = 2048;

namespace {

void log_escaped(const char* what, const Endpoint& ep, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("redis {}: {} ended with an exception: {}", ep.to_string(), what, x.what());
  } catch (...) {
    spdlog::error("redis {}: {} ended with an unknown exception", ep.to_string(), what);
  }
}

}  // namespace

ConnectionImpl::ConnectionImpl(asio::any_io_executor strand, Endpoint endpoint,
                               ConnectionOptions options, std::shared_ptr<Metrics> metrics)
    : strand_(std::move(strand)),
      endpoint_(std::move(endpoint)),
      options_(options),
      metrics_(std::move(metrics)),
      write_signal_(strand_),
      backoff_timer_(strand_),
      backoff_(options_.reconnect_min),
      rng_(static_cast<std::uint32_t>(
          std::hash<std::string>{}(endpoint_.to_string()) ^
          static_cast<std::size_t>(std::chrono::steady_clock::now().time_since_epoch().count()))) {
  if (!metrics_) metrics_ = std::make_shared<Metrics>(nullptr, "redis");
  if (options_.reconnect_min <= 0ms) options_.reconnect_min = 1ms;
  if (options_.reconnect_max < options_.reconnect_min)
    options_.reconnect_max = options_.reconnect_min;
  backoff_ = options_.reconnect_min;
}

void ConnectionImpl::start() {
  auto ep = endpoint_;
  asio::co_spawn(strand_, run(shared_from_this()),
                 [ep](std::exception_ptr e) { log_escaped("connection loop", ep, e); });
}

template <class Encode>
BatchPtr ConnectionImpl::submit_with(std::size_t n, Encode&& encode) {
  auto b = std::make_shared<PendingBatch>(strand_);
  b->expected = n;
  b->results.resize(n);
  b->started = std::chrono::steady_clock::now();
  metrics_->commands(n);
  auto fail = [&](errc code) {
    for (auto& r : b->results) r = code;
    b->done = true;
    if (code == errc::unavailable) metrics_->transport_error(n);
    return b;
  };
  if (n == 0) {
    b->done = true;
    return b;
  }
  if (closed_) return fail(errc::shutting_down);
  if (state_ == State::down) return fail(errc::unavailable);
  if (pending_cmds_ + n > options_.max_pending) return fail(errc::queue_full);
  const std::size_t mark = out_.size();
  if (!encode(out_)) {
    out_.resize(mark);
    return fail(errc::invalid_argument);
  }
  inflight_.push_back(b);
  pending_cmds_ += n;
  metrics_->request();
  b->owner = weak_from_this();
  b->timer.expires_after(options_.request_timeout);
  if (state_ == State::connected) wake_writer();
  return b;
}

BatchPtr ConnectionImpl::submit(const Command* const* cmds, std::size_t n) {
  // append_command() refuses an empty command: the whole request fails.
  return submit_with(n, [cmds, n](std::string& out) {
    for (std::size_t i = 0; i < n; ++i) {
      if (!append_command(out, *cmds[i])) return false;
    }
    return true;
  });
}

void PendingBatch::finish() {
  done = true;
  timer.cancel();
  if (handler) {
    asio::post(*work, [h = std::move(*handler), r = std::move(results)]() mutable {
      std::move(h)(std::move(r));
    });
    handler.reset();
    work.reset();
  }
}

void ConnectionImpl::submit_async(const Command* const* cmds, std::size_t n, BatchHandler handler,
                                  asio::any_io_executor work) {
  complete_async(submit(cmds, n), std::move(handler), std::move(work));
}

void ConnectionImpl::submit_encoded_async(std::string_view resp, std::size_t n,
                                          BatchHandler handler, asio::any_io_executor work) {
  auto b = submit_with(n, [resp](std::string& out) {
    out.append(resp);
    return true;
  });
  complete_async(std::move(b), std::move(handler), std::move(work));
}

void ConnectionImpl::complete_async(BatchPtr b, BatchHandler handler, asio::any_io_executor work) {
  b->handler.emplace(std::move(handler));
  b->work.emplace(std::move(work));
  if (b->done) {
    b->finish();
    return;
  }
  b->timer.async_wait([b](error_code ec) {
    if (b->done) return;
    // Deadline passed before the last reply (ec is set only when the
    // connection cancelled the timer without finishing the batch: shutdown).
    b->abandoned = true;
    for (std::size_t i = b->received; i < b->expected; ++i) {
      b->results[i] =
          !ec ? make_error_code(errc::timeout) : error_code(asio::error::operation_aborted);
    }
    if (!ec) {
      if (auto conn = b->owner.lock()) conn->on_timeout(b->started, b->expected - b->received);
    }
    b->finish();
  });
}

asio::awaitable<std::vector<result<Reply>>> ConnectionImpl::wait(BatchPtr b) {
  if (!b->done) {
    auto [ec] = co_await b->timer.async_wait(kTuple);
    if (!b->done) {
      // Deadline passed (or the caller was cancelled) before the last reply.
      // The batch keeps its place in the FIFO so later replies still match up.
      b->abandoned = true;
      const bool expired = !ec;
      for (std::size_t i = b->received; i < b->expected; ++i) {
        b->results[i] =
            expired ? make_error_code(errc::timeout) : error_code(asio::error::operation_aborted);
      }
      b->done = true;
      if (expired) {
        if (auto conn = b->owner.lock()) conn->on_timeout(b->started, b->expected - b->received);
      }
    }
  }
  co_return std::move(b->results);
}

void ConnectionImpl::close() {
  if (closed_) return;
  closed_ = true;
  backoff_timer_.cancel();
  if (socket_) {
    error_code ignored;
    socket_->close(ignored);
  }
  fail_all(errc::shutting_down);
  wake_writer();
}

void ConnectionImpl::on_reply(Reply r) {
  if (inflight_.empty()) return;  // caller makes this a protocol error
  if (r.is_error()) metrics_->error_reply();
  auto& b = inflight_.front();
  if (!b->abandoned) b->results[b->received] = std::move(r);
  ++b->received;
  --pending_cmds_;
  if (b->received == b->expected) {
    if (!b->abandoned) {
      metrics_->latency(std::chrono::steady_clock::now() - b->started);
      b->finish();
    }
    inflight_.pop_front();
  }
}

void ConnectionImpl::on_timeout(std::chrono::steady_clock::time_point sent, std::size_t commands) {
  metrics_->timeout(commands);
  if (state_ != State::connected || !socket_ || last_read_ > sent) return;
  spdlog::warn("redis {}: no reply for {} ms; dropping the connection", endpoint_.to_string(),
               options_.request_timeout.count());
  error_code ignored;
  socket_->close(ignored);  // the reader fails, pending requests fail, we reconnect
}

void ConnectionImpl::fail_all(errc code) {
  std::size_t failed = 0;
  for (auto& b : inflight_) {
    if (b->abandoned) continue;
    for (std::size_t i = b->received; i < b->expected; ++i) b->results[i] = code;
    failed += b->expected - b->received;
    b->finish();
  }
  if (code == errc::unavailable) metrics_->transport_error(failed);
  inflight_.clear();
  pending_cmds_ = 0;
  out_.clear();
}

void ConnectionImpl::wake_writer() { write_signal_.cancel(); }

std::chrono::milliseconds ConnectionImpl::next_backoff() {
  auto cur = backoff_;
  backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
  // Jitter in [50%, 100%] so nodes restarted together are not hit in lockstep.
  std::uniform_int_distribution<std::int64_t> dist(cur.count() / 2, cur.count());
  return std::chrono::milliseconds(std::max<std::int64_t>(1, dist(rng_)));
}

asio::awaitable<error_code> ConnectionImpl::connect_once(std::shared_ptr<ConnectionImpl> self,
                                                         std::shared_ptr<Socket> sock) {
  using asio::ip::tcp;
  auto timed_out = std::make_shared<bool>(false);
  auto resolver = std::make_shared<tcp::resolver>(self->strand_);
  asio::steady_timer timer(self->strand_, self->options_.connect_timeout);
  timer.async_wait([timed_out, sock, resolver](error_code ec) {
    if (ec) return;
    *timed_out = true;
    resolver->cancel();
    error_code ignored;
    sock->close(ignored);
  });
  error_code ec;
  auto addr = asio::ip::make_address(self->endpoint_.host, ec);
  if (!ec) {
    std::tie(ec) = co_await sock->async_connect(tcp::endpoint(addr, self->endpoint_.port), kTuple);
  } else {
    auto [rec, results] = co_await resolver->async_resolve(
        self->endpoint_.host, std::to_string(self->endpoint_.port), kTuple);
    ec = rec;
    if (!ec) std::tie(ec, std::ignore) = co_await asio::async_connect(*sock, results, kTuple);
  }
  timer.cancel();
  if (*timed_out) co_return make_error_code(errc::timeout);
  co_return ec;
}

asio::awaitable<void> ConnectionImpl::run(std::shared_ptr<ConnectionImpl> self) {
  bool lost_logged = false;
  while (!self->closed_) {
    self->state_ = State::connecting;
    auto sock = std::make_shared<Socket>(self->strand_);
    self->socket_ = sock;
    auto ec = co_await connect_once(self, sock);
    if (self->closed_) break;
    if (ec) {
      self->socket_.reset();
      self->state_ = State::down;
      self->fail_all(errc::unavailable);
      if (!lost_logged) {
        spdlog::warn("redis {}: connect failed: {}", self->endpoint_.to_string(), ec.message());
        lost_logged = true;
      } else {
        spdlog::debug("redis {}: connect failed: {}", self->endpoint_.to_string(), ec.message());
      }
      self->backoff_timer_.expires_after(self->next_backoff());
      co_await self->backoff_timer_.async_wait(kTuple);
      continue;
    }
    error_code ignored;
    sock->set_option(asio::ip::tcp::no_delay(true), ignored);
    self->parser_.reset();
    self->state_ = State::connected;
    self->connected_.store(true, std::memory_order_relaxed);
    self->backoff_ = self->options_.reconnect_min;
    if (self->ever_connected_) {
      self->reconnects_.fetch_add(1, std::memory_order_relaxed);
      self->metrics_->reconnect();
      spdlog::info("redis {}: reconnected", self->endpoint_.to_string());
    }
    self->ever_connected_ = true;
    lost_logged = false;
    const auto gen = ++self->gen_;
    auto ep = self->endpoint_;
    asio::co_spawn(self->strand_, write_loop(self, sock, gen),
                   [ep](std::exception_ptr e) { log_escaped("writer", ep, e); });

    co_await read_loop(self, sock);

    self->connected_.store(false, std::memory_order_relaxed);
    self->socket_.reset();
    sock->close(ignored);
    if (self->closed_) break;
    self->state_ = State::down;
    self->fail_all(errc::unavailable);
    self->wake_writer();
    spdlog::warn("redis {}: connection lost; reconnecting", self->endpoint_.to_string());
    lost_logged = true;
    // First attempt at once (a restarted server is back quickly), then backoff.
  }
  self->state_ = State::closed;
  self->connected_.store(false, std::memory_order_relaxed);
}

asio::awaitable<void> ConnectionImpl::read_loop(std::shared_ptr<ConnectionImpl> self,
                                                std::shared_ptr<Socket> sock) {
  std::vector<char> buf(kReadChunk);
  for (;;) {
    auto [ec, n] = co_await sock->async_read_some(asio::buffer(buf), kTuple);
    self->last_read_ = std::chrono::steady_clock::now();
    if (ec) {
      if (!self->closed_ && ec != asio::error::operation_aborted) {
        spdlog::debug("redis {}: read: {}", self->endpoint_.to_string(), ec.message());
      }
      co_return;
    }
    // hiredis compacts its buffer (memmove of everything unread) each time
    // 1 KiB has been consumed; feeding small slices keeps that cheap.
    for (std::size_t off = 0; off < n; off += kFeedSlice) {
      if (!self->parser_.feed(buf.data() + off, std::min(kFeedSlice, n - off))) co_return;
      for (;;) {
        auto next = self->parser_.next();
        if (!next) {
          spdlog::error("redis {}: protocol error: {}", self->endpoint_.to_string(),
                        self->parser_.last_error());
          co_return;
        }
        if (!*next) break;
        if (self->inflight_.empty()) {
          spdlog::error("redis {}: reply without a request: {}", self->endpoint_.to_string(),
                        (*next)->to_string());
          co_return;
        }
        self->on_reply(std::move(**next));
      }
    }
  }
}

asio::awaitable<void> ConnectionImpl::write_loop(std::shared_ptr<ConnectionImpl> self,
                                                 std::shared_ptr<Socket> sock, std::uint64_t gen) {
  std::string wbuf;
  while (!self->closed_ && self->gen_ == gen && self->state_ == State::connected) {
    if (self->out_.empty()) {
      self->write_signal_.expires_at(asio::steady_timer::time_point::max());
      co_await self->write_signal_.async_wait(kTuple);
      continue;
    }
    wbuf.clear();
    std::swap(wbuf, self->out_);
    auto [ec, n] = co_await asio::async_write(*sock, asio::buffer(wbuf), kTuple);
    if (ec) {
      // The reader sees the closed socket and runs the failure path.
      error_code ignored;
      sock->close(ignored);
      co_return;
    }
  }
}

}  // namespace detail

Connection::Connection(boost::asio::any_io_executor ex, Endpoint endpoint,
                       ConnectionOptions options, prometheus::Registry* metrics, std::string name) {
  auto strand = boost::asio::make_strand(ex);
  impl_ = std::make_shared<detail::ConnectionImpl>(
      strand, std::move(endpoint), options, std::make_shared<detail::Metrics>(metrics, name));
  boost::asio::dispatch(impl_->strand(), [impl = impl_] { impl->start(); });
}

Connection::~Connection() { close(); }

void Connection::close() {
  boost::asio::dispatch(impl_->strand(), [impl = impl_] { impl->close(); });
}

namespace {

boost::asio::awaitable<std::vector<result<Reply>>> pipeline_on_strand(
    std::shared_ptr<detail::ConnectionImpl> impl, std::vector<Command> cmds) {
  std::vector<const Command*> ptrs;
  ptrs.reserve(cmds.size());
  for (const auto& c : cmds) ptrs.push_back(&c);
  auto b = impl->submit(ptrs.data(), ptrs.size());
  co_return co_await detail::ConnectionImpl::wait(std::move(b));
}

boost::asio::awaitable<result<Reply>> exec_on_strand(std::shared_ptr<detail::ConnectionImpl> impl,
                                                     Command cmd) {
  const Command* p = &cmd;
  auto b = impl->submit(&p, 1);
  auto res = co_await detail::ConnectionImpl::wait(std::move(b));
  co_return std::move(res.front());
}

}  // namespace

boost::asio::awaitable<result<Reply>> Connection::exec(Command cmd) {
  return detail::run_on(impl_->strand(), exec_on_strand(impl_, std::move(cmd)));
}

boost::asio::awaitable<std::vector<result<Reply>>> Connection::exec_pipeline(
    std::vector<Command> cmds) {
  return detail::run_on(impl_->strand(), pipeline_on_strand(impl_, std::move(cmds)));
}

boost::asio::awaitable<result<void>> Connection::ping() {
  Command ping_cmd{"PING"};
  auto r = co_await exec(std::move(ping_cmd));
  if (!r) co_return r.error();
  if (r->is_error()) co_return errc::rejected;
  if (!r->is_string() || r->str() != "PONG") co_return errc::protocol_error;
  co_return result<void>{};
}

bool Connection::connected() const { return impl_->connected(); }
std::uint64_t Connection::reconnects() const { return impl_->reconnects(); }
const Endpoint& Connection::endpoint() const { return impl_->endpoint(); }
boost::asio::any_io_executor Connection::executor() const { return impl_->strand(); }

}  // namespace pushgw::redis
