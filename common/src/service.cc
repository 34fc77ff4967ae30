#include "common/service.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <limits>

#include "common/log.h"
#include "common/spawn.h"

namespace pushgw::common {

namespace asio = boost::asio;

namespace detail {

void log_escaped_exception(std::string_view what, std::exception_ptr e) noexcept {
  try {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      logger("common")->error("{}: escaped exception: {}", what, ex.what());
    } catch (...) {
      logger("common")->error("{}: escaped exception of unknown type", what);
    }
  } catch (...) {
    // Logging itself failed (e.g. out of memory): nothing better to do.
  }
}

}  // namespace detail

result<uint64_t> raise_fd_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return boost::system::error_code(errno, boost::system::system_category());
  }
  rlim_t target = lim.rlim_max;
  if (target == RLIM_INFINITY) {
    // The kernel caps RLIMIT_NOFILE at fs.nr_open; "unlimited" would be refused.
    std::ifstream nr_open("/proc/sys/fs/nr_open");
    uint64_t n = 0;
    target = (nr_open >> n) ? static_cast<rlim_t>(n) : static_cast<rlim_t>(1 << 20);
  }
  if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur < target) {
    lim.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      return boost::system::error_code(errno, boost::system::system_category());
    }
  }
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return boost::system::error_code(errno, boost::system::system_category());
  }
  return lim.rlim_cur == RLIM_INFINITY ? std::numeric_limits<uint64_t>::max()
                                       : static_cast<uint64_t>(lim.rlim_cur);
}

IoRunner::IoRunner(unsigned threads)
    : threads_(std::max(1u, threads)), ctx_(static_cast<int>(std::max(1u, threads))) {}

IoRunner::~IoRunner() {
  stop();
  join();
}

void IoRunner::run_one_thread() {
  for (;;) {
    try {
      ctx_.run();
      return;
    } catch (const std::exception& e) {
      logger("common")->error("exception escaped an io handler: {}", e.what());
    } catch (...) {
      logger("common")->error("exception of unknown type escaped an io handler");
    }
  }
}

void IoRunner::run() {
  for (unsigned i = 1; i < threads_; ++i) workers_.emplace_back([this] { run_one_thread(); });
  run_one_thread();
  join();
}

void IoRunner::start() {
  for (unsigned i = 0; i < threads_; ++i) workers_.emplace_back([this] { run_one_thread(); });
}

void IoRunner::join() {
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

IoPool::IoPool(unsigned n) {
  n = std::max(1u, n);
  runners_.reserve(n);
  work_.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    runners_.push_back(std::make_unique<IoRunner>(1));
    work_.push_back(asio::make_work_guard(runners_.back()->context()));
  }
}

IoPool::~IoPool() {
  stop();
  join();
}

std::vector<asio::any_io_executor> IoPool::executors() {
  std::vector<asio::any_io_executor> out;
  out.reserve(runners_.size());
  for (auto& r : runners_) out.push_back(r->executor());
  return out;
}

void IoPool::start() {
  for (auto& r : runners_) r->start();
}

void IoPool::stop() {
  for (auto& w : work_) w.reset();
  for (auto& r : runners_) r->stop();
}

void IoPool::join() {
  for (auto& r : runners_) r->join();
}

struct SignalHandler::Impl {
  Impl(asio::any_io_executor ex, SignalHooks h)
      : strand(asio::make_strand(ex)),
        signals(strand, SIGTERM, SIGINT, SIGUSR1),
        deadline(strand),
        hooks(std::move(h)) {}

  asio::strand<asio::any_io_executor> strand;
  asio::signal_set signals;
  asio::steady_timer deadline;
  SignalHooks hooks;
  std::atomic<bool> shutting_down{false};
  std::atomic<bool> complete{false};
  bool released = false;  // strand only: signals handed back, the loop must not wait again
};

namespace {

using ImplPtr = std::shared_ptr<SignalHandler::Impl>;

const char* signal_name(int signo) {
  switch (signo) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "signal";
  }
}

/// On the strand: restores default signal actions and ends the wait loop.
void release_signals(const ImplPtr& self) {
  self->released = true;
  boost::system::error_code ec;
  self->signals.clear(ec);
  self->signals.cancel(ec);
}

void fast_exit(const ImplPtr& self, int signo) {
  if (signo) {
    logger("common")->critical("second {} during shutdown: exiting now", signal_name(signo));
  } else {
    logger("common")->critical("shutdown did not finish within {} ms: exiting now",
                               self->hooks.shutdown_timeout.count());
  }
  flush_logs();
  if (self->hooks.on_fast_exit) {
    self->hooks.on_fast_exit(signo);
  } else {
    std::_Exit(signo ? 128 + signo : 1);
  }
}

asio::awaitable<void> watch_deadline(ImplPtr self) {
  auto [ec] = co_await self->deadline.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!ec && !self->complete) fast_exit(self, 0);
}

asio::awaitable<void> run_shutdown(ImplPtr self) {
  if (self->hooks.on_shutdown) {
    try {
      co_await self->hooks.on_shutdown();
    } catch (const std::exception& e) {
      logger("common")->error("shutdown hook failed: {}", e.what());
    }
  }
  self->complete = true;
  self->deadline.cancel();
  release_signals(self);
  logger("common")->info("shutdown complete");
}

void begin_shutdown(const ImplPtr& self, int signo) {
  self->shutting_down = true;
  logger("common")->info("{}: shutting down (again to exit at once)", signal_name(signo));
  if (self->hooks.shutdown_timeout.count() > 0) {
    self->deadline.expires_after(self->hooks.shutdown_timeout);
    spawn_logged(self->strand, watch_deadline(self), "shutdown deadline");
  }
  spawn_logged(self->strand, run_shutdown(self), "shutdown");
}

asio::awaitable<void> signal_loop(ImplPtr self) {
  // co_spawn from the strand may run a hook inline, so re-check before each wait.
  while (!self->released) {
    auto [ec, signo] = co_await self->signals.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    if (signo == SIGUSR1) {
      if (self->hooks.on_drain) {
        logger("common")->info("SIGUSR1: draining");
        spawn_logged(self->strand, self->hooks.on_drain(), "drain hook");
      } else {
        logger("common")->warn("SIGUSR1 ignored: this binary has no drain hook");
      }
    } else if (!self->shutting_down) {
      begin_shutdown(self, signo);
    } else {
      fast_exit(self, signo);
    }
  }
}

}  // namespace

SignalHandler::SignalHandler(asio::any_io_executor ex, SignalHooks hooks)
    : impl_(std::make_shared<Impl>(std::move(ex), std::move(hooks))) {
  spawn_logged(impl_->strand, signal_loop(impl_), "signal handler");
}

SignalHandler::~SignalHandler() {
  asio::post(impl_->strand, [self = impl_] { release_signals(self); });
}

void SignalHandler::request_shutdown() {
  asio::post(impl_->strand, [self = impl_] {
    if (!self->shutting_down) begin_shutdown(self, SIGTERM);
  });
}

bool SignalHandler::shutting_down() const { return impl_->shutting_down; }

bool SignalHandler::shutdown_complete() const { return impl_->complete; }

}  // namespace pushgw::common
