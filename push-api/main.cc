// push-api: flags -> config -> Service, signals.
#include <future>
#include <iostream>

#include "common/cli.h"
#include "common/log.h"
#include "common/service.h"
#include "push_api/config.h"
#include "push_api/service.h"

namespace {

namespace asio = boost::asio;

asio::awaitable<void> shutdown(pushgw::push_api::Service* service, std::promise<void>* done) {
  co_await service->shutdown();
  done->set_value();
}

}  // namespace

int main(int argc, char** argv) {
  pushgw::common::CommandLine cli("push-api", "pushgw push API for business services");
  auto cfg = cli.parse(argc, argv, pushgw::push_api::config_schema());
  if (!cfg) return cli.exit_code();
  try {
    cfg->validate();
    pushgw::common::setup_logging(cfg->log);
  } catch (const pushgw::common::ConfigError& e) {
    std::cerr << "push-api: config error: " << e.what() << "\n";
    return 2;
  }
  auto log = pushgw::common::logger("push-api");
  if (auto fds = pushgw::common::raise_fd_limit()) log->info("fd limit {}", *fds);

  unsigned threads = cfg->threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  // One event loop per thread: each HTTP connection stays on one of them (no
  // strand, no locking); the first also runs the clients, admin and signals.
  // The pool keeps its threads running while nothing is queued.
  pushgw::common::IoPool io(threads);
  io.start();
  pushgw::push_api::ServiceOptions options;
  options.session_executors = io.executors();
  pushgw::push_api::Service service(io.executor(0), *cfg, std::move(options));
  if (auto r = service.start(); !r) {
    log->critical("push-api failed to start: {}", r.error().message());
    service.stop();
    io.stop();
    io.join();
    pushgw::common::flush_logs();
    return 1;
  }

  std::promise<void> done;
  auto finished = done.get_future();
  pushgw::common::SignalHooks hooks;
  hooks.on_shutdown = [&] { return shutdown(&service, &done); };
  hooks.shutdown_timeout = cfg->shutdown_grace + std::chrono::seconds(10);
  pushgw::common::SignalHandler signals(io.executor(0), std::move(hooks));
  log->info("push-api running on port {} ({} threads, admin port {})", service.port(), threads,
            service.admin_port());

  finished.wait();
  service.stop();
  io.stop();
  io.join();
  log->info("push-api exited");
  pushgw::common::flush_logs();
  return 0;
}
