#pragma once
// A non-blocking byte stream over one accepted socket, plain or TLS (OpenSSL
// straight on the fd, not asio::ssl::stream: that one keeps two 17 KiB
// buffers per link even when idle). Reads and writes never block: they
// report kWantRead / kWantWrite and the caller waits for readiness on
// socket(). Private to conn-node; used on the owning worker thread only.
#include <openssl/ssl.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace pushgw::conn_node {

class TlsContext;

/// Sockets are bound to a worker's io_context (an 8-byte executor instead of
/// any_io_executor's larger one: this is per link).
using Socket =
    boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

enum class Io : uint8_t {
  kDone,       // n bytes moved (n > 0), or the handshake finished
  kWantRead,   // wait until the socket is readable, then retry
  kWantWrite,  // wait until the socket is writable, then retry
  kClosed,     // orderly end of stream (EOF / TLS close_notify)
  kError,      // reset, TLS failure, ...
};

struct IoOutcome {
  Io io = Io::kDone;
  size_t n = 0;
};

class ByteStream {
 public:
  /// Puts the socket in non-blocking mode (and TCP_NODELAY).
  explicit ByteStream(Socket socket);
  ~ByteStream();
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  /// Starts server-side TLS on this stream; false if OpenSSL refused.
  bool start_tls(const TlsContext& ctx);
  bool tls() const { return ssl_ != nullptr; }

  /// Drives the TLS handshake (plain streams: kDone at once).
  IoOutcome handshake();
  /// True once a TLS handshake resumed a session.
  bool resumed() const;
  /// Bytes the TLS layer already decrypted and holds (read them before waiting).
  size_t pending() const;

  IoOutcome read(char* data, size_t size);
  IoOutcome write(const char* data, size_t size);
  /// Best-effort orderly close: TLS close_notify, then shutdown(SHUT_WR).
  void shutdown();
  /// Closes the socket; pending waits complete with operation_aborted.
  void close();

  Socket& socket() { return socket_; }
  bool is_open() const { return socket_.is_open(); }

 private:
  IoOutcome tls_result(int ret, size_t n);

  Socket socket_;
  SSL* ssl_ = nullptr;
};

}  // namespace pushgw::conn_node
