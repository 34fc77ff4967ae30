#include "offline_router/partition_work.h"

#include <unordered_set>
#include <utility>

#include "common/log.h"
#include "proto/bus.pb.h"

namespace pushgw::offline_router {
namespace {

namespace ms = msg_store;
using bus::v1::AckEvent;
using bus::v1::DeliveryRecord;
using bus::v1::Presence;

constexpr uint32_t kSchemaVersion = 1;

bool stored_now(ms::StoreOutcome o) {
  return o == ms::StoreOutcome::kStored || o == ms::StoreOutcome::kCollapsed ||
         o == ms::StoreOutcome::kOverflowed;
}

// First record of a topic since the store was opened: a record past the
// store's checkpoint means records in between were applied to some other
// copy of this partition's store (see README, "Rebalance").
void check_gap(bool& checked, const std::optional<int64_t>& cp, const bus::Record& r,
               PartitionResult& out) {
  if (checked) return;
  checked = true;
  if (cp && r.offset > *cp) {
    ++out.state_gaps;
    common::logger("offline")->warn(
        "{}[{}]: first record at offset {} but the store has applied up to {} only: records "
        "in between were stored elsewhere (partition moved without its store?)",
        r.topic, r.partition, r.offset, *cp);
  }
}

}  // namespace

PartitionState::~PartitionState() {
  if (tracked != nullptr) tracked->fetch_sub(connected.size(), std::memory_order_relaxed);
}

std::string device_key(std::string_view app, std::string_view device) {
  std::string k;
  k.reserve(app.size() + 1 + device.size());
  k.append(app);
  k.push_back('/');
  k.append(device);
  return k;
}

bool valid_node_id(std::string_view node) {
  if (node.empty() || node.size() > 200) return false;
  for (char c : node) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

PartitionResult apply_partition(const WorkContext& ctx, PartitionWork& work) {
  const RouterConfig& cfg = *ctx.config;
  PartitionResult out;
  out.partition = work.partition;
  PartitionState& ps = *work.state;
  ms::MessageStore& store = *work.store;

  auto cp_offline = store.checkpoint(cfg.kafka.offline_topic);
  if (!cp_offline) {
    out.error = cp_offline.error();
    return out;
  }
  auto cp_acks = store.checkpoint(cfg.kafka.acks_topic);
  if (!cp_acks) {
    out.error = cp_acks.error();
    return out;
  }

  std::vector<DeliveryRecord> stores;
  std::vector<ms::AckRequest> acks;
  std::vector<Presence> presences;
  int64_t next_offline = -1;
  int64_t next_acks = -1;
  for (const auto& r : work.records) {
    if (r.topic == cfg.kafka.offline_topic) {
      check_gap(ps.gap_checked_offline, *cp_offline, r, out);
      if (*cp_offline && r.offset < **cp_offline) {
        ++out.skipped_applied;
        continue;
      }
      next_offline = r.offset + 1;
      DeliveryRecord dr;
      if (!dr.ParseFromString(r.value)) {
        ++out.rejected_bad;
        continue;
      }
      if (dr.schema_version() > kSchemaVersion) {
        ++out.rejected_schema;
        continue;
      }
      stores.push_back(std::move(dr));
    } else if (r.topic == cfg.kafka.acks_topic) {
      check_gap(ps.gap_checked_acks, *cp_acks, r, out);
      if (*cp_acks && r.offset < **cp_acks) {
        ++out.skipped_applied;
        continue;
      }
      next_acks = r.offset + 1;
      AckEvent ev;
      if (!ev.ParseFromString(r.value)) {
        ++out.rejected_bad;
        continue;
      }
      if (ev.schema_version() > kSchemaVersion) {
        ++out.rejected_schema;
        continue;
      }
      ms::AckRequest a;
      a.app_id = ev.app_id();
      a.device_id = ev.device_id();
      a.up_to_seq = ev.last_seq();
      for (const auto& m : ev.acked()) {
        if (m.seq() != 0) {
          a.seqs.push_back(m.seq());
        } else if (!m.message_id().empty()) {
          a.message_ids.push_back(m.message_id());
        }
      }
      acks.push_back(std::move(a));
      ++out.ack_events;
    } else if (r.topic == cfg.kafka.presence_topic) {
      Presence p;
      if (!p.ParseFromString(r.value)) {
        ++out.rejected_bad;
        continue;
      }
      if (p.schema_version() > kSchemaVersion) {
        ++out.rejected_schema;
        continue;
      }
      if (p.app_id().empty() || p.device_id().empty() ||
          (p.kind() == Presence::CONNECTED && !valid_node_id(p.node_id()))) {
        ++out.rejected_bad;
        continue;
      }
      // Hello.last_seq is the highest seq the client has processed: a
      // cumulative ack.
      if (p.kind() == Presence::CONNECTED && p.last_seq() > 0) {
        ms::AckRequest a;
        a.app_id = p.app_id();
        a.device_id = p.device_id();
        a.up_to_seq = p.last_seq();
        acks.push_back(std::move(a));
      }
      presences.push_back(std::move(p));
    } else {
      ++out.rejected_bad;
    }
  }

  ms::WriteOptions wo;
  wo.sync = cfg.store.sync;
  if (next_offline >= 0) wo.checkpoints.push_back({cfg.kafka.offline_topic, next_offline});
  if (next_acks >= 0) wo.checkpoints.push_back({cfg.kafka.acks_topic, next_acks});
  if (!stores.empty() || !acks.empty() || !wo.checkpoints.empty()) {
    auto applied = store.apply(stores, acks, wo);
    if (!applied) {
      out.error = applied.error();
      return out;
    }
    out.applied = std::move(*applied);
  }

  // The replay each device needs after this batch: its newest CONNECTED,
  // unless a DISCONNECTED of that epoch (or a newer one) follows it.
  std::unordered_map<std::string, std::size_t> wanted;
  std::unordered_set<std::string> with_presence;
  for (std::size_t i = 0; i < presences.size(); ++i) {
    const auto& p = presences[i];
    std::string key = device_key(p.app_id(), p.device_id());
    with_presence.insert(key);
    auto it = wanted.find(key);
    if (p.kind() == Presence::CONNECTED) {
      if (it == wanted.end()) {
        wanted.emplace(std::move(key), i);
      } else if (presences[it->second].epoch() <= p.epoch()) {
        it->second = i;
        ++out.replays_skipped;
      } else {
        ++out.replays_skipped;
      }
    } else if (it != wanted.end() && presences[it->second].epoch() <= p.epoch()) {
      wanted.erase(it);
      ++out.replays_skipped;
    }
  }

  // Messages stored now for a device whose replay already happened (it
  // connected in an earlier batch): the online router may have found it
  // offline, so nothing would bring them before the next connect.
  if (cfg.replay.forward_late_stores && !ps.connected.empty()) {
    for (std::size_t i = 0; i < stores.size(); ++i) {
      if (!stored_now(out.applied.store.outcomes[i])) continue;
      const auto& dr = stores[i];
      std::string key = device_key(dr.app_id(), dr.device_id());
      if (with_presence.contains(key)) continue;  // its replay (or disconnect) decides
      auto it = ps.connected.find(key);
      if (it == ps.connected.end()) continue;
      // Sent live to this connection (or a newer one) already.
      if (dr.epoch() != 0 && dr.epoch() >= it->second.epoch) continue;
      DeliveryRecord f = dr;
      f.set_schema_version(kSchemaVersion);
      f.set_replay(true);
      f.set_epoch(it->second.epoch);
      f.set_node_id(it->second.node_id);
      out.forwards.push_back(
          {cfg.kafka.deliver_prefix + it->second.node_id, std::move(key), f.SerializeAsString(), {},
           std::nullopt});
    }
  }

  for (std::size_t i = 0; i < presences.size(); ++i) {
    const auto& p = presences[i];
    if (p.kind() != Presence::CONNECTED) continue;
    const std::string key = device_key(p.app_id(), p.device_id());
    auto it = wanted.find(key);
    if (it == wanted.end() || it->second != i) continue;
    const std::string topic = cfg.kafka.deliver_prefix + p.node_id();
    ReplayGroup group;
    uint64_t after = p.last_seq();
    uint64_t highest = p.last_seq();
    bool failed = false;
    for (;;) {
      auto page = store.read(p.app_id(), p.device_id(), after, cfg.replay.page);
      if (!page) {
        ++out.replay_read_failures;
        common::logger("offline")->warn("replay {} epoch {}: store read failed: {}", key,
                                        p.epoch(), page.error().message());
        failed = true;
        break;
      }
      for (auto& m : page->messages) {
        DeliveryRecord d;
        d.set_schema_version(kSchemaVersion);
        d.set_app_id(p.app_id());
        d.set_device_id(p.device_id());
        d.set_replay(true);
        d.set_epoch(p.epoch());
        d.set_node_id(p.node_id());
        after = m.seq();
        highest = m.seq();
        *d.mutable_push() = std::move(m);
        group.records.push_back({topic, key, d.SerializeAsString(), {}, std::nullopt});
        ++group.messages;
      }
      if (!page->more || page->messages.empty()) break;
    }
    // Without a replay_complete the node stops holding after its replay
    // wait; the messages stay stored for the next connect.
    if (failed) continue;
    DeliveryRecord done;
    done.set_schema_version(kSchemaVersion);
    done.set_app_id(p.app_id());
    done.set_device_id(p.device_id());
    done.set_epoch(p.epoch());
    done.set_node_id(p.node_id());
    auto* rc = done.mutable_replay_complete();
    rc->set_epoch(p.epoch());
    rc->set_highest_seq(highest);
    rc->set_count(group.messages);
    group.records.push_back({topic, key, done.SerializeAsString(), {}, std::nullopt});
    out.replays.push_back(std::move(group));
  }

  // Remember who is connected, for forward_late_stores.
  if (cfg.replay.forward_late_stores) {
    for (const auto& p : presences) {
      std::string key = device_key(p.app_id(), p.device_id());
      auto it = ps.connected.find(key);
      if (p.kind() == Presence::CONNECTED) {
        if (it == ps.connected.end()) {
          if (ctx.tracked->load(std::memory_order_relaxed) >=
              cfg.replay.max_tracked_connections) {
            continue;
          }
          ctx.tracked->fetch_add(1, std::memory_order_relaxed);
          ps.connected.emplace(std::move(key), Conn{p.node_id(), p.epoch()});
        } else if (it->second.epoch <= p.epoch()) {
          it->second = Conn{p.node_id(), p.epoch()};
        }
      } else if (it != ps.connected.end() && it->second.epoch <= p.epoch()) {
        ps.connected.erase(it);
        ctx.tracked->fetch_sub(1, std::memory_order_relaxed);
      }
    }
  }
  return out;
}

}  // namespace pushgw::offline_router
