#include "common/admin_server.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cctype>
#include <map>
#include <mutex>
#include <optional>

#include "common/log.h"
#include "common/spawn.h"

namespace pushgw::common {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return v;
    }
  }
  return {};
}

HttpResponse HttpResponse::text(unsigned status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::json(unsigned status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

namespace {

constexpr std::string_view kBuiltinPaths[] = {"/healthz", "/readyz", "/metrics"};

struct SessionRef {
  asio::any_io_executor executor;
  std::weak_ptr<beast::tcp_stream> stream;
};

std::string json_escape(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}

asio::awaitable<bool> flag_check(ReadinessFlag flag) { co_return flag.get(); }

}  // namespace

struct AdminServer::Impl {
  Impl(asio::any_io_executor executor, AdminServerOptions o, std::shared_ptr<Metrics> m)
      : ex(std::move(executor)),
        opts(std::move(o)),
        metrics(std::move(m)),
        accept_strand(asio::make_strand(ex)),
        acceptor(accept_strand),
        requests(prometheus::BuildCounter()
                     .Name("pushgw_admin_requests_total")
                     .Help("Admin HTTP responses sent, by status code")
                     .Register(metrics->registry())),
        rejected(prometheus::BuildCounter()
                     .Name("pushgw_admin_connections_rejected_total")
                     .Help("Admin connections closed at once because max_connections was reached")
                     .Register(metrics->registry())
                     .Add({})) {}

  void count(unsigned status) { requests.Add({{"code", std::to_string(status)}}).Increment(); }

  /// Registers a connection; false when stopped or full.
  std::optional<uint64_t> add_session(const std::shared_ptr<beast::tcp_stream>& s) {
    std::lock_guard<std::mutex> lock(mu);
    if (stopped || sessions.size() >= opts.max_connections) return std::nullopt;
    const uint64_t id = next_session++;
    sessions.emplace(id, SessionRef{s->get_executor(), s});
    return id;
  }

  void remove_session(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu);
    sessions.erase(id);
  }

  asio::any_io_executor ex;
  const AdminServerOptions opts;
  std::shared_ptr<Metrics> metrics;
  asio::strand<asio::any_io_executor> accept_strand;
  tcp::acceptor acceptor;
  std::atomic<uint16_t> port{0};
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Counter& rejected;

  std::mutex mu;
  bool stopped = false;
  std::map<std::string, std::map<std::string, AdminHandler>, std::less<>> handlers;  // path, method
  std::vector<std::pair<std::string, ReadinessCheck>> checks;
  std::map<uint64_t, SessionRef> sessions;
  uint64_t next_session = 0;
};

namespace {

using ImplPtr = std::shared_ptr<AdminServer::Impl>;

struct ReadinessRound {
  explicit ReadinessRound(asio::any_io_executor ex, size_t n)
      : timer(std::move(ex)), remaining(n), results(n), errors(n) {}
  asio::steady_timer timer;
  size_t remaining;
  std::vector<std::optional<bool>> results;
  std::vector<std::string> errors;
};

/// Runs every check concurrently on this connection's strand; a check that has
/// not answered by check_timeout counts as not ready (it is left to finish alone).
asio::awaitable<HttpResponse> readiness(ImplPtr self) {
  std::vector<std::pair<std::string, ReadinessCheck>> checks;
  {
    std::lock_guard<std::mutex> lock(self->mu);
    checks = self->checks;
  }
  auto ex = co_await asio::this_coro::executor;
  auto round = std::make_shared<ReadinessRound>(ex, checks.size());
  round->timer.expires_after(self->opts.check_timeout);
  for (size_t i = 0; i < checks.size(); ++i) {
    asio::awaitable<bool> task;
    try {
      task = checks[i].second();
    } catch (const std::exception& e) {
      round->results[i] = false;
      round->errors[i] = e.what();
      --round->remaining;
      continue;
    }
    asio::co_spawn(ex, std::move(task), [round, i](std::exception_ptr e, bool ok) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          round->errors[i] = ex.what();
        } catch (...) {
          round->errors[i] = "unknown exception";
        }
        ok = false;
      }
      round->results[i] = ok;
      if (--round->remaining == 0) round->timer.cancel();
    });
  }
  if (round->remaining > 0) co_await round->timer.async_wait(asio::as_tuple(asio::use_awaitable));

  bool ready = true;
  std::string body = "{\"checks\":[";
  for (size_t i = 0; i < checks.size(); ++i) {
    const bool ok = round->results[i].value_or(false);
    ready = ready && ok;
    if (i) body += ",";
    body +=
        "{\"name\":\"" + json_escape(checks[i].first) + "\",\"ready\":" + (ok ? "true" : "false");
    if (!round->results[i]) {
      body += ",\"error\":\"timeout\"";
    } else if (!round->errors[i].empty()) {
      body += ",\"error\":\"" + json_escape(round->errors[i]) + "\"";
    }
    body += "}";
  }
  body += std::string("],\"ready\":") + (ready ? "true" : "false") + "}\n";
  co_return HttpResponse::json(ready ? 200 : 503, std::move(body));
}

HttpResponse method_not_allowed(std::string allow) {
  HttpResponse r = HttpResponse::text(405, "method not allowed\n");
  r.headers.emplace_back("Allow", std::move(allow));
  return r;
}

asio::awaitable<HttpResponse> dispatch(ImplPtr self, HttpRequest req) {
  if (req.path == "/healthz" || req.path == "/readyz" || req.path == "/metrics") {
    if (req.method != "GET") co_return method_not_allowed("GET");
    if (req.path == "/healthz") co_return HttpResponse::text(200, "ok\n");
    if (req.path == "/metrics") {
      HttpResponse r = HttpResponse::text(200, self->metrics->scrape());
      r.content_type = std::string(kPrometheusContentType);
      co_return r;
    }
    co_return co_await readiness(self);
  }
  AdminHandler handler;
  std::string allow;
  {
    std::lock_guard<std::mutex> lock(self->mu);
    auto it = self->handlers.find(req.path);
    if (it == self->handlers.end()) co_return HttpResponse::text(404, "not found\n");
    if (auto m = it->second.find(req.method); m != it->second.end()) {
      handler = m->second;
    } else {
      for (const auto& [method, h] : it->second) allow += (allow.empty() ? "" : ", ") + method;
    }
  }
  if (!handler) co_return method_not_allowed(std::move(allow));
  try {
    co_return co_await handler(std::move(req));
  } catch (const std::exception& e) {
    logger("admin")->error("handler failed: {}", e.what());
  }
  co_return HttpResponse::text(500, "internal error\n");
}

HttpRequest to_request(http::request<http::string_body>&& req) {
  HttpRequest out;
  const auto method = req.method_string();
  const auto target = req.target();
  out.method.assign(method.data(), method.size());
  out.target.assign(target.data(), target.size());
  const size_t q = out.target.find('?');
  out.path = out.target.substr(0, q);
  if (q != std::string::npos) out.query = out.target.substr(q + 1);
  for (const auto& f : req) {
    const auto name = f.name_string();
    const auto value = f.value();
    out.headers.emplace_back(std::string(name.data(), name.size()),
                             std::string(value.data(), value.size()));
  }
  out.body = std::move(req.body());
  return out;
}

asio::awaitable<error_code> write_response(ImplPtr self, std::shared_ptr<beast::tcp_stream> stream,
                                           HttpResponse r, unsigned version, bool keep_alive) {
  if (r.status < 100 || r.status > 599) r.status = 500;
  http::response<http::string_body> res;
  res.version(version);
  res.result(r.status);
  res.set(http::field::server, "pushgw-admin");
  res.set(http::field::content_type, r.content_type);
  for (const auto& [k, v] : r.headers) res.set(k, v);
  res.keep_alive(keep_alive);
  res.body() = std::move(r.body);
  res.prepare_payload();
  self->count(r.status);
  stream->expires_after(self->opts.read_timeout);
  auto [ec, n] = co_await http::async_write(*stream, res, asio::as_tuple(asio::use_awaitable));
  co_return ec;
}

/// After an error response: stop sending, then read and drop what the client
/// still sends (bounded) so that closing does not reset the connection before
/// the client has read the response.
asio::awaitable<void> linger_close(std::shared_ptr<beast::tcp_stream> stream,
                                   std::chrono::milliseconds limit) {
  error_code ec;
  stream->socket().shutdown(tcp::socket::shutdown_send, ec);
  stream->expires_after(std::min(limit, std::chrono::milliseconds(2000)));
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

asio::awaitable<void> session(ImplPtr self, uint64_t id,
                              std::shared_ptr<beast::tcp_stream> stream) {
  struct Unregister {
    ImplPtr self;
    uint64_t id;
    ~Unregister() { self->remove_session(id); }
  } unregister{self, id};

  beast::flat_buffer buffer(self->opts.max_header_bytes + 4096);
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(self->opts.max_header_bytes);
    parser.body_limit(self->opts.max_body_bytes);
    stream->expires_after(self->opts.read_timeout);
    auto [ec, n] =
        co_await http::async_read(*stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (is_client_gone(ec)) break;
      unsigned status = 400;
      if (ec == http::error::header_limit || ec == http::error::buffer_overflow) status = 431;
      if (ec == http::error::body_limit) status = 413;
      error_code peer_ec;
      const auto peer = stream->socket().remote_endpoint(peer_ec);
      logger("admin")->debug("bad request from {}: {}", peer.address().to_string(), ec.message());
      const auto wec = co_await write_response(
          self, stream, HttpResponse::text(status, "bad request: " + ec.message() + "\n"), 11,
          false);
      if (!wec) co_await linger_close(stream, self->opts.read_timeout);
      break;
    }
    auto req = parser.release();
    const unsigned version = req.version();
    bool keep_alive = req.keep_alive();
    HttpResponse res = co_await dispatch(self, to_request(std::move(req)));
    {
      std::lock_guard<std::mutex> lock(self->mu);
      keep_alive = keep_alive && !self->stopped;
    }
    const auto wec = co_await write_response(self, stream, std::move(res), version, keep_alive);
    if (wec || !keep_alive) break;
  }
  error_code ec;
  stream->socket().shutdown(tcp::socket::shutdown_both, ec);
  stream->close();
}

asio::awaitable<void> accept_loop(ImplPtr self) {
  for (;;) {
    tcp::socket socket(asio::make_strand(self->ex));
    auto [ec] = co_await self->acceptor.async_accept(socket, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) co_return;
      logger("admin")->warn("accept failed: {}", ec.message());
      // Out of descriptors and similar: pause instead of spinning.
      asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    const auto id = self->add_session(stream);
    if (!id) {
      self->rejected.Increment();
      error_code ignored;
      stream->socket().close(ignored);
      continue;
    }
    auto ex = stream->get_executor();
    spawn_logged(ex, session(self, *id, std::move(stream)), "admin connection");
  }
}

}  // namespace

AdminServer::AdminServer(asio::any_io_executor ex, AdminServerOptions options,
                         std::shared_ptr<Metrics> metrics)
    : impl_(std::make_shared<Impl>(std::move(ex), std::move(options), std::move(metrics))) {}

AdminServer::~AdminServer() { stop(); }

result<void> AdminServer::start() {
  error_code ec;
  const auto address = asio::ip::make_address(impl_->opts.bind_address, ec);
  if (ec) return ec;
  const tcp::endpoint endpoint(address, impl_->opts.port);
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    acceptor.close(ignored);
    return ec;
  }
  const auto local = acceptor.local_endpoint(ec);
  if (ec) return ec;
  impl_->port = local.port();
  logger("admin")->info("admin HTTP listening on {}:{}", local.address().to_string(), local.port());
  spawn_logged(impl_->accept_strand, accept_loop(impl_), "admin accept loop");
  return {};
}

uint16_t AdminServer::port() const { return impl_->port; }

void AdminServer::stop() {
  std::map<uint64_t, SessionRef> sessions;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    sessions = impl_->sessions;
  }
  asio::post(impl_->accept_strand, [self = impl_] {
    error_code ignored;
    self->acceptor.close(ignored);
  });
  for (auto& [id, ref] : sessions) {
    asio::post(ref.executor, [weak = ref.stream] {
      if (auto s = weak.lock()) {
        error_code ignored;
        s->socket().shutdown(tcp::socket::shutdown_both, ignored);
        s->socket().close(ignored);
      }
    });
  }
}

void AdminServer::handle(std::string method, std::string path, AdminHandler handler) {
  if (std::find(std::begin(kBuiltinPaths), std::end(kBuiltinPaths), path) !=
      std::end(kBuiltinPaths)) {
    throw std::invalid_argument("admin path " + path + " is built in");
  }
  if (path.empty() || path.front() != '/') {
    throw std::invalid_argument("admin path must start with '/': " + path);
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->handlers[std::move(path)][std::move(method)] = std::move(handler);
}

void AdminServer::add_readiness_check(std::string name, ReadinessCheck check) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto& [n, c] : impl_->checks) {
    if (n == name) {
      c = std::move(check);
      return;
    }
  }
  impl_->checks.emplace_back(std::move(name), std::move(check));
}

void AdminServer::add_readiness_flag(std::string name, ReadinessFlag flag) {
  add_readiness_check(std::move(name), [flag] { return flag_check(flag); });
}

void AdminServer::remove_readiness_check(std::string_view name) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::erase_if(impl_->checks, [name](const auto& c) { return c.first == name; });
}

}  // namespace pushgw::common
