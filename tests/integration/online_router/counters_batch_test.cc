// StatusStore::incr_counters_batch (added for the router's batched message
// counters) against real Redis.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <future>

#include "router_fixture.h"

namespace pushgw::online_router::testing {
namespace {

class CountersBatchTest : public RouterFixture {
 protected:
  result<void> batch(std::vector<status_store::CounterUpdate> updates) {
    auto fut = boost::asio::co_spawn(io_->executor(), store_->incr_counters_batch(updates),
                                     boost::asio::use_future);
    EXPECT_EQ(fut.wait_for(10s), std::future_status::ready);
    return fut.get();
  }
  int64_t pttl(const std::string& message_id) {
    return std::stoll(redis_->command({"PTTL", store_->keys().counters(message_id)}));
  }
};

TEST_F(CountersBatchTest, AddsDeltasAndSetsTtlPerMessage) {
  auto r = batch({{"a", {{"routed", 2}, {"stored", 1}}, 60s},
                  {"b", {{"expired", 1}}, 3'600s},
                  {"a", {{"routed", 3}}, 120s}});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(counters("a"), (std::map<std::string, int64_t>{{"routed", 5}, {"stored", 1}}));
  EXPECT_EQ(counters("b"), (std::map<std::string, int64_t>{{"expired", 1}}));
  // The last update of a message sets its ttl.
  EXPECT_GT(pttl("a"), 60'000);
  EXPECT_LE(pttl("a"), 120'000);
  EXPECT_GT(pttl("b"), 3'000'000);
  // Adds to counters other writers keep (push-api's targets, nodes' delivered).
  auto one =
      boost::asio::co_spawn(io_->executor(), store_->incr_counters("b", {{"targets", 4}}, 3'600s),
                            boost::asio::use_future);
  ASSERT_TRUE(one.get());
  ASSERT_TRUE(batch({{"b", {{"expired", 2}}, 3'600s}}));
  EXPECT_EQ(counters("b"), (std::map<std::string, int64_t>{{"expired", 3}, {"targets", 4}}));
}

TEST_F(CountersBatchTest, SetUpdatesWriteValuesInOneCommand) {
  auto one =
      boost::asio::co_spawn(io_->executor(), store_->incr_counters("s", {{"targets", 1}}, 3'600s),
                            boost::asio::use_future);
  ASSERT_TRUE(one.get());
  status_store::CounterUpdate u{"s", {{"routed", 1}, {"stored", 1}}, 3'600s};
  u.set = true;
  ASSERT_TRUE(batch({u}));
  // A redelivered record (the router crashed before committing) sets the
  // same values again instead of counting the message twice.
  ASSERT_TRUE(batch({u}));
  EXPECT_EQ(counters("s"),
            (std::map<std::string, int64_t>{{"routed", 1}, {"stored", 1}, {"targets", 1}}));
  EXPECT_GT(pttl("s"), 3'000'000);
}

TEST_F(CountersBatchTest, KeepTtlLeavesTheExpiryAlone) {
  auto one =
      boost::asio::co_spawn(io_->executor(), store_->incr_counters("k", {{"targets", 1}}, 3'600s),
                            boost::asio::use_future);
  ASSERT_TRUE(one.get());
  status_store::CounterUpdate u{"k", {{"routed", 1}}, 60s};
  u.keep_ttl = true;
  ASSERT_TRUE(batch({u}));
  EXPECT_EQ(counters("k"), (std::map<std::string, int64_t>{{"routed", 1}, {"targets", 1}}));
  EXPECT_GT(pttl("k"), 3'000'000) << "no PEXPIRE to the shorter ttl";
  u.keep_ttl = false;
  ASSERT_TRUE(batch({u}));
  EXPECT_LE(pttl("k"), 60'000) << "without keep_ttl the update sets it";
}

TEST_F(CountersBatchTest, InvalidUpdateSendsNothing) {
  auto r = batch({{"ok", {{"routed", 1}}, 60s}, {"bad", {}, 60s}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::invalid_argument));
  EXPECT_TRUE(counters("ok").empty()) << "validated before anything is sent";
  EXPECT_FALSE(batch({{"x", {{"routed", 1}}, 0ms}}));
  EXPECT_FALSE(batch({{"", {{"routed", 1}}, 60s}}));
  EXPECT_FALSE(batch({{"x", {{std::string("bad\nfield"), 1}}, 60s}}));
  EXPECT_TRUE(batch({})) << "an empty batch is a no-op";
}

TEST_F(CountersBatchTest, StoreDownIsAnError) {
  redis_->kill();
  auto r = batch({{"a", {{"routed", 1}}, 60s}});
  EXPECT_FALSE(r);
  redis_->restart();
}

}  // namespace
}  // namespace pushgw::online_router::testing
