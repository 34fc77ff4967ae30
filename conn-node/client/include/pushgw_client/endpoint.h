#pragma once
/// Where a device client connects: one of the four conn-node listeners
/// (device-protocol.md "Listeners") and its address, parsed from a URL:
///
///   tcp://host:7000   tls://host:7443   ws://host:7080/ws   wss://host:7444/ws
///
/// IPv6 literals go in brackets (`tcp://[::1]:7000`). The port is required.
/// For ws/wss the path defaults to "/ws"; tcp/tls URLs take no path.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace pushgw::client {

enum class Transport : uint8_t { kTcp, kTls, kWs, kWss };

/// "tcp", "tls", "ws" or "wss".
std::string_view to_string(Transport t) noexcept;
/// True for kTls and kWss.
constexpr bool uses_tls(Transport t) noexcept {
  return t == Transport::kTls || t == Transport::kWss;
}
/// True for kWs and kWss.
constexpr bool uses_websocket(Transport t) noexcept {
  return t == Transport::kWs || t == Transport::kWss;
}

struct Endpoint {
  Transport transport = Transport::kTcp;
  std::string host;  // name or IP literal (IPv6 without brackets)
  uint16_t port = 0;
  std::string ws_path = "/ws";  // request target for ws/wss, ignored otherwise

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

/// Parses a listener URL. errc::invalid_argument for an unknown scheme, a
/// missing/empty host, a missing, non-numeric or out-of-range port, a path on
/// tcp/tls, or control characters / spaces anywhere.
result<Endpoint> parse_endpoint(std::string_view url);

/// The URL form of `e` (round-trips through parse_endpoint).
std::string to_url(const Endpoint& e);

/// "host:port" with IPv6 hosts bracketed (used as the HTTP Host header and as
/// the TLS session cache key).
std::string host_port(const Endpoint& e);

}  // namespace pushgw::client
