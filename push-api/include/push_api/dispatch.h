#pragma once
/// GET /v1/dispatch ranking (push-api.md): live, non-draining nodes, least
/// loaded first; among equally loaded nodes the order depends on a hash of
/// the device and the node (rendezvous hashing), so clients spread evenly
/// and one device gets a stable order. Pure; thread-safe.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "status_store/status_store.h"

namespace pushgw::push_api {

/// Drops draining nodes and nodes without any endpoint, orders the rest and
/// keeps at most `max` of them.
std::vector<status_store::NodeInfo> rank_nodes(std::vector<status_store::NodeInfo> nodes,
                                               std::string_view app_id, std::string_view device_id,
                                               std::size_t max);

/// The tie-break weight of `node_id` for a device (64-bit FNV-1a, mixed).
uint64_t dispatch_weight(std::string_view app_id, std::string_view device_id,
                         std::string_view node_id) noexcept;

}  // namespace pushgw::push_api
