// Message ids: unique, time-ordered prefix, fixed shape.
#include "push_api/message_id.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

#include "push_api/push_request.h"

namespace pushgw::push_api {
namespace {

TEST(MessageId, UniqueShapedAndTimeOrdered) {
  ManualClock clock(1'700'000'000'000ULL);
  MessageIdGenerator gen(clock, 0x1234);
  std::set<std::string> seen;
  std::string previous;
  for (int i = 0; i < 10'000; ++i) {
    if (i % 100 == 0) clock.advance_ms(1);
    const auto id = gen.next();
    ASSERT_EQ(id.size(), 28u);
    ASSERT_TRUE(valid_message_id(id)) << id;
    ASSERT_TRUE(seen.insert(id).second) << id;
    ASSERT_GE(id.substr(0, 12), previous.substr(0, std::min<size_t>(12, previous.size())));
    previous = id;
  }
  EXPECT_EQ(previous.substr(0, 12), "018bcfe56864");  // 1'700'000'000'100 ms
}

TEST(MessageId, ThreadsAndGeneratorsDoNotCollide) {
  ManualClock clock;
  MessageIdGenerator a(clock);
  MessageIdGenerator b(clock);
  std::vector<std::string> ids_a, ids_b;
  std::thread ta([&] {
    for (int i = 0; i < 5000; ++i) ids_a.push_back(a.next());
  });
  std::thread tb([&] {
    for (int i = 0; i < 5000; ++i) ids_b.push_back(a.next());
    for (int i = 0; i < 5000; ++i) ids_b.push_back(b.next());
  });
  ta.join();
  tb.join();
  std::set<std::string> all(ids_a.begin(), ids_a.end());
  all.insert(ids_b.begin(), ids_b.end());
  EXPECT_EQ(all.size(), 15'000u);
}

}  // namespace
}  // namespace pushgw::push_api
