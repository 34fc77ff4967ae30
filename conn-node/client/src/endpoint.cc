#include "pushgw_client/endpoint.h"

#include <charconv>

namespace pushgw::client {

std::string_view to_string(Transport t) noexcept {
  switch (t) {
    case Transport::kTcp:
      return "tcp";
    case Transport::kTls:
      return "tls";
    case Transport::kWs:
      return "ws";
    case Transport::kWss:
      return "wss";
  }
  return "?";
}

result<Endpoint> parse_endpoint(std::string_view url) {
  const auto bad = make_error_code(errc::invalid_argument);
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad;
  }
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return bad;
  const std::string_view scheme = url.substr(0, sep);
  Endpoint e;
  if (scheme == "tcp") {
    e.transport = Transport::kTcp;
  } else if (scheme == "tls") {
    e.transport = Transport::kTls;
  } else if (scheme == "ws") {
    e.transport = Transport::kWs;
  } else if (scheme == "wss") {
    e.transport = Transport::kWss;
  } else {
    return bad;
  }
  std::string_view rest = url.substr(sep + 3);
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  const std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return bad;

  std::string_view host;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad;
    host = authority.substr(1, close - 1);
    if (host.find(':') == std::string_view::npos) return bad;  // brackets only for IPv6
    const std::string_view after = authority.substr(close + 1);
    if (after.size() < 2 || after.front() != ':') return bad;
    port = after.substr(1);
  } else {
    const size_t colon = authority.rfind(':');
    if (colon == std::string_view::npos) return bad;
    host = authority.substr(0, colon);
    if (host.find(':') != std::string_view::npos) return bad;  // IPv6 needs brackets
    port = authority.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5) return bad;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
    return bad;
  }
  e.host = std::string(host);
  e.port = static_cast<uint16_t>(value);
  if (uses_websocket(e.transport)) {
    if (!path.empty()) e.ws_path = std::string(path);
  } else if (!path.empty() && path != "/") {
    return bad;
  }
  return e;
}

std::string host_port(const Endpoint& e) {
  std::string out;
  if (e.host.find(':') != std::string::npos) {
    out.append("[").append(e.host).append("]");
  } else {
    out.append(e.host);
  }
  out.append(":").append(std::to_string(e.port));
  return out;
}

std::string to_url(const Endpoint& e) {
  std::string out(to_string(e.transport));
  out.append("://").append(host_port(e));
  if (uses_websocket(e.transport)) out.append(e.ws_path);
  return out;
}

}  // namespace pushgw::client
