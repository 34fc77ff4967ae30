// The status-store additions push-api relies on, against a real redis-server:
// a user's known devices (offline ones included, following the device's
// latest owner), the per-app online count, and idempotency compare-and-set.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "co_run.h"
#include "common/clock.h"
#include "status_store/redis_status_store.h"
#include "testsupport/redis_server.h"

namespace pushgw::status_store {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using push_api::testing::run_co;
using Strings = std::vector<std::string>;

class StatusStoreAdditions : public ::testing::Test {
 protected:
  void SetUp() override {
    RedisStatusStoreOptions opts;
    opts.key_prefix = "ssa";
    auto s = make_redis_status_store(io_.get_executor(), redis_.url(), opts, nullptr, clock_);
    ASSERT_TRUE(s) << s.error().message();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    push_api::testing::settle(io_);
  }

  template <class T>
  T run(asio::awaitable<T> aw) {
    return run_co(io_, std::move(aw));
  }

  Registered reg(const std::string& app, const std::string& device, const std::string& user,
                 Lease lease = 60s) {
    DeviceRegistration r;
    r.app_id = app;
    r.device_id = device;
    r.node_id = "node-a";
    r.session_id = "s";
    r.platform = "ios";
    r.user_id = user;
    r.connected_at_ms = clock_.now_ms();
    auto out = run(store_->register_device(r, lease));
    EXPECT_TRUE(out) << out.error().message();
    return out ? *out : Registered{};
  }

  Strings known(const std::string& app, const std::string& user) {
    auto r = run(store_->user_known_devices(app, user));
    EXPECT_TRUE(r) << r.error().message();
    return r ? *r : Strings{"<error>"};
  }

  std::uint64_t online(const std::string& app) {
    auto r = run(store_->online_count(app));
    EXPECT_TRUE(r) << r.error().message();
    return r ? *r : 999999;
  }

  testsupport::RedisServer redis_;
  ManualClock clock_;
  asio::io_context io_;
  std::unique_ptr<RedisStatusStore> store_;
};

TEST_F(StatusStoreAdditions, KnownDevicesIncludeOfflineOnesAndFollowTheLatestOwner) {
  reg("app1", "d1", "alice");
  const auto d2 = reg("app1", "d2", "alice");
  reg("app1", "d3", "bob");
  reg("app2", "d9", "alice");  // same user id in another app: another user

  ASSERT_TRUE(run(store_->unregister_device("app1", "d2", d2.epoch)));
  auto online = run(store_->user_devices("app1", "alice"));
  ASSERT_TRUE(online);
  EXPECT_EQ(*online, (Strings{"d1"}));
  EXPECT_EQ(known("app1", "alice"), (Strings{"d1", "d2"}));
  EXPECT_EQ(known("app2", "alice"), (Strings{"d9"}));

  // d1 now belongs to bob; d2 reconnects without a user.
  reg("app1", "d1", "bob");
  reg("app1", "d2", "");
  EXPECT_EQ(known("app1", "alice"), Strings{});
  EXPECT_EQ(known("app1", "bob"), (Strings{"d1", "d3"}));
  EXPECT_EQ(known("app1", "nobody"), Strings{});
  // Pruned entries are gone from Redis, not only filtered.
  EXPECT_EQ(redis_.command({"HLEN", "ssa:uk:{app1:alice}"}), "0");

  auto bad = run(store_->user_known_devices("app1", ""));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), make_error_code(errc::invalid_argument));
}

TEST_F(StatusStoreAdditions, OnlineCountFollowsRegistrationsLeasesAndApps) {
  EXPECT_EQ(online("app1"), 0u);
  const auto a = reg("app1", "a", "", 10s);
  reg("app1", "b", "", 10s);
  reg("app1", "c", "u", 10s);
  reg("app2", "a", "", 10s);
  EXPECT_EQ(online("app1"), 3u);
  EXPECT_EQ(online("app2"), 1u);

  ASSERT_TRUE(run(store_->unregister_device("app1", "a", a.epoch)));
  EXPECT_EQ(online("app1"), 2u);

  // Leases run out by the store's clock unless refreshed.
  clock_.advance_ms(8'000);
  auto c_status = run(store_->lookup("app1", {"c"}));
  ASSERT_TRUE(c_status && (*c_status)[0]);
  auto refreshed = run(
      store_->refresh_leases("node-a", {LeaseRef{"app1", "c", (*c_status)[0]->epoch, "u"}}, 10s));
  ASSERT_TRUE(refreshed) << refreshed.error().message();
  clock_.advance_ms(4'000);
  EXPECT_EQ(online("app1"), 1u);  // b expired, c refreshed
  EXPECT_EQ(online("app2"), 0u);

  auto bad = run(store_->online_count("bad:app"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), make_error_code(errc::invalid_argument));
}

TEST_F(StatusStoreAdditions, IdempotencyCompareAndSet) {
  auto none = run(store_->get_idempotency("app1", "k"));
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);

  auto put = run(store_->put_idempotency("app1", "k", "pending:1", 60s));
  ASSERT_TRUE(put);
  EXPECT_FALSE(*put);
  auto got = run(store_->get_idempotency("app1", "k"));
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(**got, "pending:1");

  auto wrong = run(store_->replace_idempotency("app1", "k", "pending:2", "final", 60s));
  ASSERT_TRUE(wrong);
  EXPECT_FALSE(*wrong);
  auto replaced = run(store_->replace_idempotency("app1", "k", "pending:1", "final", 60s));
  ASSERT_TRUE(replaced);
  EXPECT_TRUE(*replaced);
  got = run(store_->get_idempotency("app1", "k"));
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(**got, "final");
  const auto pttl = std::stoll(redis_.command({"PTTL", "ssa:i:{app1:k}"}));
  EXPECT_GT(pttl, 50'000);

  // Keys are app-scoped.
  auto other = run(store_->get_idempotency("app2", "k"));
  ASSERT_TRUE(other);
  EXPECT_FALSE(*other);

  auto released = run(store_->replace_idempotency("app1", "k", "final", "", 0ms));
  ASSERT_TRUE(released);
  EXPECT_TRUE(*released);
  got = run(store_->get_idempotency("app1", "k"));
  ASSERT_TRUE(got);
  EXPECT_FALSE(*got);
}

TEST_F(StatusStoreAdditions, CounterLifetimeIsOnlyEverExtended) {
  std::vector<std::pair<std::string, std::int64_t>> targets{{"targets", 3}};
  ASSERT_TRUE(run(store_->incr_counters("m1", targets, 600s)));
  std::vector<std::pair<std::string, std::int64_t>> acked{{"acked", 1}};
  ASSERT_TRUE(run(store_->incr_counters("m1", acked, 1s)));  // a shorter ttl does not cut it
  EXPECT_GT(std::stoll(redis_.command({"PTTL", "ssa:m:{m1}"})), 500'000);
  ASSERT_TRUE(run(store_->incr_counters("m1", acked, 1200s)));
  EXPECT_GT(std::stoll(redis_.command({"PTTL", "ssa:m:{m1}"})), 1'100'000);
  auto all = run(store_->get_counters("m1"));
  ASSERT_TRUE(all);
  EXPECT_EQ((*all)["acked"], 2);
}

}  // namespace
}  // namespace pushgw::status_store
