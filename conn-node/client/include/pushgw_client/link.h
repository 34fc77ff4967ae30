#pragma once
/// One device link to a conn-node listener (tcp, tls, ws or wss), speaking
/// the framing of device-protocol.md: a 4-byte big-endian length + Frame on
/// tcp/tls, one binary WebSocket message per Frame on ws/wss.
///
/// Executor model: a Link belongs to the executor passed to connect() (one
/// thread, or one strand of a multi-threaded io_context). Call its operations
/// only from coroutines running on that executor. At most one recv() may be
/// pending at a time; send()s may overlap a pending recv() and each other
/// (bytes are queued in call order and written by one writer at a time).
/// Do not destroy a Link while an operation on it is pending: close() it,
/// which completes pending operations with operation_aborted, and let them
/// return first.
///
/// Memory: an idle link holds no I/O buffers. It waits for readiness and then
/// reads with a non-blocking call into a per-thread scratch buffer, so an idle
/// plain link costs its socket, about 300 bytes of state and the reactor's
/// per-descriptor record; a TLS link adds its OpenSSL objects with
/// SSL_MODE_RELEASE_BUFFERS (read/write buffers are freed while idle).
///
/// Errors (values, never exceptions):
///  - errc::timeout: recv() saw nothing within its timeout (the link stays
///    usable), or connect/send exceeded their deadline (the link is failed);
///  - asio::error::eof: the peer closed (TCP FIN, TLS close_notify, or a
///    WebSocket close frame). is_peer_closed() also accepts reset/broken pipe;
///  - errc::bad_message: the server sent a bad frame (length 0 or above
///    max_frame_bytes, undecodable protobuf, a Frame without body, a text or
///    malformed WebSocket message). The link is failed afterwards;
///  - errc::invalid_argument: a bad call (send_text on tcp/tls, TLS endpoint
///    without ConnectOptions::tls, bad local address);
///  - OpenSSL errors (asio ssl category) when a TLS handshake fails, system
///    errors from the socket otherwise.
/// A read-side error other than timeout is sticky: later recv()s return it.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/error.h"
#include "proto/pushgw.pb.h"
#include "pushgw_client/endpoint.h"
#include "pushgw_client/tls.h"

namespace pushgw::client {

namespace asio = boost::asio;

/// recv() timeout meaning "wait until something arrives or the link fails".
inline constexpr std::chrono::milliseconds kNoTimeout = std::chrono::milliseconds::max();

struct ConnectOptions {
  /// Required for tls/wss endpoints; may be shared by any number of links.
  std::shared_ptr<ClientTls> tls;
  /// Bound on resolve + TCP connect + TLS handshake + WebSocket upgrade.
  std::chrono::milliseconds connect_timeout{10'000};
  /// Bound on one send() waiting for the socket to accept bytes.
  std::chrono::milliseconds send_timeout{10'000};
  /// Source address to bind before connecting (e.g. "127.0.0.2" so a load
  /// generator gets its own ephemeral port range); empty: chosen by the OS.
  std::string local_address;
  /// Largest frame accepted from the server (bytes of one serialized Frame).
  uint32_t max_frame_bytes = 65536;
};

/// True for the errors that mean "the peer closed the connection": eof,
/// connection_reset, connection_aborted, broken_pipe.
bool is_peer_closed(const boost::system::error_code& ec) noexcept;

class Link {
 public:
  virtual ~Link() = default;
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  /// Resolves, connects (binding options.local_address when set), performs
  /// the TLS handshake (offering a cached session) and the WebSocket upgrade
  /// at endpoint.ws_path, all within options.connect_timeout. The link's
  /// socket lives on `ex`; run the returned awaitable on `ex` as well.
  static asio::awaitable<result<std::unique_ptr<Link>>> connect(asio::any_io_executor ex,
                                                                Endpoint endpoint,
                                                                ConnectOptions options);

  /// Sends one Frame (length-prefixed on tcp/tls, a binary message on ws).
  /// The frame is serialized when send() is called, so it need not outlive
  /// the call. Completes when the bytes are written to the socket (or queued
  /// behind another pending send, which then writes them).
  virtual asio::awaitable<result<void>> send(const v1::Frame& frame) = 0;

  /// Bad-input tests: tcp/tls write `bytes` as is on the stream (no prefix);
  /// ws/wss send them as one binary message.
  virtual asio::awaitable<result<void>> send_raw(std::string bytes) = 0;

  /// ws/wss only: sends `text` as one text message (errc::invalid_argument on
  /// tcp/tls).
  virtual asio::awaitable<result<void>> send_text(std::string text) = 0;

  /// The next Frame from the server. `timeout` 0 only takes what has already
  /// arrived; kNoTimeout waits without bound. WebSocket pings are answered
  /// with pongs here, pongs are skipped.
  virtual asio::awaitable<result<v1::Frame>> recv(std::chrono::milliseconds timeout) = 0;

  /// Orderly close without waiting for the peer: a WebSocket close frame or
  /// a TLS close_notify when the socket takes it at once, then FIN and close.
  /// Pending operations complete with operation_aborted. Idempotent.
  virtual asio::awaitable<void> close() = 0;

  /// True when the TLS handshake resumed a cached session.
  virtual bool tls_resumed() const noexcept = 0;
  /// Negotiated TLS version ("TLSv1.3"), empty for plain links.
  virtual std::string tls_version() const = 0;
  virtual Transport transport() const noexcept = 0;
  /// False after close() or a failure of the transport.
  virtual bool is_open() const noexcept = 0;
  /// Local "address:port" of the socket (empty when closed).
  virtual std::string local_endpoint() const = 0;

 protected:
  Link() = default;
};

}  // namespace pushgw::client
