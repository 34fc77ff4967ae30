// Token buckets and per-app, per-class quotas on an injected clock.
#include "push_api/quota.h"

#include <gtest/gtest.h>

namespace pushgw::push_api {
namespace {

TEST(TokenBucket, BurstThenRefillAtTheRate) {
  TokenBucket b(10, 3, 1000);
  EXPECT_EQ(b.take(1000), 0u);
  EXPECT_EQ(b.take(1000), 0u);
  EXPECT_EQ(b.take(1000), 0u);
  EXPECT_EQ(b.take(1000), 100u);  // one token every 100 ms
  EXPECT_EQ(b.take(1050), 50u);   // a refused take costs nothing
  EXPECT_EQ(b.take(1100), 0u);
  EXPECT_EQ(b.take(1100), 100u);
  // Never more than the burst, however long the pause.
  EXPECT_EQ(b.take(100'000), 0u);
  EXPECT_EQ(b.take(100'000), 0u);
  EXPECT_EQ(b.take(100'000), 0u);
  EXPECT_NE(b.take(100'000), 0u);
}

TEST(TokenBucket, FractionalRatesAndTinyBursts) {
  TokenBucket slow(0.5, 0.2, 0);  // burst below one token still allows one request
  EXPECT_EQ(slow.take(0), 0u);
  EXPECT_EQ(slow.take(0), 2000u);
  EXPECT_EQ(slow.take(2000), 0u);
  // A clock going backwards neither refills nor breaks the bucket.
  EXPECT_EQ(slow.take(1000), 2000u);
}

constexpr std::string_view kApps = R"(
[[app]]
id = "a"
api_secret = "s"
device_secret = "d"
quota_normal_rps = 100
quota_normal_burst = 2
quota_marketing_rps = 0.5
quota_marketing_burst = 1

[[app]]
id = "b"
api_secret = "s"
device_secret = "d"
)";

TEST(Quotas, ClassesAndAppsHaveTheirOwnBuckets) {
  const auto apps = auth::AppRegistry::load_toml(kApps);
  ManualClock clock(5'000'000);
  Quotas q(apps, clock);
  EXPECT_TRUE(q.take("a", TrafficClass::kMarketing).allowed);
  auto refused = q.take("a", TrafficClass::kMarketing);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_s, 2u);
  // Marketing exhausted: normal still passes, and so does app b's marketing.
  EXPECT_TRUE(q.take("a", TrafficClass::kNormal).allowed);
  EXPECT_TRUE(q.take("a", TrafficClass::kNormal).allowed);
  EXPECT_TRUE(q.take("b", TrafficClass::kMarketing).allowed);
  const auto normal_refused = q.take("a", TrafficClass::kNormal);
  EXPECT_FALSE(normal_refused.allowed);
  EXPECT_EQ(normal_refused.retry_after_s, 1u);  // 10 ms rounds up to a whole second

  clock.advance_ms(2000);
  EXPECT_TRUE(q.take("a", TrafficClass::kMarketing).allowed);
  EXPECT_FALSE(q.take("unknown", TrafficClass::kNormal).allowed);
}

}  // namespace
}  // namespace pushgw::push_api
