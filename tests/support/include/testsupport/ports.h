#pragma once
/// Free loopback TCP ports for test servers. A port can be taken by someone
/// else between this check and the server's bind: fixtures retry with another
/// port when their server fails to start.
#include <cstdint>

namespace pushgw::testsupport {

/// A port in [20000, 32000) that 127.0.0.1 can bind right now (random, so
/// parallel test processes rarely collide; below the ephemeral range, so
/// outgoing connections never hold it). With `with_cluster_bus`, port + 10000
/// (the Redis Cluster bus) is free too and below 32768. Throws
/// std::runtime_error if none is found after many tries.
std::uint16_t free_port(bool with_cluster_bus = false);

/// True if 127.0.0.1:`port` can be bound right now.
bool port_is_free(std::uint16_t port);

}  // namespace pushgw::testsupport
