#pragma once
// One device listener (tcp, tls, ws or wss): binds, accepts at the node's
// accept rate, hands each socket to a worker (round robin) and refuses
// sockets beyond the node's capacity. The accept loop runs on the node's
// strand (the accept-rate bucket lives there).
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <string>

#include "byte_stream.h"
#include "common/error.h"
#include "conn_node/config.h"

namespace pushgw::conn_node {

class NodeCore;

class Listener {
 public:
  using Strand = boost::asio::strand<boost::asio::any_io_executor>;
  Listener(NodeCore& core, ListenerKind kind, Strand strand);
  ~Listener();

  /// Binds and listens. Errors (bad address, port in use) as values.
  result<void> bind(const std::string& host, uint16_t port, int backlog);
  /// Starts the accept loop.
  void start();
  /// Closes the acceptor (the loop ends). Strand only.
  void close();
  uint16_t port() const { return port_; }
  ListenerKind kind() const { return kind_; }

 private:
  boost::asio::awaitable<void> accept_loop();
  void refuse(Socket& socket);

  NodeCore& core_;
  ListenerKind kind_;
  Strand strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer timer_;
  uint16_t port_ = 0;
};

}  // namespace pushgw::conn_node
