#include "push_api/http_server.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <map>
#include <mutex>

#include "common/log.h"
#include "common/spawn.h"
#include "push_api/api_error.h"

namespace pushgw::push_api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using common::HttpRequest;
using common::HttpResponse;

namespace {

struct SessionRef {
  asio::any_io_executor executor;
  std::weak_ptr<beast::tcp_stream> stream;
  std::shared_ptr<std::atomic<bool>> busy;
};

}  // namespace

struct HttpServer::Impl {
  Impl(asio::any_io_executor executor, HttpServerOptions o, HttpHandler h,
       prometheus::Registry* registry)
      : ex(std::move(executor)),
        opts(std::move(o)),
        handler(std::move(h)),
        accept_strand(asio::make_strand(ex)),
        acceptor(accept_strand) {
    if (registry != nullptr) {
      open_gauge = &prometheus::BuildGauge()
                        .Name("pushgw_push_api_connections")
                        .Help("Open HTTP connections of the push API listener")
                        .Register(*registry)
                        .Add({});
      rejected = &prometheus::BuildCounter()
                      .Name("pushgw_push_api_connections_rejected_total")
                      .Help("Connections closed at once because listen.max_connections was reached")
                      .Register(*registry)
                      .Add({});
    }
  }

  /// Where the next connection runs (acceptor strand only).
  asio::any_io_executor next_session_executor() {
    if (opts.session_executors.empty()) return asio::make_strand(ex);
    return opts.session_executors[next_executor++ % opts.session_executors.size()];
  }

  std::optional<uint64_t> add_session(const std::shared_ptr<beast::tcp_stream>& s,
                                      std::shared_ptr<std::atomic<bool>> busy) {
    std::lock_guard<std::mutex> lock(mu);
    if (stopping || sessions.size() >= opts.max_connections) return std::nullopt;
    const uint64_t id = next_session++;
    sessions.emplace(id, SessionRef{s->get_executor(), s, std::move(busy)});
    if (open_gauge != nullptr) open_gauge->Set(static_cast<double>(sessions.size()));
    return id;
  }

  void remove_session(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu);
    sessions.erase(id);
    if (open_gauge != nullptr) open_gauge->Set(static_cast<double>(sessions.size()));
  }

  bool is_stopping() {
    std::lock_guard<std::mutex> lock(mu);
    return stopping;
  }

  /// Closes the sockets of sessions (idle ones only unless `all`).
  void close_sessions(bool all) {
    std::vector<SessionRef> refs;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& [id, ref] : sessions) {
        if (all || !ref.busy->load()) refs.push_back(ref);
      }
    }
    for (auto& ref : refs) {
      asio::post(ref.executor, [weak = ref.stream, busy = ref.busy, all] {
        if (!all && busy->load()) return;  // a request arrived meanwhile: it closes after it
        if (auto s = weak.lock()) {
          error_code ignored;
          s->socket().shutdown(tcp::socket::shutdown_both, ignored);
          s->socket().close(ignored);
        }
      });
    }
  }

  void begin_stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    asio::post(accept_strand, [weak = weak_self] {
      if (auto self = weak.lock()) {
        error_code ignored;
        self->acceptor.close(ignored);
      }
    });
  }

  asio::any_io_executor ex;
  const HttpServerOptions opts;
  HttpHandler handler;
  asio::strand<asio::any_io_executor> accept_strand;
  tcp::acceptor acceptor;
  std::atomic<uint16_t> port{0};
  prometheus::Gauge* open_gauge = nullptr;
  prometheus::Counter* rejected = nullptr;
  std::weak_ptr<Impl> weak_self;
  std::size_t next_executor = 0;  // acceptor strand only

  std::mutex mu;
  bool stopping = false;
  std::map<uint64_t, SessionRef> sessions;
  uint64_t next_session = 0;
};

namespace {

using ImplPtr = std::shared_ptr<HttpServer::Impl>;

HttpRequest to_request(http::request<http::string_body>&& req) {
  HttpRequest out;
  const auto method = req.method_string();
  const auto target = req.target();
  out.method.assign(method.data(), method.size());
  out.target.assign(target.data(), target.size());
  const size_t q = out.target.find('?');
  out.path = out.target.substr(0, q);
  if (q != std::string::npos) out.query = out.target.substr(q + 1);
  out.headers.reserve(16);
  for (const auto& f : req) {
    const auto name = f.name_string();
    const auto value = f.value();
    out.headers.emplace_back(std::string(name.data(), name.size()),
                             std::string(value.data(), value.size()));
  }
  out.body = std::move(req.body());
  return out;
}

// Header text we put on the wire: a CR or LF would split the response.
void append_header_text(std::string& out, std::string_view text) {
  for (char c : text) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
}

// The response as bytes, in one buffer (one write, no per-field
// allocations): status line, Server, Content-Type, the handler's headers,
// Connection as needed, Content-Length, body.
std::string serialize_response(const HttpServerOptions& opts, const HttpResponse& r,
                               unsigned version, bool keep_alive) {
  const unsigned status = r.status;
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  std::string out;
  out.reserve(160 + r.body.size() + r.content_type.size());
  out.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out.append(std::to_string(status)).push_back(' ');
  out.append(reason.data(), reason.size()).append("\r\nServer: ");
  append_header_text(out, opts.server_name);
  out.append("\r\nContent-Type: ");
  append_header_text(out, r.content_type);
  for (const auto& [k, v] : r.headers) {
    out.append("\r\n");
    append_header_text(out, k);
    out.append(": ");
    append_header_text(out, v);
  }
  if (version == 10 && keep_alive) out.append("\r\nConnection: keep-alive");
  if (version != 10 && !keep_alive) out.append("\r\nConnection: close");
  out.append("\r\nContent-Length: ").append(std::to_string(r.body.size())).append("\r\n\r\n");
  out.append(r.body);
  return out;
}

asio::awaitable<error_code> write_response(ImplPtr self, std::shared_ptr<beast::tcp_stream> stream,
                                           HttpResponse r, unsigned version, bool keep_alive) {
  if (r.status < 100 || r.status > 599) r.status = 500;
  const std::string bytes = serialize_response(self->opts, r, version, keep_alive);
  stream->expires_after(self->opts.idle_timeout);
  auto [ec, n] =
      co_await asio::async_write(*stream, asio::buffer(bytes), asio::as_tuple(asio::use_awaitable));
  co_return ec;
}

// After a refusal: stop sending, then read and drop what the client still
// sends (bounded) so closing does not reset the connection before the client
// has read the answer.
asio::awaitable<void> linger_close(std::shared_ptr<beast::tcp_stream> stream) {
  error_code ec;
  stream->socket().shutdown(tcp::socket::shutdown_send, ec);
  stream->expires_after(std::chrono::milliseconds(1000));
  char sink[4096];
  size_t total = 0;
  while (total < (1u << 20)) {
    auto [rec, n] =
        co_await stream->async_read_some(asio::buffer(sink), asio::as_tuple(asio::use_awaitable));
    if (rec) break;
    total += n;
  }
  stream->close();
}

bool is_client_gone(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == beast::error::timeout || ec == asio::error::operation_aborted ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::bad_descriptor;
}

HttpResponse refusal(const error_code& ec, const HttpServerOptions& o) {
  if (ec == http::error::body_limit) {
    return error_response(
        payload_too_large("request body exceeds " + std::to_string(o.max_body_bytes) + " bytes"));
  }
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return error_response(ApiError{
        431, "invalid_argument",
        "request line and headers exceed " + std::to_string(o.max_header_bytes) + " bytes"});
  }
  return error_response(invalid_argument("malformed HTTP request: " + ec.message()));
}

asio::awaitable<void> refuse(ImplPtr self, std::shared_ptr<beast::tcp_stream> stream,
                             HttpResponse res, unsigned version) {
  const auto wec = co_await write_response(self, stream, std::move(res), version, false);
  if (!wec) co_await linger_close(stream);
}

asio::awaitable<void> session(ImplPtr self, uint64_t id, std::shared_ptr<beast::tcp_stream> stream,
                              std::shared_ptr<std::atomic<bool>> busy) {
  struct Unregister {
    ImplPtr self;
    uint64_t id;
    ~Unregister() { self->remove_session(id); }
  } unregister{self, id};

  beast::flat_buffer buffer(8192);
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(self->opts.max_header_bytes);
    parser.body_limit(self->opts.max_body_bytes);
    stream->expires_after(self->opts.idle_timeout);
    auto [ec, n] = co_await http::async_read_header(*stream, buffer, parser,
                                                    asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (!is_client_gone(ec)) co_await refuse(self, stream, refusal(ec, self->opts), 11);
      break;
    }
    busy->store(true);
    const auto& head = parser.get();
    const unsigned version = head.version();
    std::size_t fields = 0;
    for (auto it = head.begin(); it != head.end(); ++it) ++fields;
    if (fields > self->opts.max_headers) {
      // Built outside the co_await: GCC 12 miscompiles braced initializers in one.
      HttpResponse too_many = error_response(
          ApiError{431, "invalid_argument",
                   "more than " + std::to_string(self->opts.max_headers) + " header fields"});
      co_await refuse(self, stream, std::move(too_many), version);
      break;
    }
    if (!parser.is_done()) {
      if (beast::iequals(head[http::field::expect], "100-continue")) {
        http::response<http::empty_body> cont{http::status::continue_, version};
        auto [cec, cn] =
            co_await http::async_write(*stream, cont, asio::as_tuple(asio::use_awaitable));
        if (cec) break;
      }
      stream->expires_after(self->opts.idle_timeout);
      auto [bec, bn] =
          co_await http::async_read(*stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
      if (bec) {
        if (!is_client_gone(bec)) co_await refuse(self, stream, refusal(bec, self->opts), version);
        break;
      }
    }
    auto req = parser.release();
    bool keep_alive = req.keep_alive();
    HttpResponse res = co_await self->handler(to_request(std::move(req)));
    keep_alive = keep_alive && !self->is_stopping();
    const auto wec = co_await write_response(self, stream, std::move(res), version, keep_alive);
    busy->store(false);
    if (wec || !keep_alive) break;
  }
  error_code ec;
  stream->socket().shutdown(tcp::socket::shutdown_both, ec);
  stream->close();
}

asio::awaitable<void> accept_loop(ImplPtr self) {
  auto log = common::logger("push-api");
  for (;;) {
    tcp::socket socket(self->next_session_executor());
    auto [ec] = co_await self->acceptor.async_accept(socket, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) co_return;
      log->warn("accept failed: {}", ec.message());
      // Out of descriptors and similar: pause instead of spinning.
      asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    auto busy = std::make_shared<std::atomic<bool>>(false);
    const auto id = self->add_session(stream, busy);
    if (!id) {
      if (self->rejected != nullptr) self->rejected->Increment();
      stream->socket().close(ignored);
      continue;
    }
    auto ex = stream->get_executor();
    common::spawn_logged(ex, session(self, *id, std::move(stream), std::move(busy)),
                         "push-api connection");
  }
}

}  // namespace

HttpServer::HttpServer(asio::any_io_executor ex, HttpServerOptions options, HttpHandler handler,
                       prometheus::Registry* metrics)
    : impl_(
          std::make_shared<Impl>(std::move(ex), std::move(options), std::move(handler), metrics)) {
  impl_->weak_self = impl_;
}

HttpServer::~HttpServer() { stop(); }

result<void> HttpServer::start() {
  error_code ec;
  const auto address = asio::ip::make_address(impl_->opts.host, ec);
  if (ec) return ec;
  const tcp::endpoint endpoint(address, impl_->opts.port);
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(impl_->opts.backlog, ec);
  if (ec) {
    error_code ignored;
    acceptor.close(ignored);
    return ec;
  }
  const auto local = acceptor.local_endpoint(ec);
  if (ec) return ec;
  impl_->port = local.port();
  common::logger("push-api")
      ->info("push API listening on {}:{}", local.address().to_string(), local.port());
  common::spawn_logged(impl_->accept_strand, accept_loop(impl_), "push-api accept loop");
  return {};
}

uint16_t HttpServer::port() const { return impl_->port; }

std::size_t HttpServer::connections() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->sessions.size();
}

asio::awaitable<void> HttpServer::shutdown(std::chrono::milliseconds grace) {
  auto self = impl_;
  self->begin_stop();
  self->close_sessions(false);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(self->mu);
      if (self->sessions.empty()) break;
    }
    self->close_sessions(false);
    timer.expires_after(std::chrono::milliseconds(20));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  self->close_sessions(true);
}

void HttpServer::stop() {
  impl_->begin_stop();
  impl_->close_sessions(true);
}

}  // namespace pushgw::push_api
