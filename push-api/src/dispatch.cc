#include "push_api/dispatch.h"

#include <algorithm>
#include <utility>

namespace pushgw::push_api {

namespace {

uint64_t fnv1a(uint64_t h, std::string_view s) noexcept {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// splitmix64 finaliser: spreads FNV's weak low bits.
uint64_t mix(uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t dispatch_weight(std::string_view app_id, std::string_view device_id,
                         std::string_view node_id) noexcept {
  uint64_t h = 14695981039346656037ULL;
  h = fnv1a(h, app_id);
  h = fnv1a(h, "/");
  h = fnv1a(h, device_id);
  h = fnv1a(h, "@");
  h = fnv1a(h, node_id);
  return mix(h);
}

std::vector<status_store::NodeInfo> rank_nodes(std::vector<status_store::NodeInfo> nodes,
                                               std::string_view app_id, std::string_view device_id,
                                               std::size_t max) {
  std::vector<std::pair<uint64_t, status_store::NodeInfo>> live;
  live.reserve(nodes.size());
  for (auto& n : nodes) {
    const auto& e = n.endpoints;
    if (n.draining || (e.tcp.empty() && e.tls.empty() && e.ws.empty() && e.wss.empty())) continue;
    const uint64_t w = dispatch_weight(app_id, device_id, n.node_id);
    live.emplace_back(w, std::move(n));
  }
  std::sort(live.begin(), live.end(), [](const auto& a, const auto& b) {
    if (a.second.connections != b.second.connections) {
      return a.second.connections < b.second.connections;
    }
    if (a.first != b.first) return a.first < b.first;
    return a.second.node_id < b.second.node_id;
  });
  std::vector<status_store::NodeInfo> out;
  out.reserve(std::min(max, live.size()));
  for (auto& [w, n] : live) {
    if (out.size() >= max) break;
    out.push_back(std::move(n));
  }
  return out;
}

}  // namespace pushgw::push_api
