#pragma once
// Lua scripts of RedisStatusStore. Each touches keys of one hash tag only.
#include "common/redis/command.h"

namespace pushgw::status_store::scripts {

/// KEYS: device, epoch counter, seq, owner. ARGV: node, session, platform, uid,
/// since, lease_ms, meta_ttl_ms, now_ms, fence (0: new registration), seed (a missing
/// epoch counter starts there: counter_seed()).
/// Also records uid as the device's owner (deleted when uid is empty).
/// -> {epoch} | {epoch, prev_epoch, prev_node, prev_session, prev_uid} | {-1, counter} (stale
/// fence)
const redis::Script& register_device();
/// KEYS: device, epoch counter. ARGV: epoch. -> {1, uid} removed | {0} none | {-1} stale
const redis::Script& unregister_device();
/// KEYS: device, epoch counter. ARGV: epoch, lease_ms, now_ms, node. -> 1 | 0 missing | -1 stale
const redis::Script& refresh_lease();
/// KEYS: user index. ARGV: device, epoch, ttl_ms. Sets device -> epoch unless a newer one is there.
const redis::Script& user_add();
/// KEYS: user index. ARGV: device, epoch. Removes the entry only if it still has that epoch.
const redis::Script& user_remove();
/// KEYS: user's known devices. ARGV: device, value. Removes the entry only if it still has that
/// value.
const redis::Script& known_remove();
/// KEYS: nodes info, nodes expiry. ARGV: node, lease_ms, payload. -> expiry (ms)
const redis::Script& node_upsert();
/// KEYS: nodes info, nodes expiry. -> flat {node, payload, expiry, ...}; drops expired ones.
const redis::Script& node_list();
/// KEYS: nodes info, nodes expiry. ARGV: node. -> 1 removed | 0
const redis::Script& node_remove();
/// KEYS: topic. ARGV: node, delta. -> new count (0: removed)
const redis::Script& topic_add();
/// KEYS: seq counter. ARGV: seed, n. For a counter that INCR just created and
/// that then handed out 1..n: a counter still below the seed is moved up by
/// the seed (values 1..n become seed+1..seed+n); one seeded meanwhile hands
/// out n new values instead. -> the base to add to 1..n
const redis::Script& seq_seed();
/// KEYS: idempotency key. ARGV: expected, value ('' deletes), ttl_ms. -> 1 replaced | 0 not
/// expected
const redis::Script& idempotency_replace();

}  // namespace pushgw::status_store::scripts
