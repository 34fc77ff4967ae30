#include "offline_router/partition_work.h"

#include <algorithm>
#include <chrono>
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
  std::vector<const bus::Record*> presence_records;  // the record of each presence
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
      presence_records.push_back(&r);
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
    // A replay still waiting from an earlier batch is moot once a newer
    // presence of the device (connect or disconnect) is here.
    if (auto pend = ps.pending.find(key);
        pend != ps.pending.end() && pend->second.epoch <= p.epoch()) {
      out.released.push_back(std::move(pend->second.record));
      ps.pending.erase(pend);
      ++out.replays_skipped;
    }
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

  // Which replays go now. Kafka orders records within a partition, not
  // across topics: a CONNECTED presence can be read before stores that were
  // produced before it. A replay therefore waits until the store has applied
  // pushgw.offline up to the partition's end offset as it was when the
  // presence was read (or catch_up_wait at most); otherwise those stores
  // would reach the device as late forwards, after newer live messages.
  const uint64_t now = ctx.now_ms ? ctx.now_ms() : static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch()).count());
  int64_t applied_offline = std::max<int64_t>(cp_offline->value_or(0), next_offline);
  std::vector<PendingReplay> go;
  for (auto it = ps.pending.begin(); it != ps.pending.end();) {
    const bool caught_up = applied_offline >= it->second.until_offset;
    if (!caught_up && now < it->second.deadline_ms) {
      ++it;
      continue;
    }
    if (caught_up) {
      ++out.replays_caught_up;
    } else {
      ++out.replays_wait_timeouts;
      common::logger("offline")->warn(
          "replay {} epoch {}: the store applied {}[{}] up to offset {} only, {} was the end "
          "when the device connected; replaying what is stored after {} ms",
          it->first, it->second.epoch, cfg.kafka.offline_topic, work.partition, applied_offline,
          it->second.until_offset, cfg.replay.catch_up_wait.count());
    }
    out.released.push_back(std::move(it->second.record));
    go.push_back(std::move(it->second));
    it = ps.pending.erase(it);
  }
  std::optional<int64_t> end_offset;
  bool end_asked = false;
  for (std::size_t i = 0; i < presences.size(); ++i) {
    const auto& p = presences[i];
    if (p.kind() != Presence::CONNECTED) continue;
    std::string key = device_key(p.app_id(), p.device_id());
    auto it = wanted.find(key);
    if (it == wanted.end() || it->second != i) continue;
    PendingReplay r{p.app_id(), p.device_id(), p.node_id(), p.epoch(), p.last_seq(), 0, 0, {}};
    if (cfg.replay.catch_up_wait.count() > 0 && ctx.offline_end_offset) {
      if (!end_asked) {
        end_asked = true;
        end_offset = ctx.offline_end_offset(work.partition);
        if (!end_offset) {
          common::logger("offline")->warn(
              "{}[{}]: end offset not available; replaying without waiting for the store to "
              "catch up",
              cfg.kafka.offline_topic, work.partition);
        }
      }
      if (end_offset && applied_offline < *end_offset) {
        r.until_offset = *end_offset;
        r.deadline_ms = now + static_cast<uint64_t>(cfg.replay.catch_up_wait.count());
        r.record = *presence_records[i];
        out.deferred_offsets.push_back(presence_records[i]->offset);
        ++out.replays_deferred;
        ps.pending.insert_or_assign(std::move(key), std::move(r));
        continue;
      }
    }
    go.push_back(std::move(r));
  }

  // Messages stored now for a device whose replay already happened (it
  // connected in an earlier batch): the online router may have found it
  // offline, so nothing would bring them before the next connect. Not for a
  // device whose replay waits or goes now: the replay reads them.
  if (cfg.replay.forward_late_stores && !ps.connected.empty()) {
    std::unordered_set<std::string> replaying;
    for (const auto& g : go) replaying.insert(device_key(g.app_id, g.device_id));
    for (std::size_t i = 0; i < stores.size(); ++i) {
      if (!stored_now(out.applied.store.outcomes[i])) continue;
      const auto& dr = stores[i];
      std::string key = device_key(dr.app_id(), dr.device_id());
      if (with_presence.contains(key)) continue;  // its replay (or disconnect) decides
      if (replaying.contains(key) || ps.pending.contains(key)) continue;
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

  for (const auto& p : go) {
    const std::string key = device_key(p.app_id, p.device_id);
    const std::string topic = cfg.kafka.deliver_prefix + p.node_id;
    ReplayGroup group;
    uint64_t after = p.last_seq;
    uint64_t highest = p.last_seq;
    bool failed = false;
    for (;;) {
      auto page = store.read(p.app_id, p.device_id, after, cfg.replay.page);
      if (!page) {
        ++out.replay_read_failures;
        common::logger("offline")->warn("replay {} epoch {}: store read failed: {}", key,
                                        p.epoch, page.error().message());
        failed = true;
        break;
      }
      for (auto& m : page->messages) {
        DeliveryRecord d;
        d.set_schema_version(kSchemaVersion);
        d.set_app_id(p.app_id);
        d.set_device_id(p.device_id);
        d.set_replay(true);
        d.set_epoch(p.epoch);
        d.set_node_id(p.node_id);
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
    done.set_app_id(p.app_id);
    done.set_device_id(p.device_id);
    done.set_epoch(p.epoch);
    done.set_node_id(p.node_id);
    auto* rc = done.mutable_replay_complete();
    rc->set_epoch(p.epoch);
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
