#include "status_store/redis_keys.h"

#include <cstdint>
#include <stdexcept>

namespace pushgw::status_store {
namespace {

bool has_control_or_space(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f || c == ' ') return true;
  }
  return false;
}

bool has_control(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

result<void> validate_prefix(std::string_view prefix) {
  if (prefix.empty() || prefix.size() > kMaxAppIdLength || has_control_or_space(prefix) ||
      prefix.find_first_of("{}") != std::string_view::npos) {
    return errc::invalid_argument;
  }
  return {};
}

result<void> validate_app_id(std::string_view app) {
  if (app.empty() || app.size() > kMaxAppIdLength || has_control_or_space(app) ||
      app.find_first_of(":{}") != std::string_view::npos) {
    return errc::invalid_argument;
  }
  return {};
}

result<void> validate_node_id(std::string_view node) {
  if (node.empty() || node.size() > kMaxIdLength || has_control_or_space(node) ||
      node.find_first_of("{}") != std::string_view::npos) {
    return errc::invalid_argument;
  }
  return {};
}

result<void> validate_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength || has_control(id)) return errc::invalid_argument;
  return {};
}

result<void> validate_user_id(std::string_view user) {
  if (user.empty()) return {};
  return validate_id(user);
}

RedisKeys::RedisKeys(std::string prefix) : prefix_(std::move(prefix)) {
  if (!validate_prefix(prefix_)) {
    throw std::invalid_argument("status store: bad key prefix '" + prefix_ +
                                "' (1..64 bytes, no braces or spaces)");
  }
}

std::string RedisKeys::tagged(char kind1, char kind2, std::string_view a,
                              std::string_view b) const {
  std::string k;
  k.reserve(prefix_.size() + a.size() + b.size() + 8);
  k += prefix_;
  k += ':';
  k += kind1;
  if (kind2) k += kind2;
  k += ":{";
  k += a;
  if (!b.empty()) {
    k += ':';
    k += b;
  }
  k += '}';
  return k;
}

RedisKeys::KeyPieces RedisKeys::tagged_pieces(std::string_view infix, std::string_view a,
                                              std::string_view b) const {
  if (b.empty()) return {prefix_, infix, a, "}", {}, {}};
  return {prefix_, infix, a, ":", b, "}"};
}

RedisKeys::KeyPieces RedisKeys::device_pieces(std::string_view app,
                                              std::string_view device) const {
  return tagged_pieces(":d:{", app, device);
}
RedisKeys::KeyPieces RedisKeys::seq_pieces(std::string_view app, std::string_view device) const {
  return tagged_pieces(":q:{", app, device);
}
RedisKeys::KeyPieces RedisKeys::counters_pieces(std::string_view message_id) const {
  return tagged_pieces(":m:{", message_id, {});
}

std::string RedisKeys::device(std::string_view app, std::string_view device) const {
  return tagged('d', 0, app, device);
}
std::string RedisKeys::epoch(std::string_view app, std::string_view device) const {
  return tagged('e', 0, app, device);
}
std::string RedisKeys::seq(std::string_view app, std::string_view device) const {
  return tagged('q', 0, app, device);
}
std::string RedisKeys::user(std::string_view app, std::string_view user) const {
  return tagged('u', 0, app, user);
}
std::string RedisKeys::nodes_info() const { return prefix_ + ":{nodes}:info"; }
std::string RedisKeys::nodes_expiry() const { return prefix_ + ":{nodes}:exp"; }
std::string RedisKeys::topic(std::string_view app, std::string_view topic) const {
  return tagged('t', 0, app, topic);
}
std::string RedisKeys::node_topics(std::string_view node) const {
  return tagged('n', 't', node, {});
}
std::string RedisKeys::counters(std::string_view message_id) const {
  return tagged('m', 0, message_id, {});
}
std::string RedisKeys::idempotency(std::string_view app, std::string_view key) const {
  return tagged('i', 0, app, key);
}
std::string RedisKeys::owner(std::string_view app, std::string_view device) const {
  return tagged('o', 0, app, device);
}
std::string RedisKeys::user_known(std::string_view app, std::string_view user) const {
  return tagged('u', 'k', app, user);
}
std::string RedisKeys::app_online(std::string_view app, unsigned shard) const {
  return tagged('a', 'o', app, std::to_string(shard));
}
unsigned RedisKeys::online_shard(std::string_view device) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : device) {
    h ^= c;
    h *= 16777619u;
  }
  return h % kOnlineShards;
}

}  // namespace pushgw::status_store
