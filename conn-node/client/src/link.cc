#include "pushgw_client/link.h"

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <optional>
#include <random>
#include <vector>

#include "conn_node/frame_codec.h"
#include "pushgw_client/ws_codec.h"
#include "tls_internal.h"

namespace pushgw::client {

bool is_peer_closed(const boost::system::error_code& ec) noexcept {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::connection_aborted || ec == asio::error::broken_pipe;
}

namespace {

using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;
using boost::system::error_code;
constexpr TimePoint kNever = TimePoint::max();
constexpr size_t kScratchBytes = 16 * 1024;

TimePoint deadline_after(std::chrono::milliseconds d) {
  if (d == kNoTimeout) return kNever;
  const TimePoint now = SteadyClock::now();
  if (d > std::chrono::duration_cast<std::chrono::milliseconds>(kNever - now)) return kNever;
  return now + std::max(d, std::chrono::milliseconds(0));
}

/// Per-thread read buffer: reads never suspend between filling it and
/// feeding the bytes to the link's decoder, so one buffer serves every link
/// of the thread and idle links hold none.
char* scratch() {
  thread_local std::array<char, kScratchBytes> buf;
  return buf.data();
}

uint32_t mask_key() {
  thread_local std::mt19937 gen{std::random_device{}()};
  return static_cast<uint32_t>(gen());
}

/// Outcome of one non-blocking read or write.
enum class Io : uint8_t { kDone, kWantRead, kWantWrite, kFailed };
struct IoResult {
  size_t n = 0;
  Io state = Io::kDone;
  error_code ec;
};

asio::awaitable<error_code> connect_socket(tcp::socket& socket, tcp::endpoint target,
                                           TimePoint deadline) {
  if (deadline == kNever) {
    auto [ec] = co_await socket.async_connect(target, asio::as_tuple(asio::use_awaitable));
    co_return ec;
  }
  asio::steady_timer timer(socket.get_executor(), deadline);
  auto [order, ec_connect, ec_timer] =
      co_await asio::experimental::make_parallel_group(socket.async_connect(target, asio::deferred),
                                                       timer.async_wait(asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  if (order[0] == 1) co_return make_error_code(errc::timeout);
  co_return ec_connect;
}

class LinkImpl final : public Link {
 public:
  LinkImpl(tcp::socket socket, Transport transport, const ConnectOptions& options)
      : socket_(std::move(socket)),
        reader_(options.max_frame_bytes),
        send_timeout_(options.send_timeout),
        max_frame_(options.max_frame_bytes),
        transport_(transport) {
    if (uses_websocket(transport)) ws_ = std::make_unique<ws::Reader>(max_frame_);
  }

  ~LinkImpl() override {
    if (ssl_ != nullptr) SSL_free(ssl_);
  }

  /// TLS handshake and WebSocket upgrade, bounded by `deadline`.
  asio::awaitable<error_code> handshake(Endpoint endpoint, std::shared_ptr<ClientTls> tls,
                                        TimePoint deadline) {
    if (uses_tls(transport_)) {
      tls_ = std::move(tls);
      session_key_ = detail::tls_name(tls_->options(), endpoint.host) + "|" + host_port(endpoint);
      error_code ec;
      ssl_ =
          detail::new_client_ssl(*tls_, socket_.native_handle(), endpoint.host, &session_key_, ec);
      if (ssl_ == nullptr) co_return ec;
      for (;;) {
        ERR_clear_error();
        const int rc = SSL_connect(ssl_);
        if (rc == 1) break;
        const IoResult r = ssl_failure(rc);
        if (r.state == Io::kFailed) co_return r.ec;
        ec = co_await wait_io(r.state, deadline);
        if (ec) co_return ec;
      }
      resumed_ = SSL_session_reused(ssl_) == 1;
    }
    if (ws_) {
      const std::string key = ws::make_key();
      if (auto w = co_await write_bytes(
              ws::upgrade_request(host_port(endpoint), endpoint.ws_path, key), deadline);
          !w) {
        co_return w.error();
      }
      std::string head;
      for (;;) {
        size_t head_bytes = 0;
        std::string why;
        const auto status = ws::check_upgrade_response(head, key, head_bytes, why);
        if (status == ws::UpgradeStatus::kAccepted) {
          ws_->feed(std::string_view(head).substr(head_bytes));
          break;
        }
        if (status == ws::UpgradeStatus::kRejected) {
          co_return make_error_code(why.rfind("upgrade refused", 0) == 0 ? errc::rejected
                                                                         : errc::protocol_error);
        }
        const IoResult r = read_some(scratch(), kScratchBytes);
        if (r.n > 0) {
          head.append(scratch(), r.n);
          continue;
        }
        if (r.state == Io::kFailed) co_return r.ec;
        if (auto ec = co_await wait_io(r.state, deadline)) co_return ec;
      }
    }
    handshake_done_ = true;
    co_return error_code{};
  }

  asio::awaitable<result<void>> send(const v1::Frame& frame) override {
    if (ws_) {
      std::string out;
      ws::append_client_frame(ws::Opcode::kBinary, frame.SerializeAsString(), mask_key(), out);
      return write_bytes(std::move(out), deadline_after(send_timeout_));
    }
    return write_bytes(conn_node::encode_framed(frame), deadline_after(send_timeout_));
  }

  asio::awaitable<result<void>> send_raw(std::string bytes) override {
    if (ws_) {
      std::string out;
      ws::append_client_frame(ws::Opcode::kBinary, bytes, mask_key(), out);
      co_return co_await write_bytes(std::move(out), deadline_after(send_timeout_));
    }
    co_return co_await write_bytes(std::move(bytes), deadline_after(send_timeout_));
  }

  asio::awaitable<result<void>> send_text(std::string text) override {
    if (!ws_) co_return make_error_code(errc::invalid_argument);
    std::string out;
    ws::append_client_frame(ws::Opcode::kText, text, mask_key(), out);
    co_return co_await write_bytes(std::move(out), deadline_after(send_timeout_));
  }

  asio::awaitable<result<v1::Frame>> recv(std::chrono::milliseconds timeout) override {
    const TimePoint deadline = deadline_after(timeout);
    v1::Frame frame;
    ws::Message message;
    for (;;) {
      if (read_error_) co_return read_error_;
      if (ws_) {
        const auto status = ws_->next(message);
        if (status == ws::Reader::Status::kError) {
          co_await fail_websocket(ws::kCloseProtocolError);
          co_return read_error_;
        }
        if (status == ws::Reader::Status::kMessage) {
          switch (message.opcode) {
            case ws::Opcode::kBinary:
              if (conn_node::parse_body(message.payload, frame) != conn_node::FrameError::kOk) {
                co_await fail_websocket(ws::kCloseProtocolError);
                co_return read_error_;
              }
              co_return std::move(frame);
            case ws::Opcode::kPing: {
              std::string pong;
              ws::append_client_frame(ws::Opcode::kPong, message.payload, mask_key(), pong);
              // A failed pong shows up as a write error on the next send.
              (void)co_await write_bytes(std::move(pong), deadline_after(send_timeout_));
              continue;
            }
            case ws::Opcode::kClose:
              if (!ws_close_sent_) {
                ws_close_sent_ = true;
                std::string reply;
                ws::append_client_frame(
                    ws::Opcode::kClose,
                    ws::close_payload(
                        message.close_code == 1005 ? ws::kCloseNormal : message.close_code, ""),
                    mask_key(), reply);
                (void)co_await write_bytes(std::move(reply), deadline_after(send_timeout_));
              }
              read_error_ = asio::error::eof;
              co_return read_error_;
            case ws::Opcode::kPong:
              continue;
            default:  // text: the protocol carries frames in binary messages only
              co_await fail_websocket(ws::kCloseProtocolError);
              co_return read_error_;
          }
        }
      } else {
        const auto status = reader_.next(frame);
        if (status == conn_node::FrameReader::Status::kFrame) {
          // Drop the read buffer between frames: idle links keep no memory.
          if (reader_.buffered() == 0) reader_ = conn_node::FrameReader(max_frame_);
          co_return std::move(frame);
        }
        if (status == conn_node::FrameReader::Status::kError) {
          read_error_ = make_error_code(errc::bad_message);
          co_return read_error_;
        }
      }

      const IoResult r = read_some(scratch(), kScratchBytes);
      if (r.n > 0) {
        if (ws_) {
          ws_->feed(std::string_view(scratch(), r.n));
        } else {
          reader_.feed(std::string_view(scratch(), r.n));
        }
        continue;
      }
      if (r.state == Io::kFailed) {
        read_error_ = r.ec;
        co_return read_error_;
      }
      if (deadline != kNever && SteadyClock::now() >= deadline) {
        co_return make_error_code(errc::timeout);
      }
      const error_code ec = co_await wait_io(r.state, deadline);
      if (ec == errc::timeout) co_return ec;
      if (ec) {
        read_error_ = ec;
        co_return read_error_;
      }
    }
  }

  asio::awaitable<void> close() override {
    if (!open_) co_return;
    open_ = false;
    if (handshake_done_ && !writing_ && !write_error_) {
      if (ws_ && !ws_close_sent_) {
        ws_close_sent_ = true;
        std::string frame;
        ws::append_client_frame(ws::Opcode::kClose, ws::close_payload(ws::kCloseNormal, ""),
                                mask_key(), frame);
        (void)write_some(frame.data(), frame.size());
      }
      if (ssl_ != nullptr) {
        ERR_clear_error();
        (void)SSL_shutdown(ssl_);
        ERR_clear_error();
      }
    }
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    co_return;
  }

  bool tls_resumed() const noexcept override { return resumed_; }

  std::string tls_version() const override {
    return ssl_ != nullptr ? std::string(SSL_get_version(ssl_)) : std::string();
  }

  Transport transport() const noexcept override { return transport_; }

  bool is_open() const noexcept override {
    return open_ && socket_.is_open() && !read_error_ && !write_error_;
  }

  std::string local_endpoint() const override {
    error_code ec;
    const auto ep = socket_.local_endpoint(ec);
    if (ec) return {};
    const auto addr = ep.address();
    std::string out = addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string();
    return out + ":" + std::to_string(ep.port());
  }

 private:
  /// Queues `bytes` behind earlier sends; the first caller to find no
  /// writer active writes until the queue is empty (or `deadline`).
  asio::awaitable<result<void>> write_bytes(std::string bytes, TimePoint deadline) {
    if (write_error_) co_return write_error_;
    if (!open_) co_return make_error_code(asio::error::not_connected);
    if (out_.empty()) {
      out_ = std::move(bytes);
    } else {
      out_.append(bytes);
    }
    if (writing_) co_return result<void>{};
    writing_ = true;
    while (!out_.empty()) {
      const IoResult r = write_some(out_.data(), out_.size());
      if (r.n > 0) {
        out_.erase(0, r.n);
        continue;
      }
      if (r.state == Io::kFailed || r.state == Io::kDone) {
        write_error_ = r.ec ? r.ec : make_error_code(asio::error::broken_pipe);
        break;
      }
      if (const error_code ec = co_await wait_io(r.state, deadline)) {
        write_error_ = ec;
        break;
      }
    }
    writing_ = false;
    std::string().swap(out_);
    if (write_error_) co_return write_error_;
    co_return result<void>{};
  }

  /// Marks the link failed with bad_message and tells a WebSocket peer why.
  asio::awaitable<void> fail_websocket(uint16_t close_code) {
    read_error_ = make_error_code(errc::bad_message);
    if (!ws_close_sent_ && !write_error_) {
      ws_close_sent_ = true;
      std::string frame;
      ws::append_client_frame(ws::Opcode::kClose, ws::close_payload(close_code, "bad message"),
                              mask_key(), frame);
      (void)co_await write_bytes(std::move(frame), deadline_after(send_timeout_));
    }
  }

  IoResult read_some(char* buf, size_t n) {
    if (!open_ || !socket_.is_open()) return {0, Io::kFailed, asio::error::operation_aborted};
    if (ssl_ != nullptr) {
      ERR_clear_error();
      size_t got = 0;
      const int rc = SSL_read_ex(ssl_, buf, n, &got);
      if (rc == 1) return {got, Io::kDone, {}};
      return ssl_failure(rc);
    }
    error_code ec;
    const size_t got = socket_.read_some(asio::buffer(buf, n), ec);
    if (!ec) return {got, Io::kDone, {}};
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      return {0, Io::kWantRead, {}};
    }
    return {0, Io::kFailed, ec};
  }

  IoResult write_some(const char* buf, size_t n) {
    if (!socket_.is_open()) return {0, Io::kFailed, asio::error::operation_aborted};
    if (ssl_ != nullptr) {
      ERR_clear_error();
      size_t written = 0;
      const int rc = SSL_write_ex(ssl_, buf, n, &written);
      if (rc == 1) return {written, Io::kDone, {}};
      return ssl_failure(rc);
    }
    error_code ec;
    const size_t written = socket_.write_some(asio::buffer(buf, n), ec);
    if (!ec) return {written, Io::kDone, {}};
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      return {0, Io::kWantWrite, {}};
    }
    return {0, Io::kFailed, ec};
  }

  /// Classifies a failed SSL call (right after it, errno and the error
  /// queue still hold its cause).
  IoResult ssl_failure(int rc) {
    const int saved_errno = detail::last_socket_errno();
    switch (SSL_get_error(ssl_, rc)) {
      case SSL_ERROR_WANT_READ:
        return {0, Io::kWantRead, {}};
      case SSL_ERROR_WANT_WRITE:
        return {0, Io::kWantWrite, {}};
      case SSL_ERROR_ZERO_RETURN:
        return {0, Io::kFailed, asio::error::eof};
      case SSL_ERROR_SYSCALL: {
        const unsigned long e = ERR_get_error();
        ERR_clear_error();
        if (e != 0) {
          return {0, Io::kFailed, error_code(static_cast<int>(e), asio::error::get_ssl_category())};
        }
        if (saved_errno != 0) {
          return {0, Io::kFailed, error_code(saved_errno, boost::system::system_category())};
        }
        return {0, Io::kFailed, asio::error::eof};
      }
      default: {
        const unsigned long e = ERR_get_error();
        ERR_clear_error();
        if (e == 0) return {0, Io::kFailed, make_error_code(errc::protocol_error)};
        return {0, Io::kFailed, error_code(static_cast<int>(e), asio::error::get_ssl_category())};
      }
    }
  }

  /// Waits until the socket is readable/writable (never consumes data, so a
  /// timeout leaves the link intact). errc::timeout at `deadline`.
  asio::awaitable<error_code> wait_io(Io want, TimePoint deadline) {
    const auto type = want == Io::kWantWrite ? tcp::socket::wait_write : tcp::socket::wait_read;
    if (deadline == kNever) {
      auto [ec] = co_await socket_.async_wait(type, asio::as_tuple(asio::use_awaitable));
      co_return ec;
    }
    if (SteadyClock::now() >= deadline) co_return make_error_code(errc::timeout);
    asio::steady_timer timer(socket_.get_executor(), deadline);
    auto [order, ec_wait, ec_timer] =
        co_await asio::experimental::make_parallel_group(socket_.async_wait(type, asio::deferred),
                                                         timer.async_wait(asio::deferred))
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    if (order[0] == 1) co_return make_error_code(errc::timeout);
    co_return ec_wait;
  }

  tcp::socket socket_;
  SSL* ssl_ = nullptr;
  std::shared_ptr<ClientTls> tls_;  // keeps the context and session cache alive
  std::string session_key_;         // TLS only: "<server name>|host:port"
  conn_node::FrameReader reader_;   // tcp/tls
  std::unique_ptr<ws::Reader> ws_;  // ws/wss
  std::string out_;                 // bytes queued for the writer
  error_code read_error_;
  error_code write_error_;
  std::chrono::milliseconds send_timeout_;
  uint32_t max_frame_;
  Transport transport_;
  bool open_ = true;
  bool writing_ = false;
  bool resumed_ = false;
  bool handshake_done_ = false;
  bool ws_close_sent_ = false;
};

}  // namespace

asio::awaitable<result<std::unique_ptr<Link>>> Link::connect(asio::any_io_executor ex,
                                                             Endpoint endpoint,
                                                             ConnectOptions options) {
  if (uses_tls(endpoint.transport) && !options.tls)
    co_return make_error_code(errc::invalid_argument);
  if (endpoint.host.empty() || endpoint.port == 0 || options.max_frame_bytes == 0) {
    co_return make_error_code(errc::invalid_argument);
  }
  const TimePoint deadline = deadline_after(options.connect_timeout);

  std::optional<asio::ip::address> local;
  error_code ec;
  if (!options.local_address.empty()) {
    local = asio::ip::make_address(options.local_address, ec);
    if (ec) co_return make_error_code(errc::invalid_argument);
  }

  std::vector<tcp::endpoint> targets;
  const auto literal = asio::ip::make_address(endpoint.host, ec);
  if (!ec) {
    targets.emplace_back(literal, endpoint.port);
  } else {
    tcp::resolver resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(
        endpoint.host, std::to_string(endpoint.port), asio::as_tuple(asio::use_awaitable));
    if (rec) co_return rec;
    for (const auto& entry : results) targets.push_back(entry.endpoint());
  }

  error_code last = asio::error::host_not_found;
  for (const auto& target : targets) {
    if (local && local->is_v4() != target.address().is_v4()) {
      last = asio::error::address_family_not_supported;
      continue;
    }
    tcp::socket socket(ex);
    socket.open(target.protocol(), ec);
    if (ec) {
      last = ec;
      continue;
    }
    if (local) {
      if (local->is_v4()) {
        // Pick the source port at connect() time, per destination: binding
        // first would take a port out of one 28k-port range for all
        // destinations.
        const int one = 1;
        (void)::setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                           sizeof one);
      }
      socket.bind(tcp::endpoint(*local, 0), ec);
      if (ec) {
        last = ec;
        continue;
      }
    }
    last = co_await connect_socket(socket, target, deadline);
    if (last == errc::timeout) break;
    if (last) continue;
    socket.set_option(tcp::no_delay(true), ec);
    socket.non_blocking(true, ec);
    if (ec) co_return ec;
    auto link = std::make_unique<LinkImpl>(std::move(socket), endpoint.transport, options);
    if (auto hs = co_await link->handshake(endpoint, options.tls, deadline)) co_return hs;
    co_return std::unique_ptr<Link>(std::move(link));
  }
  co_return last;
}

}  // namespace pushgw::client
