#pragma once
// ws and wss links: one binary WebSocket message per Frame (Boost.Beast on
// conn-node's own byte stream), upgrade only at path /ws.
#include <cstdint>
#include <memory>

#include "byte_stream.h"
#include "conn_node/config.h"

namespace pushgw::conn_node {

class Link;
class Worker;

std::shared_ptr<Link> make_ws_link(Worker& worker, ListenerKind kind, uint64_t id, Socket socket);

}  // namespace pushgw::conn_node
