#pragma once
/// The admin HTTP listener every pushgw binary runs (Boost.Beast, coroutines).
///
///   GET /healthz  200 "ok" while the process runs
///   GET /readyz   200 when every readiness check passes, else 503; JSON body
///                 {"ready":false,"checks":[{"name":"redis","ready":false},...]}
///   GET /metrics  Metrics::scrape(), content type text/plain; version=0.0.4
///   extra handlers registered by method and path (e.g. POST /admin/drain)
///   anything else: 404, or 405 with Allow when the path exists
///
/// HTTP/1.1 with keep-alive. Limits: header and body sizes (431 / 413, then
/// close), idle/read timeout (close), a cap on concurrent connections (extra
/// connections are closed at once). Malformed requests get 400 and the
/// connection is closed; the server keeps serving everyone else.
///
/// Threads: the accept loop and each connection run on their own strand of
/// the executor given at construction; handlers and readiness checks run on
/// the connection's strand. Every public method is thread-safe.
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/config.h"
#include "common/error.h"
#include "common/metrics.h"

namespace pushgw::common {

struct AdminServerOptions {
  /// Address to listen on; "0.0.0.0" for every interface.
  std::string bind_address = "127.0.0.1";
  /// 0 picks a free port; read it back with AdminServer::port().
  uint16_t port = 9100;
  /// Request line plus headers.
  uint32_t max_header_bytes = 8 * 1024;
  uint32_t max_body_bytes = 64 * 1024;
  /// Deadline for reading one request, idle keep-alive time included, and for
  /// writing one response.
  std::chrono::milliseconds read_timeout{10'000};
  /// Each readiness check counts as failed when it takes longer than this.
  std::chrono::milliseconds check_timeout{2'000};
  uint32_t max_connections = 64;
};

/// Declares admin.bind, admin.port, admin.max_header_bytes, admin.max_body_bytes,
/// admin.read_timeout_ms, admin.check_timeout_ms and admin.max_connections;
/// `proj` reaches the AdminServerOptions in T. `default_port` differs per binary.
template <class T, class Proj>
void add_admin_fields(ConfigSchema<T>& schema, Proj proj, uint16_t default_port) {
  const AdminServerOptions d;
  schema
      .field(
          "admin.bind", [proj](auto& c) -> auto& { return std::invoke(proj, c).bind_address; },
          d.bind_address, "address of the admin HTTP listener (/healthz, /readyz, /metrics)",
          non_empty())
      .field(
          "admin.port", [proj](auto& c) -> auto& { return std::invoke(proj, c).port; },
          default_port, "port of the admin HTTP listener; 0 picks a free port", range(0, 65535))
      .field(
          "admin.max_header_bytes",
          [proj](auto& c) -> auto& { return std::invoke(proj, c).max_header_bytes; },
          d.max_header_bytes, "largest accepted request line plus headers", range(256, 1 << 20))
      .field(
          "admin.max_body_bytes",
          [proj](auto& c) -> auto& { return std::invoke(proj, c).max_body_bytes; },
          d.max_body_bytes, "largest accepted request body", range(0, 64 << 20))
      .field(
          "admin.read_timeout_ms",
          [proj](auto& c) -> auto& { return std::invoke(proj, c).read_timeout; }, d.read_timeout,
          "deadline to read one request (idle keep-alive included)", range(10, 3'600'000))
      .field(
          "admin.check_timeout_ms",
          [proj](auto& c) -> auto& { return std::invoke(proj, c).check_timeout; }, d.check_timeout,
          "a readiness check slower than this counts as not ready", range(1, 60'000))
      .field(
          "admin.max_connections",
          [proj](auto& c) -> auto& { return std::invoke(proj, c).max_connections; },
          d.max_connections, "concurrent admin connections; extra ones are closed",
          range(1, 10'000));
}

struct HttpRequest {
  std::string method;  // "GET"
  std::string target;  // as sent: "/admin/drain?rate=100"
  std::string path;    // "/admin/drain"
  std::string query;   // "rate=100"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  /// The first header named `name` (case-insensitive), or "".
  std::string_view header(std::string_view name) const;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpResponse text(unsigned status, std::string body);
  static HttpResponse json(unsigned status, std::string body);
};

/// A registered endpoint. An escaping exception becomes a 500 (and is logged).
using AdminHandler = std::function<boost::asio::awaitable<HttpResponse>(HttpRequest)>;
/// A readiness check: true when ready. A check that throws or exceeds
/// check_timeout counts as not ready.
using ReadinessCheck = std::function<boost::asio::awaitable<bool>()>;

/// A readiness check whose value the owner sets (e.g. on connect/disconnect).
/// Cheap to copy; every copy shares the flag. Thread-safe.
class ReadinessFlag {
 public:
  explicit ReadinessFlag(bool initial = false)
      : value_(std::make_shared<std::atomic<bool>>(initial)) {}
  void set(bool ready) { value_->store(ready, std::memory_order_relaxed); }
  bool get() const { return value_->load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<std::atomic<bool>> value_;
};

class AdminServer {
 public:
  /// `metrics` is served on /metrics and gets the admin request counters.
  AdminServer(boost::asio::any_io_executor ex, AdminServerOptions options,
              std::shared_ptr<Metrics> metrics);
  /// Calls stop().
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  /// Binds, listens and starts accepting. Errors (bad address, port in use) as values.
  result<void> start();
  /// The bound port (after start()), useful with port 0.
  uint16_t port() const;
  /// Closes the listener and every open connection. Idempotent.
  void stop();

  /// Adds or replaces the handler of `method` `path` (exact match, no query).
  /// Throws std::invalid_argument for /healthz, /readyz and /metrics.
  void handle(std::string method, std::string path, AdminHandler handler);
  /// Adds or replaces the readiness check `name`.
  void add_readiness_check(std::string name, ReadinessCheck check);
  /// Adds a check backed by `flag` (set by its owner).
  void add_readiness_flag(std::string name, ReadinessFlag flag);
  void remove_readiness_check(std::string_view name);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace pushgw::common
