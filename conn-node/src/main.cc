// conn-node: flags -> config -> Node, admin server, signals.
#include <boost/asio/executor_work_guard.hpp>
#include <future>
#include <iostream>
#include <memory>

#include "common/admin_server.h"
#include "common/cli.h"
#include "common/log.h"
#include "common/service.h"
#include "conn_node/config.h"
#include "conn_node/node.h"

namespace {

namespace asio = boost::asio;
using pushgw::common::HttpRequest;
using pushgw::common::HttpResponse;
using pushgw::conn_node::Node;

asio::awaitable<HttpResponse> start_drain(Node* node) {
  node->begin_drain();
  co_return HttpResponse::json(202, "{\"draining\":true}");
}

asio::awaitable<bool> serving(Node* node) { co_return !node->stats().draining; }

// Its delivery topic is assigned: pushes to its links flow (not just queue).
asio::awaitable<bool> delivering(Node* node) { co_return node->stats().delivery_partitions > 0; }

asio::awaitable<void> shutdown(Node* node, pushgw::common::AdminServer* admin,
                               std::promise<void>* done) {
  co_await node->shutdown();
  admin->stop();
  done->set_value();
}

}  // namespace

int main(int argc, char** argv) {
  pushgw::common::CommandLine cli("conn-node", "pushgw connection node");
  auto cfg = cli.parse(argc, argv, pushgw::conn_node::config_schema());
  if (!cfg) return cli.exit_code();
  try {
    cfg->validate();
    pushgw::common::setup_logging(cfg->log);
  } catch (const pushgw::common::ConfigError& e) {
    std::cerr << "conn-node: config error: " << e.what() << "\n";
    return 2;
  }
  auto log = pushgw::common::logger("conn");

  pushgw::common::IoRunner control(1);
  auto work = asio::make_work_guard(control.context());  // run until stopped
  control.start();
  auto metrics = std::make_shared<pushgw::common::Metrics>("conn-node");
  pushgw::conn_node::NodeOptions options;
  options.metrics = metrics;
  Node node(control.executor(), *cfg, options);
  if (auto r = node.start(); !r) {
    log->critical("conn-node {} failed to start: {}", cfg->node_id, r.error().message());
    pushgw::common::flush_logs();
    return 1;
  }

  pushgw::common::AdminServer admin(control.executor(), cfg->admin, metrics);
  admin.handle("POST", "/admin/drain", [&node](HttpRequest) { return start_drain(&node); });
  admin.add_readiness_check("serving", [&node] { return serving(&node); });
  admin.add_readiness_check("delivery", [&node] { return delivering(&node); });
  if (auto r = admin.start(); !r) {
    log->critical("admin listener {}:{}: {}", cfg->admin.bind_address, cfg->admin.port,
                  r.error().message());
    node.stop();
    return 1;
  }

  std::promise<void> done;
  auto finished = done.get_future();
  pushgw::common::SignalHooks hooks;
  hooks.on_shutdown = [&] { return shutdown(&node, &admin, &done); };
  hooks.on_drain = [&node] { return node.drain(); };
  hooks.shutdown_timeout = cfg->drain.shutdown_grace + std::chrono::seconds(20);
  pushgw::common::SignalHandler signals(control.executor(), std::move(hooks));
  log->info("conn-node {} running (admin port {})", cfg->node_id, admin.port());

  finished.wait();
  node.stop();
  admin.stop();
  control.stop();
  control.join();
  log->info("conn-node {} exited", cfg->node_id);
  pushgw::common::flush_logs();
  return 0;
}
