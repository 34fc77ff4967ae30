#include "conn_node/node.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/spawn.h"
#include "node_core.h"

namespace pushgw::conn_node {

namespace asio = boost::asio;

Node::Node(asio::any_io_executor control, NodeConfig cfg, NodeOptions options)
    : core_(std::make_unique<NodeCore>(control, std::move(cfg), std::move(options))) {}

Node::~Node() { stop(); }

result<void> Node::start() { return core_->start(); }

asio::awaitable<void> Node::drain() {
  co_await asio::co_spawn(core_->strand(), core_->drain(/*fast=*/false), asio::use_awaitable);
}

void Node::begin_drain() {
  common::spawn_logged(core_->strand(), core_->drain(/*fast=*/false), "conn-node drain");
}

asio::awaitable<void> Node::shutdown() {
  co_await asio::co_spawn(core_->strand(), core_->shutdown(), asio::use_awaitable);
}

void Node::stop() { core_->stop(); }

uint16_t Node::port(ListenerKind kind) const { return core_->port(kind); }

NodeStats Node::stats() const { return core_->stats(); }

common::Metrics& Node::metrics() { return core_->process_metrics(); }

const NodeConfig& Node::config() const { return core_->cfg(); }

}  // namespace pushgw::conn_node
