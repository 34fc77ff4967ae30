#include "common/service.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <vector>
#include <atomic>
#include <stdexcept>
#include <thread>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/spawn.h"
#include "common/version.h"

namespace pushgw::common {
namespace {

using ::testing::HasSubstr;

TEST(FdLimit, RaisesSoftLimitToHard) {
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max <= 64) GTEST_SKIP() << "hard limit too low";
  rlimit lowered = lim;
  lowered.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);

  const auto raised = raise_fd_limit();
  ASSERT_TRUE(raised) << raised.error().message();
  rlimit now{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(*raised, now.rlim_cur);
  EXPECT_GT(*raised, 64u);
  if (lim.rlim_max != RLIM_INFINITY) {
    EXPECT_EQ(*raised, lim.rlim_max);
  }
  // Raising again is a no-op that reports the same capacity.
  EXPECT_EQ(*raise_fd_limit(), *raised);
}

TEST(IoRunner, RunsHandlersOnTheRequestedThreads) {
  IoRunner io(2);
  EXPECT_EQ(io.threads(), 2u);
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  bool both_met = true;
  // Each handler waits until the other is running too: possible only on two threads.
  for (int i = 0; i < 2; ++i) {
    boost::asio::post(io.context(), [&] {
      std::unique_lock<std::mutex> lock(mu);
      ++arrived;
      cv.notify_all();
      if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return arrived == 2; })) {
        both_met = false;
      }
    });
  }
  io.run();  // returns once both handlers ran: no work left
  EXPECT_EQ(arrived, 2);
  EXPECT_TRUE(both_met);
}

TEST(IoRunner, HandlerExceptionIsLoggedAndRunContinues) {
  LogCapture capture;
  IoRunner io(1);
  bool later_ran = false;
  boost::asio::post(io.context(), [] { throw std::runtime_error("handler blew up"); });
  boost::asio::post(io.context(), [&] { later_ran = true; });
  io.run();
  EXPECT_TRUE(later_ran);
  EXPECT_TRUE(capture.contains("handler blew up"));
}

TEST(IoRunner, StartAndJoinInBackground) {
  IoRunner io(2);
  auto guard = boost::asio::make_work_guard(io.context());
  io.start();
  std::promise<std::thread::id> where;
  boost::asio::post(io.context(), [&] { where.set_value(std::this_thread::get_id()); });
  auto f = where.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_NE(f.get(), std::this_thread::get_id());
  io.stop();
  io.join();
}

TEST(IoPool, EachExecutorRunsOnItsOwnSingleThread) {
  IoPool pool(3);
  ASSERT_EQ(pool.size(), 3u);
  ASSERT_EQ(pool.executors().size(), 3u);
  pool.start();
  // Many handlers per executor: all of one executor's run on one thread, the
  // executors on different threads, and never two of one executor at once.
  constexpr int kPerExecutor = 200;
  std::vector<std::set<std::thread::id>> threads(3);
  std::vector<std::atomic<int>> inside(3);
  std::atomic<int> overlaps{0};
  std::atomic<int> done{0};
  std::mutex mu;
  for (int n = 0; n < kPerExecutor; ++n) {
    for (unsigned i = 0; i < 3; ++i) {
      boost::asio::post(pool.executor(i), [&, i] {
        if (inside[i].fetch_add(1) != 0) ++overlaps;
        {
          std::lock_guard<std::mutex> lock(mu);
          threads[i].insert(std::this_thread::get_id());
        }
        inside[i].fetch_sub(1);
        ++done;
      });
    }
  }
  for (int i = 0; i < 1000 && done.load() < 3 * kPerExecutor; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(done.load(), 3 * kPerExecutor);
  EXPECT_EQ(overlaps.load(), 0);
  std::set<std::thread::id> all;
  for (auto& t : threads) {
    EXPECT_EQ(t.size(), 1u);
    all.insert(t.begin(), t.end());
  }
  EXPECT_EQ(all.size(), 3u);
  EXPECT_EQ(all.count(std::this_thread::get_id()), 0u);
  // Idle contexts keep running until stop(); then join() returns.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::promise<void> late;
  boost::asio::post(pool.executor(2), [&] { late.set_value(); });
  EXPECT_EQ(late.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  pool.stop();
  pool.join();
}

boost::asio::awaitable<void> throws_after_start() {
  throw std::runtime_error("coroutine failure");
  co_return;
}

boost::asio::awaitable<int> returns_value() { co_return 7; }

TEST(SpawnLogged, EscapedExceptionIsLoggedWithTaskName) {
  LogCapture capture;
  boost::asio::io_context ctx;
  spawn_logged(ctx.get_executor(), throws_after_start(), "test task");
  spawn_logged(ctx.get_executor(), returns_value(), "value task");
  ctx.run();
  EXPECT_TRUE(capture.contains("test task: escaped exception: coroutine failure"));
  EXPECT_FALSE(capture.contains("value task"));
}

TEST(Metrics, ScrapeHasBuildInfoUptimeAndProcessMetrics) {
  ManualClock clock;
  Metrics m("unitbin", clock);
  auto& counter = prometheus::BuildCounter()
                      .Name("pushgw_test_events_total")
                      .Help("test events")
                      .Register(m.registry())
                      .Add({{"kind", "a"}});
  counter.Increment(3);
  clock.advance_ms(5'500);
  const std::string text = m.scrape();
  EXPECT_THAT(text, HasSubstr("pushgw_build_info{binary=\"unitbin\",version=\"" +
                              std::string(version()) + "\"} 1"));
  EXPECT_THAT(text, HasSubstr("pushgw_uptime_seconds 5.5"));
  EXPECT_THAT(text, HasSubstr("pushgw_test_events_total{kind=\"a\"} 3"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_open_fds gauge"));
  EXPECT_THAT(text, HasSubstr("process_resident_memory_bytes "));
  EXPECT_THAT(text, HasSubstr("process_cpu_seconds_total "));
  EXPECT_THAT(text, HasSubstr("process_max_fds "));
}

TEST(Metrics, ProcessStatsSeeNewDescriptors) {
  const auto before = read_process_stats();
  ASSERT_TRUE(before) << before.error().message();
  EXPECT_GT(before->rss_bytes, 0u);
  EXPECT_GE(before->vsize_bytes, before->rss_bytes);
  EXPECT_GT(before->max_fds, 0u);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const int extra = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(extra, 0);
  const auto after = read_process_stats();
  ::close(fds[0]);
  ::close(fds[1]);
  ::close(extra);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->open_fds, before->open_fds + 3);
}

}  // namespace
}  // namespace pushgw::common
