#pragma once
// An Asio AsyncStream over ByteStream, so Boost.Beast's WebSocket stream can
// run on conn-node's own plain/TLS byte stream (the wss listener then gets
// the same lean TLS as the tls listener: no asio::ssl::stream buffers).
//
// Operations try the non-blocking call first and wait for readiness only
// when the socket (or OpenSSL) asks for it. A result available at once is
// delivered through a post, never inline from the initiating function.
#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <utility>

#include "byte_stream.h"

namespace pushgw::conn_node {

class AsyncByteStream {
 public:
  using executor_type = boost::asio::io_context::executor_type;

  explicit AsyncByteStream(Socket socket) : stream_(std::move(socket)) {}

  executor_type get_executor() noexcept { return stream_.socket().get_executor(); }
  ByteStream& stream() { return stream_; }
  const ByteStream& stream() const { return stream_; }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    const boost::asio::mutable_buffer b = first_buffer(boost::asio::buffer_sequence_begin(buffers),
                                                       boost::asio::buffer_sequence_end(buffers));
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Op<true>{stream_, b.data(), b.size()}, token, stream_.socket());
  }

  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    const boost::asio::const_buffer b = first_buffer(boost::asio::buffer_sequence_begin(buffers),
                                                     boost::asio::buffer_sequence_end(buffers));
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Op<false>{stream_, const_cast<void*>(b.data()), b.size()}, token, stream_.socket());
  }

 private:
  template <class It>
  static auto first_buffer(It it, It end) {
    for (; it != end; ++it) {
      if (boost::asio::buffer_size(*it) > 0) return *it;
    }
    using B = std::decay_t<decltype(*it)>;
    return B();
  }

  template <bool kRead>
  struct Op {
    ByteStream& s;
    void* data;
    std::size_t size;
    bool waited = false;  // an async wait happened: completing now is not inline
    bool posted = false;
    boost::system::error_code result_ec{};
    std::size_t result_n = 0;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
      if (posted) {
        self.complete(result_ec, result_n);
        return;
      }
      if (ec) {
        finish(self, ec, 0);
        return;
      }
      if (size == 0) {
        finish(self, {}, 0);
        return;
      }
      const IoOutcome r = kRead ? s.read(static_cast<char*>(data), size)
                                : s.write(static_cast<const char*>(data), size);
      switch (r.io) {
        case Io::kDone:
          finish(self, {}, r.n);
          return;
        case Io::kWantRead:
          waited = true;
          s.socket().async_wait(boost::asio::socket_base::wait_read, std::move(self));
          return;
        case Io::kWantWrite:
          waited = true;
          s.socket().async_wait(boost::asio::socket_base::wait_write, std::move(self));
          return;
        case Io::kClosed:
          finish(self, boost::asio::error::eof, 0);
          return;
        case Io::kError:
          finish(self, boost::asio::error::connection_reset, 0);
          return;
      }
    }

    template <class Self>
    void finish(Self& self, boost::system::error_code ec, std::size_t n) {
      if (waited) {
        self.complete(ec, n);
        return;
      }
      posted = true;
      result_ec = ec;
      result_n = n;
      boost::asio::post(s.socket().get_executor(), std::move(self));
    }
  };

  ByteStream stream_;
};

/// Beast closes the lowest layer this way when it fails a connection.
inline void beast_close_socket(AsyncByteStream& s) { s.stream().close(); }

/// Beast's WebSocket close: TLS close_notify and FIN, then the socket closes.
inline void teardown(boost::beast::role_type, AsyncByteStream& s, boost::system::error_code& ec) {
  s.stream().shutdown();
  s.stream().close();
  ec = {};
}

template <class TeardownHandler>
void async_teardown(boost::beast::role_type, AsyncByteStream& s, TeardownHandler&& handler) {
  s.stream().shutdown();
  s.stream().close();
  boost::asio::post(s.get_executor(), boost::asio::append(std::forward<TeardownHandler>(handler),
                                                         boost::system::error_code{}));
}

}  // namespace pushgw::conn_node
