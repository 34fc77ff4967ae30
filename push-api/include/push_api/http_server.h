#pragma once
/// The HTTP/1.1 listener of push-api (Boost.Beast, coroutines, keep-alive).
///
/// Each connection is one coroutine on its own strand of the executor given
/// at construction; it reads one request at a time (header first, so
/// `Expect: 100-continue` is answered and oversized bodies are refused before
/// they are read), calls the handler, writes the answer, and repeats while the
/// client keeps the connection alive.
///
/// Transport-level refusals use the push API's JSON error body and close the
/// connection: 413 payload_too_large (body above max_body_bytes), 431
/// (request line plus headers above max_header_bytes, or more than
/// max_headers fields), 400 invalid_argument (malformed HTTP). A connection
/// idle or slow past idle_timeout is closed. Connections beyond
/// max_connections are closed at once.
///
/// Thread-safety: every public method may be called from any thread.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/admin_server.h"
#include "common/error.h"

namespace prometheus {
class Registry;
}

namespace pushgw::push_api {

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  /// 0 picks a free port; read it back with port().
  uint16_t port = 8080;
  int backlog = 1024;
  uint32_t max_connections = 10'000;
  std::chrono::milliseconds idle_timeout{60'000};
  uint32_t max_body_bytes = 256 * 1024;
  uint32_t max_header_bytes = 8 * 1024;
  uint32_t max_headers = 64;
  /// Value of the Server header.
  std::string server_name = "pushgw-push-api";
  /// Executors that each run on exactly one thread (common::IoPool): new
  /// connections are spread over them round-robin and use them without a
  /// strand. Empty: every connection gets a strand of the server's executor.
  std::vector<boost::asio::any_io_executor> session_executors;
};

using HttpHandler =
    std::function<boost::asio::awaitable<common::HttpResponse>(common::HttpRequest)>;

class HttpServer {
 public:
  /// `metrics` (optional, must outlive the server) receives
  /// pushgw_push_api_connections and pushgw_push_api_connections_rejected_total.
  HttpServer(boost::asio::any_io_executor ex, HttpServerOptions options, HttpHandler handler,
             prometheus::Registry* metrics = nullptr);
  /// Calls stop().
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds, listens and starts accepting. Errors (bad address, port in use) as values.
  result<void> start();
  uint16_t port() const;
  /// Open connections.
  std::size_t connections() const;

  /// Graceful stop: closes the listener, closes idle connections, lets
  /// requests in progress finish (their connections close after the answer),
  /// and completes when every connection is gone or `grace` has passed; then
  /// closes whatever is left.
  boost::asio::awaitable<void> shutdown(std::chrono::milliseconds grace);
  /// Closes the listener and every connection at once. Idempotent.
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace pushgw::push_api
