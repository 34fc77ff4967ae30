#pragma once
/// The Redis key schema of RedisStatusStore (see status-store/README.md).
/// Keys that one Lua script touches share a hash tag, so each script runs on
/// one Redis Cluster slot:
///   <p>:d:{app:device}  string "1\nepoch\nnode\nsession\nplatform\nuid\nsince\nseen"
///                              (TTL = lease)
///   <p>:e:{app:device}  string epoch counter of the device (TTL = device_meta_ttl)
///   <p>:q:{app:device}  string downstream seq counter (TTL = device_meta_ttl)
///   <p>:o:{app:device}  string user id of the device's latest registration
///                              (TTL = device_meta_ttl)
///   <p>:u:{app:user}    hash   device -> epoch: the user's devices (TTL >= longest lease)
///   <p>:uk:{app:user}   hash   device -> last registration ms: devices registered under
///                              the user within device_meta_ttl (TTL = device_meta_ttl)
///   <p>:ao:{app:shard}  zset   device -> lease expiry (store clock, ms): the app's online
///                              devices, kOnlineShards shards by device hash
///   <p>:{nodes}:info    hash   node -> "1\ntcp\ntls\nws\nwss\nconnections\ndraining"
///   <p>:{nodes}:exp     zset   node -> lease expiry (Redis TIME, ms)
///   <p>:t:{app:topic}   hash   node -> subscriber count
///   <p>:nt:{node}       set    "app:topic" entries the node has counts in
///   <p>:m:{message_id}  hash   counter -> value (TTL set by incr_counters)
///   <p>:i:{app:key}     string idempotency value (TTL set by put_idempotency)
/// App ids never contain ':', '{' or '}', so "app:rest" is unambiguous.
#include <string>
#include <string_view>

#include <array>
#include <string_view>

#include "common/error.h"

namespace pushgw::status_store {

class RedisKeys {
 public:
  /// `prefix` must be non-empty and free of '{' and '}' (see validate_prefix).
  explicit RedisKeys(std::string prefix = "pgw");

  const std::string& prefix() const { return prefix_; }
  std::string device(std::string_view app, std::string_view device) const;
  std::string epoch(std::string_view app, std::string_view device) const;
  std::string seq(std::string_view app, std::string_view device) const;
  std::string user(std::string_view app, std::string_view user) const;
  std::string nodes_info() const;
  std::string nodes_expiry() const;
  std::string topic(std::string_view app, std::string_view topic) const;
  std::string node_topics(std::string_view node) const;
  std::string counters(std::string_view message_id) const;
  std::string idempotency(std::string_view app, std::string_view key) const;
  std::string owner(std::string_view app, std::string_view device) const;
  std::string user_known(std::string_view app, std::string_view user) const;
  std::string app_online(std::string_view app, unsigned shard) const;
  /// Keys as pieces for redis::CommandBuffer::arg_concat() (views of this
  /// object and the arguments; concatenated, the key the function of the
  /// same name without `_pieces` returns). Hot paths: no string built.
  using KeyPieces = std::array<std::string_view, 6>;
  KeyPieces device_pieces(std::string_view app, std::string_view device) const;
  KeyPieces seq_pieces(std::string_view app, std::string_view device) const;
  KeyPieces counters_pieces(std::string_view message_id) const;
  /// The app_online() shard of a device (stable FNV-1a hash of the id).
  static unsigned online_shard(std::string_view device);

 private:
  std::string tagged(char kind1, char kind2, std::string_view a, std::string_view b) const;
  /// tagged() as pieces; `infix` is ":<kind>:{" (a string literal).
  KeyPieces tagged_pieces(std::string_view infix, std::string_view a, std::string_view b) const;
  std::string prefix_;
};

/// Shards of each app's online index (so one big app spreads over Redis Cluster slots).
inline constexpr unsigned kOnlineShards = 16;

/// Limits on identifiers (bytes).
inline constexpr std::size_t kMaxAppIdLength = 64;
inline constexpr std::size_t kMaxIdLength = 256;

/// Key prefix: 1..64 bytes, no '{', '}' or whitespace.
result<void> validate_prefix(std::string_view prefix);
/// App id: 1..64 bytes, none of ':', '{', '}', whitespace or control bytes.
result<void> validate_app_id(std::string_view app);
/// Node id: 1..256 bytes, no '{', '}', whitespace or control bytes.
result<void> validate_node_id(std::string_view node);
/// Device id, topic, message id, idempotency key: 1..256 bytes, no control bytes.
result<void> validate_id(std::string_view id);
/// User id: like validate_id() but may be empty (no user).
result<void> validate_user_id(std::string_view user);

}  // namespace pushgw::status_store
