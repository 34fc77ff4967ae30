#include "conn_node/timing_wheel.h"

#include <gtest/gtest.h>

#include <vector>

#include "conn_node/send_queue.h"

namespace pushgw::conn_node {
namespace {

struct Item {
  int id;
  WheelHook hook;
};

Item* owner(WheelHook& h, std::vector<Item>& items) {
  for (auto& i : items) {
    if (&i.hook == &h) return &i;
  }
  return nullptr;
}

TEST(TimingWheel, FiresAtTheDueTickNotBefore) {
  TimingWheel w(100, 8, 0);
  std::vector<Item> items(3);
  for (int i = 0; i < 3; ++i) items[i].id = i;
  w.schedule(items[0].hook, 150);  // rounds up to tick 2 (200 ms)
  w.schedule(items[1].hook, 300);
  w.schedule(items[2].hook, 5000);  // beyond one revolution (800 ms)
  EXPECT_EQ(w.size(), 3u);

  std::vector<int> fired;
  auto on_due = [&](WheelHook& h) { fired.push_back(owner(h, items)->id); };
  w.advance(199, on_due);
  EXPECT_TRUE(fired.empty());
  w.advance(200, on_due);
  EXPECT_EQ(fired, std::vector<int>({0}));
  w.advance(4999, on_due);
  EXPECT_EQ(fired, std::vector<int>({0, 1}));
  EXPECT_TRUE(items[2].hook.scheduled());
  w.advance(5000, on_due);
  EXPECT_EQ(fired, std::vector<int>({0, 1, 2}));
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimingWheel, CancelAndRescheduleAndDestroy) {
  TimingWheel w(10, 4, 1000);
  Item a{1, {}};
  Item b{2, {}};
  w.schedule(a.hook, 1020);
  w.schedule(b.hook, 1020);
  w.cancel(a.hook);
  EXPECT_FALSE(a.hook.scheduled());
  w.schedule(b.hook, 1100);  // moves it
  int fired = 0;
  w.advance(1050, [&](WheelHook&) { ++fired; });
  EXPECT_EQ(fired, 0);
  {
    Item c{3, {}};
    w.schedule(c.hook, 1060);
    EXPECT_EQ(w.size(), 2u);
  }  // destroying a linked hook unlinks it (size is advisory then)
  w.advance(1100, [&](WheelHook&) { ++fired; });
  EXPECT_EQ(fired, 1);
}

TEST(TimingWheel, PastDeadlineFiresOnNextTickAndCallbackMayReschedule) {
  TimingWheel w(100, 16, 1000);
  Item a{1, {}};
  w.schedule(a.hook, 0);  // in the past: next tick
  int fired = 0;
  w.advance(1100, [&](WheelHook& h) {
    ++fired;
    if (fired < 3) w.schedule(h, 0);
  });
  EXPECT_EQ(fired, 1);
  w.advance(1200, [&](WheelHook& h) {
    ++fired;
    w.schedule(h, 1500);
  });
  EXPECT_EQ(fired, 2);
  w.advance(1499, [&](WheelHook&) { ++fired; });
  EXPECT_EQ(fired, 2);
  w.advance(1500, [&](WheelHook&) { ++fired; });
  EXPECT_EQ(fired, 3);
}

TEST(TimingWheel, LongStallFiresEverythingDueOnce) {
  TimingWheel w(1, 8, 0);
  std::vector<Item> items(20);
  for (int i = 0; i < 20; ++i) {
    items[i].id = i;
    w.schedule(items[i].hook, static_cast<uint64_t>(i * 7));
  }
  int fired = 0;
  w.advance(100, [&](WheelHook&) { ++fired; });
  EXPECT_EQ(fired, 15);  // due 0..98 (i*7 <= 100 -> i <= 14), tick >= 1
  w.advance(1000, [&](WheelHook&) { ++fired; });
  EXPECT_EQ(fired, 20);
}

TEST(SendQueue, EmptyQueueHoldsNoStorageAndUnboundedPushIgnoresLimit) {
  SendQueue q(10, 1);
  auto f = std::make_shared<const std::string>("12345");
  ASSERT_TRUE(q.push(Lane::kNormal, f));
  EXPECT_FALSE(q.push(Lane::kNormal, f));
  q.push_unbounded(Lane::kNormal, f);
  EXPECT_EQ(q.frames(), 2u);
  for (int i = 0; i < 100; ++i) q.push_unbounded(Lane::kMarketing, f);
  std::vector<SharedFrame> out;
  q.take(out, 1000, 1 << 20);
  EXPECT_EQ(out.size(), 102u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(f.use_count(), 103);  // the ring released its references
  out.clear();
  EXPECT_EQ(f.use_count(), 1);
}

}  // namespace
}  // namespace pushgw::conn_node
