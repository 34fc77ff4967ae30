// online-router: flags -> config -> Router, admin server, signals.
#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <future>
#include <iostream>
#include <memory>

#include "common/admin_server.h"
#include "common/cli.h"
#include "common/log.h"
#include "common/service.h"
#include "online_router/config.h"
#include "online_router/router.h"

namespace {

namespace asio = boost::asio;
using pushgw::online_router::Router;

asio::awaitable<bool> ready(Router* router) { co_return router->ready(); }

asio::awaitable<void> shutdown(Router* router, pushgw::common::AdminServer* admin,
                               std::promise<void>* done) {
  co_await router->shutdown();
  admin->stop();
  done->set_value();
}

}  // namespace

int main(int argc, char** argv) {
  pushgw::common::CommandLine cli("online-router", "pushgw online router");
  std::string cls;
  cli.app()
      .add_option("--class", cls, "traffic class to serve (overrides the config key `class`)")
      ->check(CLI::IsMember({"normal", "marketing"}));
  auto cfg = cli.parse(argc, argv, pushgw::online_router::config_schema());
  if (!cfg) return cli.exit_code();
  try {
    if (!cls.empty()) {
      cfg->traffic_class = cls == "marketing" ? pushgw::online_router::TrafficClass::kMarketing
                                              : pushgw::online_router::TrafficClass::kNormal;
    }
    cfg->validate();
    pushgw::common::setup_logging(cfg->log);
  } catch (const pushgw::common::ConfigError& e) {
    std::cerr << "online-router: config error: " << e.what() << "\n";
    return 2;
  }
  auto log = pushgw::common::logger("router");
  const std::string class_name(pushgw::online_router::class_name(cfg->traffic_class));

  pushgw::common::IoRunner io(cfg->threads);
  // The io threads run until the end of main, idle or not.
  auto work = asio::make_work_guard(io.context());
  io.start();
  auto metrics = std::make_shared<pushgw::common::Metrics>("online-router");
  std::atomic<bool> fatal{false};
  std::atomic<pushgw::common::SignalHandler*> signal_handler{nullptr};
  pushgw::online_router::RouterOptions options;
  options.metrics = metrics;
  options.on_fatal = [&fatal, &signal_handler](const std::string&) {
    fatal = true;
    if (auto* s = signal_handler.load()) s->request_shutdown();
  };
  Router router(io.executor(), *cfg, options);
  if (auto r = router.start(); !r) {
    log->critical("online-router ({}) failed to start: {}", class_name, r.error().message());
    io.stop();
    io.join();
    pushgw::common::flush_logs();
    return 1;
  }

  pushgw::common::AdminServer admin(io.executor(), cfg->admin, metrics);
  admin.add_readiness_check("router", [&router] { return ready(&router); });
  if (auto r = admin.start(); !r) {
    log->critical("admin listener {}:{}: {}", cfg->admin.bind_address, cfg->admin.port,
                  r.error().message());
    router.stop();
    io.stop();
    io.join();
    return 1;
  }

  std::promise<void> done;
  auto finished = done.get_future();
  pushgw::common::SignalHooks hooks;
  hooks.on_shutdown = [&] { return shutdown(&router, &admin, &done); };
  hooks.shutdown_timeout = cfg->drain_timeout + std::chrono::seconds(20);
  auto signals = std::make_unique<pushgw::common::SignalHandler>(io.executor(), std::move(hooks));
  signal_handler = signals.get();
  if (fatal) signals->request_shutdown();
  log->info("online-router ({}) running (admin port {})", class_name, admin.port());

  finished.wait();
  signal_handler = nullptr;
  signals.reset();
  admin.stop();
  io.stop();
  io.join();
  log->info("online-router ({}) exited{}", class_name, fatal ? " after a fatal error" : "");
  pushgw::common::flush_logs();
  return fatal ? 1 : 0;
}
