#include "common/bus/offset_tracker.h"

#include <gtest/gtest.h>

namespace pushgw::bus {
namespace {

TEST(OffsetTracker, NothingCommittableBeforeTheFirstProcessedRecord) {
  OffsetTracker t;
  EXPECT_FALSE(t.committable());
  ASSERT_TRUE(t.handed_out(5));
  ASSERT_TRUE(t.handed_out(6));
  EXPECT_FALSE(t.committable());
  EXPECT_EQ(t.open(), 2u);
}

TEST(OffsetTracker, InOrderMarksAdvanceOnePastTheRecord) {
  OffsetTracker t;
  for (int64_t o = 10; o < 13; ++o) {
    ASSERT_TRUE(t.handed_out(o));
  }
  EXPECT_TRUE(t.processed(10));
  EXPECT_EQ(t.committable(), 11);
  EXPECT_TRUE(t.processed(11));
  EXPECT_EQ(t.committable(), 12);
  EXPECT_EQ(t.open(), 1u);
}

TEST(OffsetTracker, OutOfOrderMarkNeverSkipsAnOpenRecord) {
  OffsetTracker t;
  for (int64_t o = 0; o < 5; ++o) {
    ASSERT_TRUE(t.handed_out(o));
  }
  EXPECT_TRUE(t.processed(3));
  EXPECT_TRUE(t.processed(1));
  EXPECT_FALSE(t.committable()) << "0 is still open";
  EXPECT_TRUE(t.processed(0));
  EXPECT_EQ(t.committable(), 2) << "2 is still open";
  EXPECT_TRUE(t.processed(2));
  EXPECT_EQ(t.committable(), 4) << "3 was already done";
  EXPECT_TRUE(t.processed(4));
  EXPECT_EQ(t.committable(), 5);
  EXPECT_EQ(t.open(), 0u);
}

TEST(OffsetTracker, GapsInOffsetsAreFine) {
  OffsetTracker t;
  ASSERT_TRUE(t.handed_out(3));
  ASSERT_TRUE(t.handed_out(7));  // 4..6 compacted away
  EXPECT_TRUE(t.processed(3));
  EXPECT_EQ(t.committable(), 4);
  EXPECT_TRUE(t.processed(7));
  EXPECT_EQ(t.committable(), 8);
}

TEST(OffsetTracker, RejectsUnknownRepeatedAndBackwardOffsets) {
  OffsetTracker t;
  ASSERT_TRUE(t.handed_out(5));
  EXPECT_FALSE(t.handed_out(5)) << "repeat";
  EXPECT_FALSE(t.handed_out(4)) << "backwards";
  EXPECT_FALSE(t.handed_out(-1));
  EXPECT_FALSE(t.processed(6)) << "never handed out";
  EXPECT_FALSE(t.processed(4));
  EXPECT_TRUE(t.processed(5));
  EXPECT_FALSE(t.processed(5)) << "already marked";
  EXPECT_EQ(t.committable(), 6);
  EXPECT_FALSE(t.handed_out(5)) << "still backwards after it was committed";
  EXPECT_TRUE(t.handed_out(6));
}

}  // namespace
}  // namespace pushgw::bus
