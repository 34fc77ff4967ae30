#pragma once
/// The Redis client components use: standalone or Redis Cluster, chosen by
/// ClientConfig. Both kinds pipeline over one connection per node (see
/// connection.h) and return errors as values.
///
/// Routing (cluster): each command goes to the master owning its key's slot
/// (Command::key(), CRC16 with the {hash tag} rule). MOVED updates the slot map
/// and schedules a full refresh (CLUSTER SLOTS); ASK resends the command to
/// the named node preceded by ASKING; TRYAGAIN waits briefly and retries. At
/// most ClientConfig::max_redirects of these per command, then
/// errc::redirect_limit. A pipeline is split per node, each part is sent on
/// its node's connection at once, and the results come back in input order.
///
/// Scripts: when Command::evalsha() commands meet NOSCRIPT on a node, the
/// client sends SCRIPT LOAD (once per script) and the commands again to that
/// node, in one round trip; script caches are thus per node and self-healing.
///
/// Thread model: all of a client's state lives on one strand (executor()).
/// Member functions may be called from any coroutine; a coroutine already on
/// executor() takes the direct path, others hop there and back.
///
/// Lifetime: close() or the destructor fails pending requests with
/// errc::shutting_down. The client must outlive the coroutines awaiting it.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/error.h"
#include "common/redis/command.h"
#include "common/redis/config.h"
#include "common/redis/reply.h"

namespace prometheus {
class Registry;
}

namespace pushgw::redis {

/// Counters for tests and logs. Thread-safe snapshot.
struct ClientStats {
  std::uint64_t commands = 0;
  /// Requests written to node connections: one per exec(), one per node a
  /// pipeline touched, plus one per redirect/NOSCRIPT retry.
  std::uint64_t requests = 0;
  std::uint64_t moved = 0;
  std::uint64_t ask = 0;
  std::uint64_t noscript = 0;  ///< SCRIPT LOADs sent after a NOSCRIPT answer
  std::uint64_t slot_refreshes = 0;
  std::uint64_t reconnects = 0;
};

class Client {
 public:
  virtual ~Client() = default;

  /// Standalone: PING. Cluster: loads the slot map from a seed and PINGs the
  /// masters. Commands also work without it (the cluster loads the map on
  /// first use); call it at startup to fail fast on a bad address.
  virtual boost::asio::awaitable<result<void>> connect() = 0;
  /// One command, routed by its key.
  virtual boost::asio::awaitable<result<Reply>> exec(Command cmd) = 0;
  /// Many commands in one round trip per node; one result per command, in order.
  virtual boost::asio::awaitable<std::vector<result<Reply>>> exec_pipeline(
      std::vector<Command> cmds) = 0;
  /// exec_pipeline() for commands encoded in a CommandBuffer: one result per
  /// command, in order; errc::invalid_argument for all of them if the buffer
  /// is not complete(). The standalone client sends the bytes as they are;
  /// the default (cluster, test doubles) decodes them into Commands.
  virtual boost::asio::awaitable<std::vector<result<Reply>>> exec_buffer(CommandBuffer cmds);

  virtual ClientStats stats() const = 0;
  virtual boost::asio::any_io_executor executor() const = 0;
  /// Idempotent; thread-safe.
  virtual void close() = 0;
};

/// Builds the client for `config` (errc::invalid_argument if it has no node,
/// or several nodes in standalone mode). `metrics` (optional) must outlive it.
/// Connections start at once; nothing blocks.
result<std::unique_ptr<Client>> make_client(boost::asio::any_io_executor ex, ClientConfig config,
                                            prometheus::Registry* metrics = nullptr);

}  // namespace pushgw::redis
