#include "byte_stream.h"

#include <openssl/err.h>

#include <boost/asio/error.hpp>

#include "tls_context.h"

namespace pushgw::conn_node {

namespace asio = boost::asio;

ByteStream::ByteStream(Socket socket) : socket_(std::move(socket)) {
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

ByteStream::~ByteStream() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

bool ByteStream::start_tls(const TlsContext& ctx) {
  if (ssl_ != nullptr) return true;
  ssl_ = ctx.new_ssl(socket_.native_handle());
  return ssl_ != nullptr;
}

IoOutcome ByteStream::tls_result(int ret, size_t n) {
  if (ret > 0) return {Io::kDone, n};
  const int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ: return {Io::kWantRead, 0};
    case SSL_ERROR_WANT_WRITE: return {Io::kWantWrite, 0};
    case SSL_ERROR_ZERO_RETURN: return {Io::kClosed, 0};
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      return {errno == 0 ? Io::kClosed : Io::kError, 0};
    default:
      ERR_clear_error();
      return {Io::kError, 0};
  }
}

IoOutcome ByteStream::handshake() {
  if (ssl_ == nullptr) return {Io::kDone, 0};
  ERR_clear_error();
  errno = 0;
  return tls_result(SSL_do_handshake(ssl_), 0);
}

bool ByteStream::resumed() const { return ssl_ != nullptr && SSL_session_reused(ssl_) == 1; }

size_t ByteStream::pending() const {
  return ssl_ != nullptr ? static_cast<size_t>(SSL_pending(ssl_)) : 0;
}

IoOutcome ByteStream::read(char* data, size_t size) {
  if (ssl_ != nullptr) {
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    const int ret = SSL_read_ex(ssl_, data, size, &n);
    return tls_result(ret, n);
  }
  boost::system::error_code ec;
  const size_t n = socket_.read_some(asio::buffer(data, size), ec);
  if (!ec) return {Io::kDone, n};
  if (ec == asio::error::would_block || ec == asio::error::try_again) return {Io::kWantRead, 0};
  if (ec == asio::error::eof) return {Io::kClosed, 0};
  return {Io::kError, 0};
}

IoOutcome ByteStream::write(const char* data, size_t size) {
  if (ssl_ != nullptr) {
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    const int ret = SSL_write_ex(ssl_, data, size, &n);
    return tls_result(ret, n);
  }
  boost::system::error_code ec;
  const size_t n = socket_.write_some(asio::buffer(data, size), ec);
  if (!ec) return {Io::kDone, n};
  if (ec == asio::error::would_block || ec == asio::error::try_again) return {Io::kWantWrite, 0};
  return {Io::kError, 0};
}

void ByteStream::shutdown() {
  if (!socket_.is_open()) return;
  if (ssl_ != nullptr && SSL_is_init_finished(ssl_)) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // sends close_notify if the socket takes it; no wait for the peer's
    ERR_clear_error();
  }
  boost::system::error_code ec;
  socket_.shutdown(asio::socket_base::shutdown_send, ec);
}

void ByteStream::close() {
  boost::system::error_code ec;
  socket_.close(ec);
}

}  // namespace pushgw::conn_node
