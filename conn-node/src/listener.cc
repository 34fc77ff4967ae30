#include "listener.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/log.h"
#include "common/spawn.h"
#include "conn_node/frame_codec.h"
#include "node_core.h"
#include "worker.h"

namespace pushgw::conn_node {

namespace asio = boost::asio;
using asio::ip::tcp;

Listener::Listener(NodeCore& core, ListenerKind kind, Strand strand)
    : core_(core), kind_(kind), strand_(strand), acceptor_(strand), timer_(strand) {}

Listener::~Listener() = default;

result<void> Listener::bind(const std::string& host, uint16_t port, int backlog) {
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (ec) return ec;
  const tcp::endpoint ep(addr, port);
  acceptor_.open(ep.protocol(), ec);
  if (ec) return ec;
  acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(backlog, ec);
  if (ec) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return ec;
  }
  port_ = acceptor_.local_endpoint(ec).port();
  return {};
}

void Listener::start() {
  common::spawn_logged(strand_, accept_loop(),
                       std::string("conn-node accept ") + listener_name(kind_));
}

void Listener::close() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  timer_.cancel();
}

void Listener::refuse(Socket& socket) {
  if (kind_ == ListenerKind::kTcp) {
    // Plain TCP can say why at no cost; the others would need a handshake.
    v1::Frame f;
    *f.mutable_redirect() = core_.redirect_for(kind_, "overloaded");
    const std::string bytes = encode_framed(f);
    boost::system::error_code ec;
    socket.non_blocking(true, ec);
    socket.write_some(asio::buffer(bytes), ec);
    socket.shutdown(asio::socket_base::shutdown_send, ec);
  }
  boost::system::error_code ec;
  socket.close(ec);
}

asio::awaitable<void> Listener::accept_loop() {
  auto log = common::logger("conn");
  auto& m = core_.metrics();
  const int k = static_cast<int>(kind_);
  while (acceptor_.is_open()) {
    const uint64_t wait_ms = core_.accept_wait_ms();
    if (wait_ms > 0) {
      m.accept_throttled->Increment();
      timer_.expires_after(std::chrono::milliseconds(wait_ms));
      co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    Worker& worker = core_.next_worker();
    auto [ec, socket] =
        co_await acceptor_.async_accept(worker.context(), asio::as_tuple(asio::use_awaitable));
    if (!acceptor_.is_open() || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      m.accept_errors[k]->Increment();
      // Out of fds or memory: back off instead of spinning on the error.
      log->warn("accept on {} failed: {}", listener_name(kind_), ec.message());
      timer_.expires_after(std::chrono::milliseconds(100));
      co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    m.accepted[k]->Increment();
    if (core_.at_capacity() || core_.stopping()) {
      m.refused_overloaded[k]->Increment();
      refuse(socket);
      continue;
    }
    core_.socket_opened();
    asio::post(worker.executor(), [&worker, kind = kind_, s = std::move(socket)]() mutable {
      worker.accept(kind, std::move(s));
    });
  }
}

}  // namespace pushgw::conn_node
