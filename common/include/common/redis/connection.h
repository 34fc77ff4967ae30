#pragma once
/// One pipelined TCP connection to one Redis node.
///
/// Requests from any number of coroutines share the socket: each exec() or
/// exec_pipeline() appends its encoded commands to an output buffer, a FIFO
/// remembers which request owns the next replies, and a writer flushes
/// everything queued in one write. Replies are matched to requests in order.
///
/// Thread model: all state lives on one strand (made from the executor given
/// to the constructor; see executor()). Public members may be called from any
/// thread or coroutine: calls from coroutines running on executor() take a
/// direct path, others hop onto the strand and back.
///
/// Failure model (never throws, never blocks forever):
///  - each request fails with errc::timeout after ConnectionOptions::request_timeout;
///    if nothing at all arrived on the socket since that request was sent, the
///    connection counts as stalled (hung server, half-open TCP) and is dropped
///    and re-established like after a socket error;
///  - a socket error fails every pending request with errc::unavailable;
///  - the connection then reconnects with exponential backoff (capped); while
///    it is down, new requests fail at once with errc::unavailable. Requests
///    made during a connect attempt wait for it (bounded by their timeout);
///  - after close() (or destruction) requests fail with errc::shutting_down.
/// A Redis error reply ("ERR ...") is a successful result holding Reply::error.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <vector>

#include "common/error.h"
#include "common/redis/command.h"
#include "common/redis/config.h"
#include "common/redis/reply.h"

namespace prometheus {
class Registry;
}

namespace pushgw::redis {

namespace detail {
class ConnectionImpl;
}

class Connection {
 public:
  /// Starts connecting at once. `metrics` (optional) must outlive the connection;
  /// series carry the label client=`name`.
  Connection(boost::asio::any_io_executor ex, Endpoint endpoint, ConnectionOptions options = {},
             prometheus::Registry* metrics = nullptr, std::string name = "redis");
  /// Closes: pending requests fail with errc::shutting_down, no more reconnects.
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Sends one command; its reply, or errc::timeout / unavailable / queue_full /
  /// shutting_down.
  boost::asio::awaitable<result<Reply>> exec(Command cmd);
  /// Sends all commands in one write; one result per command, in order.
  boost::asio::awaitable<std::vector<result<Reply>>> exec_pipeline(std::vector<Command> cmds);
  /// Sends PING; ok once the node answers PONG.
  boost::asio::awaitable<result<void>> ping();

  /// True while the socket is up. Thread-safe snapshot.
  bool connected() const;
  /// Successful connects after the first one. Thread-safe.
  std::uint64_t reconnects() const;
  const Endpoint& endpoint() const;
  /// The strand all of this connection's state lives on.
  boost::asio::any_io_executor executor() const;
  /// Idempotent; thread-safe.
  void close();

 private:
  std::shared_ptr<detail::ConnectionImpl> impl_;
};

}  // namespace pushgw::redis
