#include "ws_link.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <string_view>

#include "async_byte_stream.h"
#include "common/spawn.h"
#include "conn_node/frame_codec.h"
#include "link.h"
#include "node_core.h"
#include "tls_context.h"
#include "worker.h"

namespace pushgw::conn_node {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::as_tuple;
using asio::use_awaitable;

namespace {

constexpr std::string_view kWsPath = "/ws";
constexpr size_t kReadChunk = 16 * 1024;

class WsLink final : public Link {
 public:
  WsLink(Worker& worker, ListenerKind kind, uint64_t id, Socket socket)
      : Link(worker, kind, id), ws_(std::move(socket)) {}

 protected:
  asio::awaitable<void> run() override;
  void flush() override;
  void abort_transport() override { bytes().close(); }
  void close_transport_gracefully() override;
  bool write_blocked() const override { return writing_; }
  bool tls_resumed() const override { return ws_.next_layer().stream().resumed(); }

 private:
  enum class Read { kFrame, kClosed, kBad };

  ByteStream& bytes() { return ws_.next_layer().stream(); }
  asio::awaitable<bool> tls_handshake();
  asio::awaitable<bool> upgrade();
  /// Reads one whole message; kFrame fills `out` (unless the link is closing).
  asio::awaitable<Read> read_message(v1::Frame& out);
  static asio::awaitable<void> write_loop(std::shared_ptr<WsLink> self);
  static asio::awaitable<void> close_ws(std::shared_ptr<WsLink> self);

  websocket::stream<AsyncByteStream> ws_;
  beast::flat_buffer rbuf_;  // one message while it is read; released after
  bool writing_ = false;
};

asio::awaitable<bool> WsLink::tls_handshake() {
  const TlsContext* tls = core().tls();
  if (tls == nullptr || !bytes().start_tls(*tls)) co_return false;
  for (;;) {
    const IoOutcome r = bytes().handshake();
    if (r.io == Io::kDone) co_return true;
    if (r.io != Io::kWantRead && r.io != Io::kWantWrite) break;
    auto [ec] = co_await bytes().socket().async_wait(
        r.io == Io::kWantRead ? asio::socket_base::wait_read : asio::socket_base::wait_write,
        as_tuple(use_awaitable));
    if (ec) break;
  }
  core().metrics().handshake_failures[static_cast<int>(kind())]->Increment();
  co_return false;
}

asio::awaitable<bool> WsLink::upgrade() {
  beast::flat_buffer buf;
  http::request_parser<http::empty_body> parser;
  parser.header_limit(8 * 1024);
  auto [ec, n] = co_await http::async_read(ws_.next_layer(), buf, parser, as_tuple(use_awaitable));
  if (ec) co_return false;
  http::request<http::empty_body> req = parser.release();
  std::string_view target(req.target().data(), req.target().size());
  const std::string_view path = target.substr(0, target.find('?'));
  if (path != kWsPath || !websocket::is_upgrade(req)) {
    http::response<http::string_body> res{
        path != kWsPath ? http::status::not_found : http::status::upgrade_required, req.version()};
    res.set(http::field::connection, "close");
    if (path == kWsPath) res.set(http::field::upgrade, "websocket");
    res.body() = path != kWsPath ? "not found\n" : "WebSocket upgrade required\n";
    res.prepare_payload();
    co_await http::async_write(ws_.next_layer(), res, as_tuple(use_awaitable));
    bytes().shutdown();
    co_return false;
  }
  // Clients must wait for the 101 before sending frames (RFC 6455 4.1).
  if (buf.size() != 0) co_return false;
  websocket::stream_base::timeout t;
  t.handshake_timeout = std::chrono::seconds(2);  // also bounds the closing handshake
  t.idle_timeout = websocket::stream_base::none();
  t.keep_alive_pings = false;
  ws_.set_option(t);
  ws_.read_message_max(0);  // sizes are checked here, so FRAME_TOO_LARGE can be sent
  ws_.auto_fragment(false);
  ws_.binary(true);
  auto [aec] = co_await ws_.async_accept(req, as_tuple(use_awaitable));
  co_return !aec;
}

asio::awaitable<WsLink::Read> WsLink::read_message(v1::Frame& out) {
  const size_t max = cfg().limits.max_frame_bytes;
  bool too_large = false;
  bool text = false;
  do {
    auto [ec, n] = co_await ws_.async_read_some(rbuf_, kReadChunk, as_tuple(use_awaitable));
    if (ec) co_return Read::kClosed;
    if (closing()) {
      rbuf_.clear();  // discard while the final frame goes out
      continue;
    }
    text = text || ws_.got_text();
    if (rbuf_.size() > max) {
      too_large = true;
      rbuf_.clear();
      break;
    }
  } while (!ws_.is_message_done());
  if (closing()) {
    rbuf_.clear();
    rbuf_.shrink_to_fit();
    co_return Read::kBad;
  }
  Read result = Read::kFrame;
  if (too_large) {
    on_bad_input(v1::FRAME_TOO_LARGE, "message exceeds max_frame_bytes");
    result = Read::kBad;
  } else if (text) {
    on_bad_input(v1::BAD_FRAME, "text messages are not frames; send binary");
    result = Read::kBad;
  } else {
    const auto data = rbuf_.cdata();
    const std::string_view body(static_cast<const char*>(data.data()), data.size());
    if (body.empty() || parse_body(body, out) != FrameError::kOk) {
      on_bad_input(v1::BAD_FRAME, body.empty() ? "empty message" : "malformed frame");
      result = Read::kBad;
    }
  }
  rbuf_.clear();
  rbuf_.shrink_to_fit();  // an idle link keeps no read buffer
  co_return result;
}

asio::awaitable<void> WsLink::run() {
  if (kind() == ListenerKind::kWss && !co_await tls_handshake()) co_return;
  if (!co_await upgrade()) co_return;
  on_handshake_done();
  {
    v1::Frame first;
    const Read r = co_await read_message(first);
    if (r == Read::kClosed) co_return;
    if (r == Read::kFrame) co_await on_first_frame(std::move(first));
  }
  for (;;) {
    v1::Frame frame;
    const Read r = co_await read_message(frame);
    if (r == Read::kClosed) co_return;
    if (r == Read::kFrame) on_frame(frame);
  }
}

void WsLink::flush() {
  if (writing_ || closed() || state() == State::kHandshake) return;
  writing_ = true;
  common::spawn_logged(worker().executor(),
                       write_loop(std::static_pointer_cast<WsLink>(shared_from_this())),
                       "conn-node ws write");
}

asio::awaitable<void> WsLink::write_loop(std::shared_ptr<WsLink> self) {
  std::vector<SharedFrame> batch;
  while (!self->closed() && self->take_for_write(batch, 16, 256 * 1024)) {
    for (const auto& f : batch) {
      // The shared frame carries the tcp/tls length prefix: skip it.
      auto [ec, n] = co_await self->ws_.async_write(
          asio::buffer(f->data() + kPrefixBytes, f->size() - kPrefixBytes),
          as_tuple(use_awaitable));
      if (ec) {
        self->writing_ = false;
        self->abort_transport();
        co_return;
      }
    }
    batch.clear();
  }
  self->writing_ = false;
  self->on_queue_drained();
}

void WsLink::close_transport_gracefully() {
  common::spawn_logged(worker().executor(),
                       close_ws(std::static_pointer_cast<WsLink>(shared_from_this())),
                       "conn-node ws close");
}

asio::awaitable<void> WsLink::close_ws(std::shared_ptr<WsLink> self) {
  auto [ec] = co_await self->ws_.async_close(websocket::close_code::normal,
                                             as_tuple(use_awaitable));
  if (ec) self->abort_transport();
}

}  // namespace

std::shared_ptr<Link> make_ws_link(Worker& worker, ListenerKind kind, uint64_t id, Socket socket) {
  return std::make_shared<WsLink>(worker, kind, id, std::move(socket));
}

}  // namespace pushgw::conn_node
