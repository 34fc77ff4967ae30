#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "histogram.h"
#include "report.h"

namespace pushgw::loadgen {
namespace {

TEST(LoadgenHistogram, SmallValuesAreExact) {
  Histogram h;
  for (int v = 0; v < 256; ++v) h.record(v);
  EXPECT_EQ(h.count(), 256u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 255);
  EXPECT_EQ(h.quantile(0.5), 127);
  EXPECT_EQ(h.quantile(1.0), 255);
  EXPECT_EQ(h.quantile(0.0), 0);
  EXPECT_DOUBLE_EQ(h.mean(), 127.5);
}

TEST(LoadgenHistogram, BucketsAreContiguousAndPrecise) {
  for (size_t i = 0; i < 3000; ++i) {
    EXPECT_EQ(Histogram::lowest_of(i + 1), Histogram::highest_of(i) + 1) << i;
    EXPECT_EQ(Histogram::index_of(Histogram::lowest_of(i)), i) << i;
    EXPECT_EQ(Histogram::index_of(Histogram::highest_of(i)), i) << i;
  }
  std::mt19937_64 rng(7);
  for (int n = 0; n < 100000; ++n) {
    const auto v = static_cast<int64_t>(rng() >> (rng() % 60 + 2));
    const size_t i = Histogram::index_of(v);
    ASSERT_LE(Histogram::lowest_of(i), v);
    ASSERT_GE(Histogram::highest_of(i), v);
    // Relative width of a bucket stays under 1/128.
    ASSERT_LE(static_cast<double>(Histogram::highest_of(i) - Histogram::lowest_of(i)),
              static_cast<double>(v) / 128.0 + 1);
  }
}

TEST(LoadgenHistogram, QuantilesOfALargeSpread) {
  Histogram h;
  for (int v = 1; v <= 100000; ++v) h.record(v);
  EXPECT_NEAR(static_cast<double>(h.quantile(0.5)), 50000, 50000 / 128.0 + 1);
  EXPECT_NEAR(static_cast<double>(h.quantile(0.9)), 90000, 90000 / 128.0 + 1);
  EXPECT_NEAR(static_cast<double>(h.quantile(0.99)), 99000, 99000 / 128.0 + 1);
  EXPECT_EQ(h.quantile(1.0), 100000);
  EXPECT_EQ(h.max(), 100000);
}

TEST(LoadgenHistogram, MergeEqualsRecordingEverything) {
  Histogram a, b, all;
  for (int v = 0; v < 1000; ++v) {
    (v % 3 ? a : b).record(v * 37);
    all.record(v * 37);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  for (double q : {0.1, 0.5, 0.9, 0.99, 0.999}) EXPECT_EQ(a.quantile(q), all.quantile(q)) << q;
  Histogram empty;
  a.merge(empty);
  EXPECT_EQ(a.count(), all.count());
}

TEST(LoadgenHistogram, NegativeValuesAreClampedAndCounted) {
  Histogram h;
  h.record(-5);
  h.record(3, 2);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.clamped(), 1u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.quantile(0.5), 3);
  Histogram e;
  EXPECT_EQ(e.quantile(0.99), 0);
  EXPECT_EQ(e.max(), 0);
}

TEST(LoadgenTally, MatchesReceiptsWithAcceptedPushes) {
  Tally t;
  t.expect("m1", {1, 2, 3});
  t.receive("m1", 1, 5);
  t.receive("m1", 2, 7);
  EXPECT_EQ(t.expected(), 3u);
  EXPECT_EQ(t.delivered(), 2u);
  EXPECT_EQ(t.lost(), 1u);
  auto lost = t.lost_sample(10);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].first, "m1");
  EXPECT_EQ(lost[0].second, 3u);
  t.receive("m1", 3, 9);
  EXPECT_EQ(t.lost(), 0u);
  auto h = t.latencies();
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.max(), 9);
}

TEST(LoadgenTally, ReceiptBeforeTheApiAnswerCounts) {
  Tally t;
  t.receive("m1", 4, 2);  // the device was faster than the HTTP response
  EXPECT_EQ(t.delivered(), 0u);
  t.expect("m1", {4, 5});
  EXPECT_EQ(t.delivered(), 1u);
  EXPECT_EQ(t.lost(), 1u);
  EXPECT_EQ(t.unexpected(), 0u);
}

TEST(LoadgenTally, DuplicatesAndUnexpected) {
  Tally t;
  t.expect("m1", {1, 1, 2});  // a repeated target counts once
  EXPECT_EQ(t.expected(), 2u);
  t.receive("m1", 1, 3);
  t.receive("m1", 1, 50);  // duplicate: latency of the first receipt is kept
  t.receive("m1", 2, 4);
  t.receive("m1", 9, 4);   // not a target
  t.receive("m2", 1, 4);   // never accepted
  EXPECT_EQ(t.delivered(), 2u);
  EXPECT_EQ(t.duplicates(), 1u);
  EXPECT_EQ(t.unexpected(), 2u);
  EXPECT_EQ(t.latencies().max(), 4);
  EXPECT_EQ(t.latencies().count(), 2u);
}

TEST(LoadgenReport, PassFailAndForms) {
  Report r;
  r.devices = 10;
  r.workers = 1;
  r.connected = 10;
  r.connect_s = 2;
  r.links_per_node["node-1"] = 10;
  r.expected = r.delivered = 10;
  r.deliver_s = 0.5;
  for (int i = 1; i <= 10; ++i) r.latency.record(i);
  EXPECT_TRUE(r.passed());
  EXPECT_DOUBLE_EQ(r.connect_rate(), 5);
  EXPECT_DOUBLE_EQ(r.delivered_rate(), 20);
  auto j = to_json(r);
  EXPECT_TRUE(j.at("passed").as_bool());
  EXPECT_EQ(j.at("latency_ms").at("p50").as_int64(), 5);
  EXPECT_EQ(j.at("latency_ms").at("max").as_int64(), 10);
  EXPECT_EQ(j.at("links_per_node").at("node-1").as_uint64(), 10u);
  auto table = format_table(r);
  EXPECT_NE(table.find("PASS"), std::string::npos);
  EXPECT_NE(table.find("node-1=10"), std::string::npos);

  r.lost = 1;
  EXPECT_FALSE(r.passed());
  EXPECT_FALSE(to_json(r).at("passed").as_bool());
  EXPECT_NE(format_table(r).find("FAIL"), std::string::npos);
  r.lost = 0;
  r.dropped = 1;
  EXPECT_FALSE(r.passed());
  r.dropped = 0;
  r.connect_failed = 1;
  EXPECT_FALSE(r.passed());
}

}  // namespace
}  // namespace pushgw::loadgen
