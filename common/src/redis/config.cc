#include "common/redis/config.h"

#include <charconv>

namespace pushgw::redis {

std::string Endpoint::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

result<Endpoint> parse_endpoint(std::string_view text) {
  constexpr std::string_view kScheme = "redis://";
  if (text.substr(0, kScheme.size()) == kScheme) text.remove_prefix(kScheme.size());
  while (!text.empty() && text.back() == '/') text.remove_suffix(1);
  if (text.empty() || text.find_first_of("@/?# ") != std::string_view::npos) {
    return errc::invalid_argument;
  }
  Endpoint ep;
  std::string_view host = text;
  std::string_view port;
  if (text.front() == '[') {  // [v6]:port
    auto close = text.find(']');
    if (close == std::string_view::npos) return errc::invalid_argument;
    host = text.substr(1, close - 1);
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return errc::invalid_argument;
      port = rest.substr(1);
      if (port.empty()) return errc::invalid_argument;
    }
  } else if (auto colon = text.rfind(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (port.empty() || host.find(':') != std::string_view::npos) return errc::invalid_argument;
  }
  if (host.empty()) return errc::invalid_argument;
  ep.host = std::string(host);
  if (!port.empty()) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535) {
      return errc::invalid_argument;
    }
    ep.port = static_cast<std::uint16_t>(v);
  }
  return ep;
}

result<ClientConfig> ClientConfig::parse(std::string_view uri) {
  constexpr std::string_view kCluster = "redis-cluster://";
  ClientConfig cfg;
  if (uri.substr(0, kCluster.size()) == kCluster) {
    cfg.mode = Mode::cluster;
    std::string_view rest = uri.substr(kCluster.size());
    while (!rest.empty()) {
      auto comma = rest.find(',');
      auto item = rest.substr(0, comma);
      auto ep = parse_endpoint(item);
      if (!ep) return ep.error();
      cfg.nodes.push_back(std::move(*ep));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (cfg.nodes.empty()) return errc::invalid_argument;
    return cfg;
  }
  if (uri.substr(0, 8) != "redis://") return errc::invalid_argument;
  auto ep = parse_endpoint(uri);
  if (!ep) return ep.error();
  cfg.nodes.push_back(std::move(*ep));
  return cfg;
}

}  // namespace pushgw::redis
