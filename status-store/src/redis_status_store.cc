#include "status_store/redis_status_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "scripts.h"

namespace pushgw::status_store {
namespace {

namespace asio = boost::asio;
using redis::Command;
using redis::Reply;

constexpr std::size_t kMaxEndpointLength = 256;

// Error replies that mean "the store is not serving right now".
errc classify(const Reply& err) {
  for (auto p : {"LOADING", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "BUSY", "OOM", "READONLY"}) {
    if (err.error_is(p)) return errc::unavailable;
  }
  return errc::protocol_error;
}

// A usable reply, or the transport error, or the error reply mapped to errc.
result<Reply> checked(result<Reply> r, std::string_view what) {
  if (!r) return r.error();
  if (r->is_error()) {
    spdlog::warn("status store: {}: redis answered {}", what, r->str());
    return classify(*r);
  }
  return r;
}

std::optional<std::uint64_t> to_u64(const Reply& r) {
  auto v = r.to_int();
  if (!v || *v < 0) return std::nullopt;
  return static_cast<std::uint64_t>(*v);
}

std::uint64_t u64_or_zero(const Reply& r) { return to_u64(r).value_or(0); }

std::string str_or_empty(const Reply& r) { return r.is_string() ? r.str() : std::string(); }

// result<bool> cannot be built implicitly from an error_code (bool ambiguity).
result<bool> bool_error(boost::system::error_code ec) {
  return result<bool>(boost::system::in_place_error, ec);
}

result<void> valid_lease(std::chrono::milliseconds lease) {
  if (lease.count() <= 0) return errc::invalid_argument;
  return {};
}

result<void> valid_registration(const DeviceRegistration& reg) {
  if (auto r = validate_app_id(reg.app_id); !r) return r;
  if (auto r = validate_id(reg.device_id); !r) return r;
  if (auto r = validate_node_id(reg.node_id); !r) return r;
  if (auto r = validate_user_id(reg.user_id); !r) return r;
  // Session and platform may be empty, but like every field of the device
  // record they must not contain control bytes (the record is '\n'-separated).
  for (const auto* f : {&reg.session_id, &reg.platform}) {
    if (!f->empty() && !validate_id(*f)) return errc::invalid_argument;
  }
  return {};
}

std::string encode_node(const NodeInfo& n) {
  std::string p = "1\n";
  for (const auto* e : {&n.endpoints.tcp, &n.endpoints.tls, &n.endpoints.ws, &n.endpoints.wss}) {
    p += *e;
    p += '\n';
  }
  p += std::to_string(n.connections);
  p += '\n';
  p += n.draining ? '1' : '0';
  if (!n.admin.empty()) {  // optional 8th field: readers accept 7 or 8
    p += '\n';
    p += n.admin;
  }
  return p;
}

std::optional<NodeInfo> decode_node(std::string id, std::string_view payload,
                                    std::string_view expiry) {
  std::vector<std::string_view> f;
  std::size_t start = 0;
  for (;;) {
    auto nl = payload.find('\n', start);
    f.push_back(payload.substr(start, nl == std::string_view::npos ? nl : nl - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  if ((f.size() != 7 && f.size() != 8) || f[0] != "1") return std::nullopt;
  NodeInfo n;
  n.node_id = std::move(id);
  n.endpoints =
      NodeEndpoints{std::string(f[1]), std::string(f[2]), std::string(f[3]), std::string(f[4])};
  auto [p, ec] = std::from_chars(f[5].data(), f[5].data() + f[5].size(), n.connections);
  if (ec != std::errc()) return std::nullopt;
  n.draining = f[6] == "1";
  if (f.size() == 8) n.admin = std::string(f[7]);
  double exp = 0;
  auto [p2, ec2] = std::from_chars(expiry.data(), expiry.data() + expiry.size(), exp);
  if (ec2 == std::errc() && exp > 0) n.lease_expires_ms = static_cast<std::uint64_t>(exp);
  return n;
}

template <class T>
bool parse_uint(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// A device record (GET of the device key): nil -> offline. The value is
// "1\nepoch\nnode\nsession\nplatform\nuid\nsince\nseen" (see scripts.cc);
// one string keeps a lookup a single GET, about 4x cheaper for Redis than
// HMGET of seven hash fields.
bool split_status(const Reply& r, std::string_view (&f)[8]) {
  if (!r.is_string()) return false;
  std::string_view v(r.str());
  std::size_t n = 0;
  while (n < 8) {
    auto nl = v.find('\n');
    f[n++] = v.substr(0, nl);
    if (nl == std::string_view::npos) break;
    v.remove_prefix(nl + 1);
  }
  return n == 8 && f[0] == "1";
}

// The routing part of a device record (resolve(): thousands per batch, so
// no strings for the session, platform and user): nil or malformed -> offline.
std::optional<DeviceRoute> decode_route(const Reply& r) {
  std::string_view f[8];
  if (!split_status(r, f)) return std::nullopt;
  DeviceRoute s;
  if (!parse_uint(f[1], s.epoch) || !parse_uint(f[6], s.connected_at_ms)) return std::nullopt;
  std::uint64_t seen = 0;
  if (!parse_uint(f[7], seen)) return std::nullopt;
  s.node_id = f[2];
  return s;
}

std::optional<DeviceStatus> decode_status(const Reply& r) {
  std::string_view f[8];
  if (!split_status(r, f)) return std::nullopt;
  DeviceStatus s;
  if (!parse_uint(f[1], s.epoch)) return std::nullopt;
  s.node_id = f[2];
  s.session_id = f[3];
  s.platform = f[4];
  s.user_id = f[5];
  if (!parse_uint(f[6], s.connected_at_ms) || !parse_uint(f[7], s.last_seen_ms)) {
    return std::nullopt;
  }
  return s;
}

Command status_query(const std::string& key) { return Command{"GET", key}; }

// The first failure of a pipeline, if any.
result<void> first_failure(std::vector<result<Reply>>& rs, std::string_view what) {
  for (auto& r : rs) {
    if (!r) return r.error();
    if (r->is_error()) {
      spdlog::warn("status store: {}: redis answered {}", what, r->str());
      return classify(*r);
    }
  }
  return {};
}

result<void> validate_counter_update(const CounterUpdate& u) {
  if (auto v = validate_id(u.message_id); !v) return v;
  if (auto v = valid_lease(u.ttl); !v) return v;
  if (u.deltas.empty()) return errc::invalid_argument;
  for (const auto& d : u.deltas) {
    if (auto v = validate_id(d.first); !v) return v;
  }
  return {};
}

}  // namespace

RedisStatusStore::RedisStatusStore(std::shared_ptr<redis::Client> client,
                                   RedisStatusStoreOptions options, const Clock& clock)
    : client_(std::move(client)),
      options_(std::move(options)),
      clock_(clock),
      keys_(options_.key_prefix) {}

RedisStatusStore::~RedisStatusStore() = default;

asio::awaitable<result<void>> RedisStatusStore::ping() {
  Command cmd{"PING"};
  auto r = checked(co_await client_->exec(std::move(cmd)), "ping");
  if (!r) co_return r.error();
  co_return result<void>{};
}

Command RedisStatusStore::online_add(const std::string& app_id, const std::string& device_id,
                                     std::uint64_t expires_ms) const {
  Command c{"ZADD", keys_.app_online(app_id, RedisKeys::online_shard(device_id))};
  c.arg(expires_ms).arg(device_id);
  return c;
}

asio::awaitable<result<Registered>> RedisStatusStore::register_device(DeviceRegistration reg,
                                                                      Lease lease) {
  return do_register(std::move(reg), 0, lease);
}

asio::awaitable<result<Registered>> RedisStatusStore::reregister_device(DeviceRegistration reg,
                                                                        std::uint64_t epoch,
                                                                        Lease lease) {
  if (epoch == 0) co_return errc::invalid_argument;
  co_return co_await do_register(std::move(reg), epoch, lease);
}

asio::awaitable<result<Registered>> RedisStatusStore::do_register(DeviceRegistration reg,
                                                                  std::uint64_t fence,
                                                                  Lease lease) {
  if (auto v = valid_registration(reg); !v) co_return v.error();
  if (auto v = valid_lease(lease); !v) co_return v.error();
  const auto now = clock_.now_ms();
  auto cmd = Command::evalsha(scripts::register_device(), 4);
  cmd.arg(keys_.device(reg.app_id, reg.device_id))
      .arg(keys_.epoch(reg.app_id, reg.device_id))
      .arg(keys_.seq(reg.app_id, reg.device_id))
      .arg(keys_.owner(reg.app_id, reg.device_id))
      .arg(reg.node_id)
      .arg(reg.session_id)
      .arg(reg.platform)
      .arg(reg.user_id)
      .arg(reg.connected_at_ms)
      .arg(lease.count())
      .arg(options_.device_meta_ttl.count())
      .arg(now)
      .arg(fence)
      .arg(counter_seed(now));
  auto r = checked(co_await client_->exec(std::move(cmd)), "register_device");
  if (!r) co_return r.error();
  const auto& e = r->elements();
  if (!r->is_array() || e.empty() || !e[0].is_integer()) co_return errc::protocol_error;
  if (e[0].integer() < 0) co_return errc::stale_epoch;
  Registered out;
  out.epoch = static_cast<std::uint64_t>(e[0].integer());
  if (e.size() == 5) {
    out.previous = PreviousRegistration{str_or_empty(e[2]), str_or_empty(e[3]), u64_or_zero(e[1]),
                                        str_or_empty(e[4])};
  }

  // User and app indexes: best effort. The registration stands even if this
  // fails; the next lease refresh adds the user and online entries again.
  std::vector<Command> index;
  if (!reg.user_id.empty()) {
    auto add = Command::evalsha(scripts::user_add(), 1);
    add.arg(keys_.user(reg.app_id, reg.user_id))
        .arg(reg.device_id)
        .arg(out.epoch)
        .arg(lease.count());
    index.push_back(std::move(add));
    const auto known = keys_.user_known(reg.app_id, reg.user_id);
    Command hset{"HSET", known, reg.device_id};
    hset.arg(now);
    index.push_back(std::move(hset));
    Command expire{"PEXPIRE", known};
    expire.arg(options_.device_meta_ttl.count());
    index.push_back(std::move(expire));
  }
  index.push_back(
      online_add(reg.app_id, reg.device_id, now + static_cast<std::uint64_t>(lease.count())));
  if (out.previous && !out.previous->user_id.empty() && out.previous->user_id != reg.user_id) {
    auto rm = Command::evalsha(scripts::user_remove(), 1);
    rm.arg(keys_.user(reg.app_id, out.previous->user_id))
        .arg(reg.device_id)
        .arg(out.previous->epoch);
    index.push_back(std::move(rm));
  }
  if (!index.empty()) {
    auto rs = co_await client_->exec_pipeline(std::move(index));
    if (auto f = first_failure(rs, "user index"); !f) {
      spdlog::warn("status store: user index update for {}/{} failed: {}", reg.app_id,
                   reg.device_id, f.error().message());
    }
  }
  co_return out;
}

asio::awaitable<result<bool>> RedisStatusStore::unregister_device(std::string app_id,
                                                                  std::string device_id,
                                                                  std::uint64_t epoch) {
  if (auto v = validate_app_id(app_id); !v) co_return bool_error(v.error());
  if (auto v = validate_id(device_id); !v) co_return bool_error(v.error());
  auto cmd = Command::evalsha(scripts::unregister_device(), 2);
  cmd.arg(keys_.device(app_id, device_id)).arg(keys_.epoch(app_id, device_id)).arg(epoch);
  auto r = checked(co_await client_->exec(std::move(cmd)), "unregister_device");
  if (!r) co_return bool_error(r.error());
  const auto& e = r->elements();
  if (!r->is_array() || e.empty() || !e[0].is_integer()) co_return bool_error(errc::protocol_error);
  if (e[0].integer() < 0) co_return bool_error(errc::stale_epoch);
  if (e[0].integer() == 0) co_return false;
  std::string uid = e.size() > 1 ? str_or_empty(e[1]) : std::string();
  std::vector<Command> index;
  index.push_back(
      Command{"ZREM", keys_.app_online(app_id, RedisKeys::online_shard(device_id)), device_id});
  if (!uid.empty()) {
    auto rm = Command::evalsha(scripts::user_remove(), 1);
    rm.arg(keys_.user(app_id, uid)).arg(device_id).arg(epoch);
    index.push_back(std::move(rm));
  }
  auto rs = co_await client_->exec_pipeline(std::move(index));
  if (auto f = first_failure(rs, "unregister index"); !f) {
    spdlog::warn("status store: index removal for {}/{} failed: {}", app_id, device_id,
                 f.error().message());
  }
  co_return true;
}

asio::awaitable<result<std::vector<LeaseState>>> RedisStatusStore::refresh_leases(
    std::string node_id, std::vector<LeaseRef> leases, Lease lease) {
  if (auto v = validate_node_id(node_id); !v) co_return v.error();
  if (auto v = valid_lease(lease); !v) co_return v.error();
  for (const auto& l : leases) {
    if (!validate_app_id(l.app_id) || !validate_id(l.device_id) || !validate_user_id(l.user_id)) {
      co_return errc::invalid_argument;
    }
  }
  const auto now = clock_.now_ms();
  std::vector<Command> cmds;
  cmds.reserve(leases.size() * 2);
  for (const auto& l : leases) {
    auto c = Command::evalsha(scripts::refresh_lease(), 2);
    c.arg(keys_.device(l.app_id, l.device_id))
        .arg(keys_.epoch(l.app_id, l.device_id))
        .arg(l.epoch)
        .arg(lease.count())
        .arg(now)
        .arg(node_id);
    cmds.push_back(std::move(c));
  }
  // Re-assert user index entries in the same round trip (heals lost entries
  // and keeps the index alive as long as its devices), and move the devices'
  // expiry in their app's online index.
  for (const auto& l : leases) {
    if (l.user_id.empty()) continue;
    auto c = Command::evalsha(scripts::user_add(), 1);
    c.arg(keys_.user(l.app_id, l.user_id)).arg(l.device_id).arg(l.epoch).arg(lease.count());
    cmds.push_back(std::move(c));
  }
  for (const auto& l : leases) {
    cmds.push_back(
        online_add(l.app_id, l.device_id, now + static_cast<std::uint64_t>(lease.count())));
  }
  auto rs = co_await client_->exec_pipeline(std::move(cmds));
  std::vector<LeaseState> out;
  out.reserve(leases.size());
  for (std::size_t i = 0; i < leases.size(); ++i) {
    auto r = checked(std::move(rs[i]), "refresh_leases");
    if (!r) co_return r.error();
    if (!r->is_integer()) co_return errc::protocol_error;
    auto v = r->integer();
    out.push_back(v > 0 ? LeaseState::refreshed : v == 0 ? LeaseState::missing : LeaseState::stale);
  }
  co_return out;
}

asio::awaitable<result<std::vector<std::optional<DeviceStatus>>>> RedisStatusStore::lookup(
    std::string app_id, std::vector<std::string> device_ids) {
  if (auto v = validate_app_id(app_id); !v) co_return v.error();
  std::vector<Command> cmds;
  cmds.reserve(device_ids.size());
  for (const auto& d : device_ids) {
    if (!validate_id(d)) co_return errc::invalid_argument;
    cmds.push_back(status_query(keys_.device(app_id, d)));
  }
  auto rs = co_await client_->exec_pipeline(std::move(cmds));
  std::vector<std::optional<DeviceStatus>> out;
  out.reserve(rs.size());
  for (auto& r : rs) {
    if (!r) co_return r.error();
    if (r->is_error()) co_return classify(*r);
    out.push_back(decode_status(*r));
  }
  co_return out;
}

asio::awaitable<result<std::vector<std::string>>> RedisStatusStore::user_devices(
    std::string app_id, std::string user_id) {
  if (auto v = validate_app_id(app_id); !v) co_return v.error();
  if (user_id.empty() || !validate_id(user_id)) co_return errc::invalid_argument;
  const auto user_key = keys_.user(app_id, user_id);
  Command all{"HGETALL", user_key};
  auto r = checked(co_await client_->exec(std::move(all)), "user_devices");
  if (!r) co_return r.error();
  if (!r->is_array() || r->elements().size() % 2 != 0) co_return errc::protocol_error;
  const auto& e = r->elements();
  std::vector<std::pair<std::string, std::uint64_t>> entries;
  std::vector<Command> queries;
  for (std::size_t i = 0; i + 1 < e.size(); i += 2) {
    entries.emplace_back(str_or_empty(e[i]), u64_or_zero(e[i + 1]));
    queries.push_back(status_query(keys_.device(app_id, entries.back().first)));
  }
  auto rs = co_await client_->exec_pipeline(std::move(queries));
  std::vector<std::string> online;
  std::vector<Command> prune;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto& q = rs[i];
    if (!q) co_return q.error();
    if (q->is_error()) co_return classify(*q);
    auto st = decode_status(*q);
    if (st && st->user_id == user_id) {
      online.push_back(entries[i].first);
    } else {
      auto rm = Command::evalsha(scripts::user_remove(), 1);
      rm.arg(user_key).arg(entries[i].first).arg(entries[i].second);
      prune.push_back(std::move(rm));
    }
  }
  if (!prune.empty()) {
    auto pr = co_await client_->exec_pipeline(std::move(prune));
    if (auto f = first_failure(pr, "user index prune"); !f) {
      spdlog::debug("status store: pruning user index failed: {}", f.error().message());
    }
  }
  std::sort(online.begin(), online.end());
  co_return online;
}

asio::awaitable<result<std::vector<std::string>>> RedisStatusStore::user_known_devices(
    std::string app_id, std::string user_id) {
  if (auto v = validate_app_id(app_id); !v) co_return v.error();
  if (user_id.empty() || !validate_id(user_id)) co_return errc::invalid_argument;
  const auto known_key = keys_.user_known(app_id, user_id);
  Command all{"HGETALL", known_key};
  auto r = checked(co_await client_->exec(std::move(all)), "user_known_devices");
  if (!r) co_return r.error();
  if (!r->is_array() || r->elements().size() % 2 != 0) co_return errc::protocol_error;
  const auto& e = r->elements();
  std::vector<std::pair<std::string, std::string>> entries;
  std::vector<Command> owners;
  for (std::size_t i = 0; i + 1 < e.size(); i += 2) {
    entries.emplace_back(str_or_empty(e[i]), str_or_empty(e[i + 1]));
    owners.push_back(Command{"GET", keys_.owner(app_id, entries.back().first)});
  }
  auto rs = co_await client_->exec_pipeline(std::move(owners));
  std::vector<std::string> known;
  std::vector<Command> prune;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto owner = checked(std::move(rs[i]), "user_known_devices");
    if (!owner) co_return owner.error();
    if (owner->is_string() && owner->str() == user_id) {
      known.push_back(entries[i].first);
    } else {
      // Registered since under another user (or none), or forgotten: not this user's any more.
      auto rm = Command::evalsha(scripts::known_remove(), 1);
      rm.arg(known_key).arg(entries[i].first).arg(entries[i].second);
      prune.push_back(std::move(rm));
    }
  }
  if (!prune.empty()) {
    auto pr = co_await client_->exec_pipeline(std::move(prune));
    if (auto f = first_failure(pr, "known devices prune"); !f) {
      spdlog::debug("status store: pruning known devices failed: {}", f.error().message());
    }
  }
  std::sort(known.begin(), known.end());
  co_return known;
}

asio::awaitable<result<std::uint64_t>> RedisStatusStore::online_count(std::string app_id) {
  if (auto v = validate_app_id(app_id); !v) co_return v.error();
  const auto now = std::to_string(clock_.now_ms());
  std::vector<Command> cmds;
  cmds.reserve(2 * kOnlineShards);
  for (unsigned shard = 0; shard < kOnlineShards; ++shard) {
    const auto key = keys_.app_online(app_id, shard);
    cmds.push_back(Command{"ZREMRANGEBYSCORE", key, "-inf", now});
    cmds.push_back(Command{"ZCOUNT", key, "(" + now, "+inf"});
  }
  auto rs = co_await client_->exec_pipeline(std::move(cmds));
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    auto ok = checked(std::move(rs[i]), "online_count");
    if (!ok) co_return ok.error();
    if (i % 2 == 1) {
      auto v = to_u64(*ok);
      if (!v) co_return errc::protocol_error;
      total += *v;
    }
  }
  co_return total;
}

asio::awaitable<result<void>> RedisStatusStore::upsert_node(NodeInfo node, Lease lease) {
  if (auto v = validate_node_id(node.node_id); !v) co_return v.error();
  if (auto v = valid_lease(lease); !v) co_return v.error();
  for (const auto* e : {&node.endpoints.tcp, &node.endpoints.tls, &node.endpoints.ws,
                        &node.endpoints.wss, &node.admin}) {
    if (e->size() > kMaxEndpointLength || e->find('\n') != std::string::npos) {
      co_return errc::invalid_argument;
    }
  }
  auto cmd = Command::evalsha(scripts::node_upsert(), 2);
  cmd.arg(keys_.nodes_info())
      .arg(keys_.nodes_expiry())
      .arg(node.node_id)
      .arg(lease.count())
      .arg(encode_node(node));
  auto r = checked(co_await client_->exec(std::move(cmd)), "upsert_node");
  if (!r) co_return r.error();
  co_return result<void>{};
}

asio::awaitable<result<std::vector<NodeInfo>>> RedisStatusStore::list_nodes() {
  auto cmd = Command::evalsha(scripts::node_list(), 2);
  cmd.arg(keys_.nodes_info()).arg(keys_.nodes_expiry());
  auto r = checked(co_await client_->exec(std::move(cmd)), "list_nodes");
  if (!r) co_return r.error();
  if (!r->is_array() || r->elements().size() % 3 != 0) co_return errc::protocol_error;
  const auto& e = r->elements();
  std::vector<NodeInfo> out;
  for (std::size_t i = 0; i + 2 < e.size(); i += 3) {
    auto n = decode_node(str_or_empty(e[i]), str_or_empty(e[i + 1]), str_or_empty(e[i + 2]));
    if (!n) {
      spdlog::warn("status store: skipping malformed node entry '{}'", str_or_empty(e[i]));
      continue;
    }
    out.push_back(std::move(*n));
  }
  std::sort(out.begin(), out.end(),
            [](const NodeInfo& a, const NodeInfo& b) { return a.node_id < b.node_id; });
  co_return out;
}

asio::awaitable<result<bool>> RedisStatusStore::remove_node(std::string node_id) {
  if (auto v = validate_node_id(node_id); !v) co_return bool_error(v.error());
  auto cmd = Command::evalsha(scripts::node_remove(), 2);
  cmd.arg(keys_.nodes_info()).arg(keys_.nodes_expiry()).arg(node_id);
  auto r = checked(co_await client_->exec(std::move(cmd)), "remove_node");
  if (!r) co_return bool_error(r.error());
  co_return r->integer() > 0;
}

asio::awaitable<result<std::int64_t>> RedisStatusStore::topic_add(std::string app_id,
                                                                  std::string topic,
                                                                  std::string node_id,
                                                                  std::int64_t delta) {
  if (auto v = validate_app_id(app_id); !v) co_return v.error();
  if (auto v = validate_id(topic); !v) co_return v.error();
  if (auto v = validate_node_id(node_id); !v) co_return v.error();
  std::vector<Command> cmds;
  auto add = Command::evalsha(scripts::topic_add(), 1);
  add.arg(keys_.topic(app_id, topic)).arg(node_id).arg(delta);
  cmds.push_back(std::move(add));
  if (delta > 0) {
    // The node's index of its topics (a superset: entries are only dropped by
    // clear_node_topics), so a dead node's counts can be found and removed.
    cmds.push_back(Command{"SADD", keys_.node_topics(node_id), app_id + ":" + topic});
  }
  auto rs = co_await client_->exec_pipeline(std::move(cmds));
  if (auto f = first_failure(rs, "topic_add"); !f) co_return f.error();
  if (!rs[0]->is_integer()) co_return errc::protocol_error;
  co_return rs[0]->integer();
}

asio::awaitable<result<std::map<std::string, std::int64_t>>> RedisStatusStore::topic_nodes(
    std::string app_id, std::string topic) {
  if (auto v = validate_app_id(app_id); !v) co_return v.error();
  if (auto v = validate_id(topic); !v) co_return v.error();
  Command cmd{"HGETALL", keys_.topic(app_id, topic)};
  auto r = checked(co_await client_->exec(std::move(cmd)), "topic_nodes");
  if (!r) co_return r.error();
  if (!r->is_array() || r->elements().size() % 2 != 0) co_return errc::protocol_error;
  std::map<std::string, std::int64_t> out;
  const auto& e = r->elements();
  for (std::size_t i = 0; i + 1 < e.size(); i += 2) {
    auto n = e[i + 1].to_int();
    if (n && *n > 0) out.emplace(str_or_empty(e[i]), *n);
  }
  co_return out;
}

asio::awaitable<result<std::size_t>> RedisStatusStore::clear_node_topics(std::string node_id) {
  if (auto v = validate_node_id(node_id); !v) co_return v.error();
  // Move the index aside first so topic_add() calls racing with us land in a
  // fresh index instead of being lost.
  const auto index = keys_.node_topics(node_id);
  const auto clearing = index + ":clearing";
  Command rename{"RENAME", index, clearing};
  auto rn = co_await client_->exec(std::move(rename));
  if (!rn) co_return rn.error();
  if (rn->is_error() && !rn->error_is("ERR")) co_return classify(*rn);
  Command members{"SMEMBERS", clearing};
  auto m = checked(co_await client_->exec(std::move(members)), "clear_node_topics");
  if (!m) co_return m.error();
  std::vector<Command> dels;
  for (const auto& entry : m->elements()) {
    const auto& s = entry.str();
    auto colon = s.find(':');
    if (colon == std::string::npos) continue;
    dels.push_back(Command{"HDEL", keys_.topic(s.substr(0, colon), s.substr(colon + 1)), node_id});
  }
  auto rs = co_await client_->exec_pipeline(std::move(dels));
  std::size_t removed = 0;
  for (auto& r : rs) {
    auto ok = checked(std::move(r), "clear_node_topics");
    if (!ok) co_return ok.error();  // index kept aside: a retry finds it again
    removed += static_cast<std::size_t>(std::max<std::int64_t>(0, ok->integer()));
  }
  Command del{"DEL", clearing};
  auto d = checked(co_await client_->exec(std::move(del)), "clear_node_topics");
  if (!d) co_return d.error();
  co_return removed;
}

asio::awaitable<result<std::uint64_t>> RedisStatusStore::next_seq(std::string app_id,
                                                                  std::string device_id) {
  std::vector<DeviceRef> one;
  one.push_back(DeviceRef{std::move(app_id), std::move(device_id)});
  auto r = co_await next_seqs(std::move(one));
  if (!r) co_return r.error();
  co_return r->front();
}

asio::awaitable<result<std::vector<std::uint64_t>>> RedisStatusStore::next_seqs(
    std::vector<DeviceRef> devices) {
  std::vector<Command> cmds;
  std::vector<std::string> keys;
  cmds.reserve(devices.size());
  keys.reserve(devices.size());
  for (const auto& d : devices) {
    if (!validate_app_id(d.app_id) || !validate_id(d.device_id)) co_return errc::invalid_argument;
    keys.push_back(keys_.seq(d.app_id, d.device_id));
    cmds.push_back(Command{"INCR", keys.back()});
  }
  auto rs = co_await client_->exec_pipeline(std::move(cmds));
  std::vector<std::uint64_t> out;
  out.reserve(rs.size());
  for (auto& r : rs) {
    auto ok = checked(std::move(r), "next_seqs");
    if (!ok) co_return ok.error();
    auto v = to_u64(*ok);
    if (!v) co_return errc::protocol_error;
    out.push_back(*v);
  }
  if (auto s = co_await seed_new_counters(keys, out); !s) co_return s.error();
  co_return out;
}

asio::awaitable<result<void>> RedisStatusStore::seed_new_counters(
    const std::vector<std::string>& keys, std::vector<std::uint64_t>& seqs) {
  // INCR answers 1 only for a counter it just created. Seeding it then (not
  // with SET NX before every INCR) keeps the common case one plain command.
  // A fresh counter may have handed out 1..n to this pipeline (a device with
  // several messages in one batch): all n move above the seed together.
  std::vector<std::string> fresh_keys;
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    if (seqs[i] == 1) fresh_keys.push_back(keys[i]);
  }
  if (fresh_keys.empty()) co_return result<void>{};
  std::sort(fresh_keys.begin(), fresh_keys.end());
  fresh_keys.erase(std::unique(fresh_keys.begin(), fresh_keys.end()), fresh_keys.end());
  auto is_fresh = [&](const std::string& k) {
    return std::binary_search(fresh_keys.begin(), fresh_keys.end(), k);
  };
  std::vector<std::uint64_t> taken(fresh_keys.size(), 0);  // n per fresh key
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    if (!is_fresh(keys[i])) continue;
    const auto k = static_cast<std::size_t>(
        std::lower_bound(fresh_keys.begin(), fresh_keys.end(), keys[i]) - fresh_keys.begin());
    taken[k] = std::max(taken[k], seqs[i]);
  }
  const auto seed = counter_seed(clock_.now_ms());
  std::vector<Command> cmds;
  cmds.reserve(fresh_keys.size());
  for (std::size_t k = 0; k < fresh_keys.size(); ++k) {
    auto c = Command::evalsha(scripts::seq_seed(), 1);
    c.arg(fresh_keys[k]).arg(seed).arg(taken[k]);
    cmds.push_back(std::move(c));
  }
  auto rs = co_await client_->exec_pipeline(std::move(cmds));
  if (rs.size() != fresh_keys.size()) co_return errc::protocol_error;
  std::vector<std::uint64_t> base(fresh_keys.size(), 0);
  for (std::size_t k = 0; k < rs.size(); ++k) {
    auto ok = checked(std::move(rs[k]), "seq seed");
    if (!ok) co_return ok.error();
    auto v = to_u64(*ok);
    if (!v) co_return errc::protocol_error;
    base[k] = *v;
  }
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    if (!is_fresh(keys[i])) continue;
    const auto k = static_cast<std::size_t>(
        std::lower_bound(fresh_keys.begin(), fresh_keys.end(), keys[i]) - fresh_keys.begin());
    seqs[i] += base[k];
  }
  co_return result<void>{};
}

asio::awaitable<result<std::vector<Resolved>>> RedisStatusStore::resolve(
    std::vector<ResolveRequest> entries) {
  // Thousands of GET/INCR per call (the online router's batches): encoded
  // straight into one buffer, keys written from their pieces.
  redis::CommandBuffer cmds;
  cmds.reserve(entries.size() * 2, entries.size() * 2 * (keys_.prefix().size() + 48));
  std::size_t with_seq = 0;
  for (const auto& e : entries) {
    if (!validate_app_id(e.app_id) || !validate_id(e.device_id)) co_return errc::invalid_argument;
    cmds.begin(2).arg("GET").arg_concat(keys_.device_pieces(e.app_id, e.device_id));
    if (e.want_seq) {
      cmds.begin(2).arg("INCR").arg_concat(keys_.seq_pieces(e.app_id, e.device_id));
      ++with_seq;
    }
  }
  auto rs = co_await client_->exec_buffer(std::move(cmds));
  std::vector<Resolved> out(entries.size());
  std::vector<std::uint64_t> seqs;
  std::vector<std::size_t> seq_entry;
  seqs.reserve(with_seq);
  seq_entry.reserve(with_seq);
  bool fresh = false;
  std::size_t k = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (k >= rs.size()) co_return errc::protocol_error;
    auto& st = rs[k++];
    if (!st) co_return st.error();
    if (st->is_error()) co_return classify(*st);
    out[i].route = decode_route(*st);
    if (!entries[i].want_seq) continue;
    if (k >= rs.size()) co_return errc::protocol_error;
    auto ok = checked(std::move(rs[k++]), "resolve seq");
    if (!ok) co_return ok.error();
    auto v = to_u64(*ok);
    if (!v) co_return errc::protocol_error;
    seqs.push_back(*v);
    seq_entry.push_back(i);
    fresh = fresh || *v == 1;
  }
  if (fresh) {
    // Rare (a device's first message ever): the keys are built only then.
    std::vector<std::string> seq_keys;
    seq_keys.reserve(seq_entry.size());
    for (auto i : seq_entry) seq_keys.push_back(keys_.seq(entries[i].app_id, entries[i].device_id));
    if (auto s = co_await seed_new_counters(seq_keys, seqs); !s) co_return s.error();
  }
  for (std::size_t j = 0; j < seq_entry.size(); ++j) out[seq_entry[j]].seq = seqs[j];
  co_return out;
}

asio::awaitable<result<std::map<std::string, std::int64_t>>> RedisStatusStore::incr_counters(
    std::string message_id, std::vector<std::pair<std::string, std::int64_t>> deltas,
    std::chrono::milliseconds ttl) {
  if (auto v = validate_id(message_id); !v) co_return v.error();
  if (auto v = valid_lease(ttl); !v) co_return v.error();
  if (deltas.empty()) co_return errc::invalid_argument;
  // One pipeline of plain commands (one key, so one slot in a cluster): the
  // deltas, then PEXPIRE NX (a new hash gets the ttl) and PEXPIRE GT (an
  // existing one is only ever extended). ~3x cheaper for Redis than the
  // same in a Lua script (17.5 us per call measured), which push-api pays
  // on every accepted push. Needs Redis >= 7.0.
  const auto key = keys_.counters(message_id);
  std::vector<Command> cmds;
  cmds.reserve(deltas.size() + 2);
  for (const auto& [field, delta] : deltas) {
    if (!validate_id(field)) co_return errc::invalid_argument;
    Command c{"HINCRBY", key, field};
    c.arg_int(delta);
    cmds.push_back(std::move(c));
  }
  for (const char* flag : {"NX", "GT"}) {
    Command e{"PEXPIRE", key};
    e.arg_int(ttl.count());
    e.arg(flag);
    cmds.push_back(std::move(e));
  }
  auto rs = co_await client_->exec_pipeline(std::move(cmds));
  if (rs.size() != deltas.size() + 2) co_return errc::protocol_error;
  std::map<std::string, std::int64_t> out;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    auto r = checked(std::move(rs[i]), "incr_counters");
    if (!r) co_return r.error();
    if (i >= deltas.size()) continue;
    auto v = r->to_int();
    if (!v) co_return errc::protocol_error;
    out[deltas[i].first] = *v;
  }
  co_return out;
}

asio::awaitable<result<void>> RedisStatusStore::start_counters(
    std::string message_id, std::vector<std::pair<std::string, std::int64_t>> fields,
    std::chrono::milliseconds ttl) {
  if (auto v = validate_id(message_id); !v) co_return v.error();
  if (auto v = valid_lease(ttl); !v) co_return v.error();
  if (fields.empty()) co_return errc::invalid_argument;
  const auto key = keys_.counters(message_id);
  std::vector<Command> cmds;
  cmds.reserve(3);
  Command set{"HSET", key};
  for (const auto& [field, value] : fields) {
    if (!validate_id(field)) co_return errc::invalid_argument;
    set.arg(field).arg_int(value);
  }
  cmds.push_back(std::move(set));
  for (const char* flag : {"NX", "GT"}) {
    Command e{"PEXPIRE", key};
    e.arg_int(ttl.count());
    e.arg(flag);
    cmds.push_back(std::move(e));
  }
  auto rs = co_await client_->exec_pipeline(std::move(cmds));
  co_return first_failure(rs, "start_counters");
}

asio::awaitable<result<void>> RedisStatusStore::incr_counters_batch(
    std::vector<CounterUpdate> updates) {
  for (const auto& u : updates) {
    if (auto v = validate_counter_update(u); !v) co_return v.error();
  }
  if (updates.empty()) co_return result<void>{};
  // Plain HINCRBY/PEXPIRE rather than the incr_counters script: cheaper per
  // message, and per-message atomicity is not needed for adding deltas.
  redis::CommandBuffer cmds;
  cmds.reserve(updates.size() * 2, updates.size() * (keys_.prefix().size() + 96));
  for (const auto& u : updates) {
    const auto key = keys_.counters_pieces(u.message_id);
    if (u.set) {
      cmds.begin(2 + 2 * u.deltas.size()).arg("HSET").arg_concat(key);
      for (const auto& [field, value] : u.deltas) cmds.arg(field).arg_int(value);
    } else {
      for (const auto& [field, delta] : u.deltas) {
        cmds.begin(4).arg("HINCRBY").arg_concat(key).arg(field).arg_int(delta);
      }
    }
    if (u.keep_ttl) continue;
    cmds.begin(3).arg("PEXPIRE").arg_concat(key).arg_int(u.ttl.count());
  }
  auto rs = co_await client_->exec_buffer(std::move(cmds));
  co_return first_failure(rs, "incr_counters_batch");
}

asio::awaitable<result<std::map<std::string, std::int64_t>>> RedisStatusStore::get_counters(
    std::string message_id) {
  if (auto v = validate_id(message_id); !v) co_return v.error();
  Command cmd{"HGETALL", keys_.counters(message_id)};
  auto r = checked(co_await client_->exec(std::move(cmd)), "get_counters");
  if (!r) co_return r.error();
  if (!r->is_array() || r->elements().size() % 2 != 0) co_return errc::protocol_error;
  std::map<std::string, std::int64_t> out;
  const auto& e = r->elements();
  for (std::size_t i = 0; i + 1 < e.size(); i += 2) {
    auto v = e[i + 1].to_int();
    if (!v) co_return errc::protocol_error;
    out.emplace(str_or_empty(e[i]), *v);
  }
  co_return out;
}

asio::awaitable<result<std::optional<std::string>>> RedisStatusStore::put_idempotency(
    std::string app_id, std::string key, std::string value, std::chrono::milliseconds ttl) {
  if (auto v = validate_app_id(app_id); !v) co_return v.error();
  if (auto v = validate_id(key); !v) co_return v.error();
  if (auto v = valid_lease(ttl); !v) co_return v.error();
  Command cmd{"SET", keys_.idempotency(app_id, key), value, "NX", "PX"};
  cmd.arg(ttl.count()).arg("GET");
  auto r = checked(co_await client_->exec(std::move(cmd)), "put_idempotency");
  if (!r) co_return r.error();
  if (r->is_nil()) co_return std::optional<std::string>();
  if (!r->is_string()) co_return errc::protocol_error;
  co_return std::optional<std::string>(std::move(r->str()));
}

asio::awaitable<result<std::optional<std::string>>> RedisStatusStore::get_idempotency(
    std::string app_id, std::string key) {
  if (auto v = validate_app_id(app_id); !v) co_return v.error();
  if (auto v = validate_id(key); !v) co_return v.error();
  Command cmd{"GET", keys_.idempotency(app_id, key)};
  auto r = checked(co_await client_->exec(std::move(cmd)), "get_idempotency");
  if (!r) co_return r.error();
  if (r->is_nil()) co_return std::optional<std::string>();
  if (!r->is_string()) co_return errc::protocol_error;
  co_return std::optional<std::string>(std::move(r->str()));
}

asio::awaitable<result<bool>> RedisStatusStore::replace_idempotency(std::string app_id,
                                                                    std::string key,
                                                                    std::string expected,
                                                                    std::string value,
                                                                    std::chrono::milliseconds ttl) {
  if (auto v = validate_app_id(app_id); !v) co_return bool_error(v.error());
  if (auto v = validate_id(key); !v) co_return bool_error(v.error());
  if (!value.empty()) {
    if (auto v = valid_lease(ttl); !v) co_return bool_error(v.error());
  }
  auto cmd = Command::evalsha(scripts::idempotency_replace(), 1);
  cmd.arg(keys_.idempotency(app_id, key))
      .arg(expected)
      .arg(value)
      .arg(std::max<std::int64_t>(1, ttl.count()));
  auto r = checked(co_await client_->exec(std::move(cmd)), "replace_idempotency");
  if (!r) co_return bool_error(r.error());
  if (!r->is_integer()) co_return bool_error(errc::protocol_error);
  co_return r->integer() == 1;
}

result<std::unique_ptr<RedisStatusStore>> make_redis_status_store(boost::asio::any_io_executor ex,
                                                                  std::string_view uri,
                                                                  RedisStatusStoreOptions options,
                                                                  prometheus::Registry* metrics,
                                                                  const Clock& clock) {
  if (!validate_prefix(options.key_prefix) || options.device_meta_ttl.count() <= 0) {
    return errc::invalid_argument;
  }
  auto cfg = redis::ClientConfig::parse(uri);
  if (!cfg) return cfg.error();
  cfg->name = "status_store";
  auto client = redis::make_client(std::move(ex), std::move(*cfg), metrics);
  if (!client) return client.error();
  std::shared_ptr<redis::Client> shared = std::move(*client);
  return std::make_unique<RedisStatusStore>(std::move(shared), std::move(options), clock);
}

}  // namespace pushgw::status_store
