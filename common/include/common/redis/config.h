#pragma once
/// Configuration of the Redis client: where the nodes are and how patient to be.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pushgw::redis {

/// One Redis node address.
struct Endpoint {
  std::string host;
  std::uint16_t port = 6379;

  /// "host:port".
  std::string to_string() const;
  bool operator==(const Endpoint&) const = default;
};

/// Parses "host:port", "redis://host:port" or "redis://host" (port 6379).
/// errc::invalid_argument on anything else (bad port, empty host, user info).
result<Endpoint> parse_endpoint(std::string_view text);

/// Timeouts and limits of one node connection.
struct ConnectionOptions {
  /// One TCP connect attempt (resolve + connect).
  std::chrono::milliseconds connect_timeout{1000};
  /// A command or pipeline that has no reply after this fails with errc::timeout.
  std::chrono::milliseconds request_timeout{2000};
  /// Reconnect backoff: starts at min, doubles per failed attempt, capped at max.
  std::chrono::milliseconds reconnect_min{50};
  std::chrono::milliseconds reconnect_max{2000};
  /// Commands in flight on one connection before new ones fail with errc::queue_full.
  std::size_t max_pending = 1'000'000;
};

struct ClientConfig {
  enum class Mode { standalone, cluster };

  Mode mode = Mode::standalone;
  /// Standalone: exactly one node. Cluster: seed nodes (any subset of the
  /// cluster; the rest is discovered with CLUSTER SLOTS).
  std::vector<Endpoint> nodes;
  /// Value of the `client` label on the client's metrics.
  std::string name = "redis";
  ConnectionOptions connection;
  /// MOVED / ASK / TRYAGAIN answers followed per command before errc::redirect_limit.
  int max_redirects = 5;
  /// Slot-map refreshes triggered by redirects or node failures are at least this far apart.
  std::chrono::milliseconds slot_refresh_interval{200};

  /// "redis://host:port" -> standalone; "redis-cluster://h1:p1,h2:p2,..." ->
  /// cluster with those seeds. errc::invalid_argument otherwise.
  static result<ClientConfig> parse(std::string_view uri);
};

}  // namespace pushgw::redis
