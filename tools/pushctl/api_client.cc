#include "api_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <chrono>
#include <exception>

#include "common/auth/request_signature.h"

namespace pushgw::pushctl {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

result<ApiTarget> parse_api_url(const std::string& url) {
  auto u = boost::urls::parse_uri(url);
  if (!u || u->scheme() != "http" || u->host().empty()) return errc::invalid_argument;
  ApiTarget t;
  t.host = std::string(u->host());
  if (u->has_port()) t.port = std::string(u->port());
  t.base_path = std::string(u->encoded_path());
  while (!t.base_path.empty() && t.base_path.back() == '/') t.base_path.pop_back();
  return t;
}

namespace {

asio::awaitable<result<ApiResponse>> exchange(ApiTarget target, Credentials creds,
                                              std::string method, std::string path,
                                              std::string body, std::chrono::milliseconds timeout) {
  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  auto [rec, endpoints] = co_await resolver.async_resolve(target.host, target.port,
                                                          asio::as_tuple(asio::use_awaitable));
  if (rec) co_return rec;
  beast::tcp_stream stream(ex);
  stream.expires_after(timeout);
  auto [cec, ep] = co_await stream.async_connect(endpoints, asio::as_tuple(asio::use_awaitable));
  if (cec) co_return cec;

  const std::string path_and_query = target.base_path + path;
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(path_and_query);
  req.version(11);
  req.set(http::field::host, target.host + ":" + target.port);
  req.set(http::field::user_agent, "pushctl");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  if (!creds.app_id.empty()) {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const std::string ts = std::to_string(now);
    req.set("X-App-Id", creds.app_id);
    req.set("X-Timestamp", ts);
    req.set("X-Signature", auth::sign_request(creds.api_secret, method, path_and_query, ts, body));
  }
  req.keep_alive(false);
  req.body() = std::move(body);
  req.prepare_payload();
  auto [wec, wn] = co_await http::async_write(stream, req, asio::as_tuple(asio::use_awaitable));
  if (wec) co_return wec;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  auto [ec, n] =
      co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
  if (ec) co_return ec;
  ApiResponse out;
  out.status = parser.get().result_int();
  out.body = std::move(parser.get().body());
  co_return out;
}

}  // namespace

result<ApiResponse> call_api(const ApiTarget& target, const Credentials& creds,
                             const std::string& method, const std::string& path_and_query,
                             const std::string& body, std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  result<ApiResponse> out = make_error_code(errc::timeout);
  std::exception_ptr failure;
  asio::co_spawn(ioc, exchange(target, creds, method, path_and_query, body, timeout),
                 [&](std::exception_ptr e, result<ApiResponse> r) {
                   failure = e;
                   if (!e) out = std::move(r);
                 });
  ioc.run_for(timeout + std::chrono::milliseconds(500));
  if (failure) std::rethrow_exception(failure);
  return out;
}

}  // namespace pushgw::pushctl
