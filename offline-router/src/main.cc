// offline-router: flags -> config -> OfflineRouter, admin server, signals.
#include <boost/asio/executor_work_guard.hpp>
#include <future>
#include <iostream>
#include <memory>

#include "common/admin_server.h"
#include "common/cli.h"
#include "common/log.h"
#include "common/service.h"
#include "offline_router/admin.h"
#include "offline_router/config.h"
#include "offline_router/router.h"

namespace {

namespace asio = boost::asio;
using pushgw::offline_router::OfflineRouter;

asio::awaitable<bool> ready(OfflineRouter* router) { co_return router->ready(); }

asio::awaitable<void> shutdown(OfflineRouter* router, pushgw::common::AdminServer* admin,
                               std::promise<void>* done) {
  co_await router->shutdown();
  admin->stop();
  done->set_value();
}

}  // namespace

int main(int argc, char** argv) {
  pushgw::common::CommandLine cli("offline-router", "pushgw offline router (message store)");
  auto cfg = cli.parse(argc, argv, pushgw::offline_router::config_schema());
  if (!cfg) return cli.exit_code();
  try {
    cfg->validate();
    pushgw::common::setup_logging(cfg->log);
  } catch (const pushgw::common::ConfigError& e) {
    std::cerr << "offline-router: config error: " << e.what() << "\n";
    return 2;
  }
  auto log = pushgw::common::logger("offline");

  pushgw::common::IoRunner control(1);
  // Keeps the control thread running until the end, whatever is pending.
  auto work = asio::make_work_guard(control.context());
  control.start();
  auto metrics = std::make_shared<pushgw::common::Metrics>("offline-router");
  pushgw::offline_router::RouterOptions options;
  options.metrics = metrics;
  OfflineRouter router(control.executor(), *cfg, options);

  pushgw::common::AdminServer admin(control.executor(), cfg->admin, metrics);
  admin.add_readiness_check("router", [&router] { return ready(&router); });
  pushgw::offline_router::register_admin_endpoints(admin, router);
  if (auto r = admin.start(); !r) {
    log->critical("admin listener {}:{}: {}", cfg->admin.bind_address, cfg->admin.port,
                  r.error().message());
    control.stop();
    control.join();
    return 1;
  }
  if (auto r = router.start(); !r) {
    log->critical("offline-router failed to start: {}", r.error().message());
    admin.stop();
    router.stop();
    control.stop();
    control.join();
    pushgw::common::flush_logs();
    return 1;
  }

  std::promise<void> done;
  auto finished = done.get_future();
  pushgw::common::SignalHooks hooks;
  hooks.on_shutdown = [&] { return shutdown(&router, &admin, &done); };
  hooks.shutdown_timeout = cfg->kafka.session_timeout + std::chrono::seconds(30);
  pushgw::common::SignalHandler signals(control.executor(), std::move(hooks));
  log->info("offline-router running (data dir {}, admin port {})", cfg->store.data_dir,
            admin.port());

  finished.wait();
  router.stop();
  admin.stop();
  control.stop();
  control.join();
  log->info("offline-router exited");
  pushgw::common::flush_logs();
  return 0;
}
