#include "conn_node/send_queue.h"

#include <gtest/gtest.h>

#include <vector>

#include "conn_node/token_bucket.h"

namespace pushgw::conn_node {
namespace {

SharedFrame frame(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

TEST(SendQueue, NormalLaneIsTakenBeforeMarketing) {
  SendQueue q(1 << 20, 1024);
  ASSERT_TRUE(q.push(Lane::kMarketing, frame("m1")));
  ASSERT_TRUE(q.push(Lane::kMarketing, frame("m2")));
  ASSERT_TRUE(q.push(Lane::kNormal, frame("n1")));
  std::vector<SharedFrame> out;
  q.take(out, 10, 1 << 20);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(*out[0], "n1");
  EXPECT_EQ(*out[1], "m1");
  EXPECT_EQ(*out[2], "m2");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(SendQueue, BoundedByFrames) {
  SendQueue q(1 << 20, 2);
  EXPECT_TRUE(q.push(Lane::kNormal, frame("a")));
  EXPECT_TRUE(q.push(Lane::kMarketing, frame("b")));
  EXPECT_FALSE(q.push(Lane::kNormal, frame("c")));
  EXPECT_EQ(q.frames(), 2u);
}

TEST(SendQueue, BoundedByBytes) {
  SendQueue q(10, 100);
  EXPECT_TRUE(q.push(Lane::kNormal, frame("123456")));
  EXPECT_FALSE(q.push(Lane::kNormal, frame("12345")));
  EXPECT_TRUE(q.push(Lane::kNormal, frame("1234")));
  EXPECT_EQ(q.bytes(), 10u);
}

TEST(SendQueue, TakeRespectsLimitsButAlwaysTakesOne) {
  SendQueue q(1 << 20, 1024);
  q.push(Lane::kNormal, frame(std::string(100, 'x')));
  q.push(Lane::kNormal, frame(std::string(100, 'y')));
  std::vector<SharedFrame> out;
  q.take(out, 10, 50);
  EXPECT_EQ(out.size(), 1u);
  out.clear();
  q.take(out, 10, 1000);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_TRUE(q.empty());
}

TEST(SendQueue, TakeOneByLane) {
  SendQueue q(1 << 20, 1024);
  q.push(Lane::kMarketing, frame("m"));
  EXPECT_EQ(q.take_one(Lane::kNormal), nullptr);
  auto f = q.take_one(Lane::kMarketing);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(*f, "m");
  EXPECT_TRUE(q.empty());
}

TEST(TokenBucket, LimitsRateWithBurst) {
  TokenBucket b(10, 5, 0);
  int ok = 0;
  for (int i = 0; i < 20; ++i) ok += b.try_take(0) ? 1 : 0;
  EXPECT_EQ(ok, 5);
  EXPECT_FALSE(b.try_take(50));  // half a token
  EXPECT_TRUE(b.try_take(100));  // one token after 100 ms at 10/s
  EXPECT_FALSE(b.try_take(100));
  EXPECT_GT(b.wait_ms(100), 0u);
  EXPECT_LE(b.wait_ms(100), 101u);
  // Refill never exceeds burst.
  ok = 0;
  for (int i = 0; i < 20; ++i) ok += b.try_take(100000) ? 1 : 0;
  EXPECT_EQ(ok, 5);
}

TEST(TokenBucket, ZeroRateIsUnlimited) {
  TokenBucket b(0, 1, 0);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(b.try_take(0));
  EXPECT_EQ(b.wait_ms(0), 0u);
}

}  // namespace
}  // namespace pushgw::conn_node
