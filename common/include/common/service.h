#pragma once
/// Process plumbing every binary shares: the io_context runner, signal
/// handling for orderly shutdown, and the open-file limit.
///
/// A typical main:
///
///   auto fd_limit = pushgw::common::raise_fd_limit();          // log the capacity
///   pushgw::common::IoRunner io(cfg.threads);
///   Node node(io.executor(), cfg);
///   pushgw::common::SignalHooks hooks;
///   hooks.on_shutdown = [&node] { return node.shutdown(); };  // stop accepting, drain, commit
///   hooks.on_drain = [&node] { return node.drain(); };        // SIGUSR1
///   pushgw::common::SignalHandler signals(io.executor(), std::move(hooks));
///   node.start();
///   io.run();                    // returns when shutdown has finished and the work is done
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "common/error.h"

namespace pushgw::common {

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft limit
/// now in force (the process's fd capacity). Errors from getrlimit/setrlimit
/// as values.
result<uint64_t> raise_fd_limit();

/// An io_context run by a fixed number of threads.
class IoRunner {
 public:
  /// `threads` >= 1 (0 is taken as 1).
  explicit IoRunner(unsigned threads);
  /// Stops the context and joins background threads.
  ~IoRunner();
  IoRunner(const IoRunner&) = delete;
  IoRunner& operator=(const IoRunner&) = delete;

  boost::asio::io_context& context() { return ctx_; }
  boost::asio::any_io_executor executor() { return ctx_.get_executor(); }
  unsigned threads() const { return threads_; }

  /// Runs the context on `threads` threads, the calling one included, until it
  /// runs out of work or stop() is called. An exception escaping a handler is
  /// logged and that thread resumes running.
  void run();
  /// Like run(), but on `threads` background threads; join() waits for them.
  void start();
  void join();
  /// Stops the context (pending handlers are not run). Thread-safe.
  void stop() { ctx_.stop(); }

 private:
  void run_one_thread();

  unsigned threads_;
  boost::asio::io_context ctx_;
  std::vector<std::thread> workers_;
};

/// `n` io_contexts, each run by one thread of its own: the "one event loop
/// per core" model. Objects bound to one executor of the pool (a connection,
/// say) need no strand: their handlers never run concurrently. Contexts keep
/// running while idle until stop().
class IoPool {
 public:
  /// `n` >= 1 (0 is taken as 1).
  explicit IoPool(unsigned n);
  /// Stops and joins.
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  unsigned size() const { return static_cast<unsigned>(runners_.size()); }
  boost::asio::any_io_executor executor(unsigned i) { return runners_.at(i)->executor(); }
  std::vector<boost::asio::any_io_executor> executors();

  /// Starts one thread per context.
  void start();
  /// Stops every context (pending handlers are not run). Thread-safe.
  void stop();
  void join();

 private:
  std::vector<std::unique_ptr<IoRunner>> runners_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
};

/// What the signal handler calls. Every member may be empty.
struct SignalHooks {
  /// First SIGTERM or SIGINT (or request_shutdown()): stop accepting, drain,
  /// commit. Runs as a coroutine on the handler's strand; when it returns the
  /// handler restores the default signal actions and stops waiting, so the
  /// io_context can run out of work.
  std::function<boost::asio::awaitable<void>()> on_shutdown;
  /// SIGUSR1: start draining (e.g. redirect links away). Spawned, not awaited.
  std::function<boost::asio::awaitable<void>()> on_drain;
  /// A second SIGTERM/SIGINT during shutdown (signo) or the shutdown deadline
  /// passing (signo 0). Empty: std::_Exit(128 + signo), or 1 on the deadline.
  std::function<void(int signo)> on_fast_exit;
  /// Deadline for on_shutdown; zero disables it.
  std::chrono::milliseconds shutdown_timeout{30'000};
};

/// Installs handlers for SIGTERM, SIGINT and SIGUSR1 (asio::signal_set) on
/// construction and dispatches them to the hooks on a strand of `ex`.
/// Thread-safe. Destroy it before the executor's io_context.
class SignalHandler {
 public:
  SignalHandler(boost::asio::any_io_executor ex, SignalHooks hooks);
  ~SignalHandler();
  SignalHandler(const SignalHandler&) = delete;
  SignalHandler& operator=(const SignalHandler&) = delete;

  /// Begins the orderly shutdown as SIGTERM would (no-op if already begun).
  void request_shutdown();
  /// True once the shutdown began.
  bool shutting_down() const;
  /// True once on_shutdown finished (returned or threw).
  bool shutdown_complete() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace pushgw::common
