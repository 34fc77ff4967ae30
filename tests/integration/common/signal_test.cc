#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <future>
#include <thread>

#include "common/log.h"
#include "common/service.h"

namespace pushgw::common {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::seconds;

/// Hooks built member by member (GCC 12 warns on partial designated initializers).
SignalHooks hooks(std::function<asio::awaitable<void>()> on_shutdown,
                  std::function<asio::awaitable<void>()> on_drain = {},
                  std::function<void(int)> on_fast_exit = {},
                  milliseconds timeout = milliseconds(30'000)) {
  SignalHooks h;
  h.on_shutdown = std::move(on_shutdown);
  h.on_drain = std::move(on_drain);
  h.on_fast_exit = std::move(on_fast_exit);
  h.shutdown_timeout = timeout;
  return h;
}

asio::awaitable<void> record_shutdown(std::atomic<int>* calls) {
  ++*calls;
  co_return;
}

/// Signals `started`, then waits until `release` fires (or is cancelled).
asio::awaitable<void> slow_shutdown(std::promise<void>* started,
                                    std::shared_ptr<asio::steady_timer> release) {
  started->set_value();
  co_await release->async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<void> failing_shutdown() {
  throw std::runtime_error("commit failed");
  co_return;
}

asio::awaitable<void> record_drain(std::promise<void>* drained) {
  drained->set_value();
  co_return;
}

TEST(SignalHandler, SigtermRunsShutdownAndReleasesTheLoop) {
  asio::io_context ctx;
  std::atomic<int> calls{0};
  SignalHandler signals(ctx.get_executor(), hooks([&calls] { return record_shutdown(&calls); }));
  EXPECT_FALSE(signals.shutting_down());
  ASSERT_EQ(std::raise(SIGTERM), 0);
  // run_for returns early only if the handler stopped waiting once shutdown finished.
  const auto t0 = std::chrono::steady_clock::now();
  ctx.run_for(seconds(10));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(5));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(signals.shutting_down());
  EXPECT_TRUE(signals.shutdown_complete());
}

TEST(SignalHandler, SigintAlsoShutsDownAndRequestIsIdempotent) {
  asio::io_context ctx;
  std::atomic<int> calls{0};
  SignalHandler signals(ctx.get_executor(), hooks([&calls] { return record_shutdown(&calls); }));
  signals.request_shutdown();
  signals.request_shutdown();
  ctx.run_for(seconds(10));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(signals.shutdown_complete());

  asio::io_context ctx2;
  std::atomic<int> calls2{0};
  SignalHandler sigint(ctx2.get_executor(), hooks([&calls2] { return record_shutdown(&calls2); }));
  ASSERT_EQ(std::raise(SIGINT), 0);
  ctx2.run_for(seconds(10));
  EXPECT_EQ(calls2, 1);
}

TEST(SignalHandler, SecondSignalDuringShutdownExitsFast) {
  asio::io_context ctx;
  auto release = std::make_shared<asio::steady_timer>(ctx, std::chrono::hours(1));
  std::promise<void> started;
  std::promise<int> fast_exit;
  SignalHandler signals(ctx.get_executor(),
                        hooks([&started, release] { return slow_shutdown(&started, release); }, {},
                              [&fast_exit, release](int signo) {
                                fast_exit.set_value(signo);
                                release->cancel();
                              }));
  std::thread io([&ctx] { ctx.run_for(seconds(20)); });
  ASSERT_EQ(std::raise(SIGTERM), 0);
  auto started_f = started.get_future();
  ASSERT_EQ(started_f.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_TRUE(signals.shutting_down());
  EXPECT_FALSE(signals.shutdown_complete());
  ASSERT_EQ(std::raise(SIGINT), 0);
  auto exit_f = fast_exit.get_future();
  ASSERT_EQ(exit_f.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_EQ(exit_f.get(), SIGINT);
  io.join();
  EXPECT_TRUE(signals.shutdown_complete());
}

TEST(SignalHandler, ShutdownDeadlineExitsFast) {
  asio::io_context ctx;
  auto release = std::make_shared<asio::steady_timer>(ctx, std::chrono::hours(1));
  std::promise<void> started;
  int fast_exit_signo = -1;
  SignalHandler signals(ctx.get_executor(),
                        hooks([&started, release] { return slow_shutdown(&started, release); }, {},
                              [&fast_exit_signo, release](int signo) {
                                fast_exit_signo = signo;
                                release->cancel();
                              },
                              milliseconds(50)));
  LogCapture capture;
  ASSERT_EQ(std::raise(SIGTERM), 0);
  const auto t0 = std::chrono::steady_clock::now();
  ctx.run_for(seconds(10));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(5));
  EXPECT_EQ(fast_exit_signo, 0);
  EXPECT_TRUE(capture.contains("shutdown did not finish within 50 ms"));
}

TEST(SignalHandler, FailingShutdownHookStillCompletes) {
  asio::io_context ctx;
  LogCapture capture;
  SignalHandler signals(ctx.get_executor(), hooks([] { return failing_shutdown(); }));
  ASSERT_EQ(std::raise(SIGTERM), 0);
  ctx.run_for(seconds(10));
  EXPECT_TRUE(signals.shutdown_complete());
  EXPECT_TRUE(capture.contains("shutdown hook failed: commit failed"));
}

TEST(SignalHandler, Sigusr1RunsDrainWithoutShuttingDown) {
  asio::io_context ctx;
  std::promise<void> drained;
  std::atomic<int> calls{0};
  SignalHandler signals(ctx.get_executor(), hooks([&calls] { return record_shutdown(&calls); },
                                                  [&drained] { return record_drain(&drained); }));
  std::thread io([&ctx] { ctx.run_for(seconds(20)); });
  ASSERT_EQ(std::raise(SIGUSR1), 0);
  auto f = drained.get_future();
  ASSERT_EQ(f.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_FALSE(signals.shutting_down());
  // Finish the test through the normal path so the io thread ends.
  signals.request_shutdown();
  io.join();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(signals.shutdown_complete());
}

}  // namespace
}  // namespace pushgw::common
