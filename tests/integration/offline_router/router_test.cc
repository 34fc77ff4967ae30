// The offline router in-process against the Kafka mock cluster and a real
// RocksDB: stores, replays on connect (order, acks, TTL, ack-before-store,
// empty replay), late-store forwarding, restart, checkpoints and bad input.
#include <set>

#include "common/bus/mock_cluster.h"
#include "fixture.h"

namespace pushgw::offline_router::testing {
namespace {

using bus::v1::DeliveryRecord;

class OfflineRouterTest : public RouterFixture {};

std::vector<uint64_t> pushed_seqs(const std::vector<DeliveryRecord>& rs) {
  std::vector<uint64_t> out;
  for (const auto& r : rs) {
    if (r.has_push()) out.push_back(r.push().seq());
  }
  return out;
}

void expect_complete(const DeliveryRecord& r, const std::string& device, uint64_t epoch,
                     uint64_t highest, uint32_t count) {
  ASSERT_TRUE(r.has_replay_complete()) << r.DebugString();
  EXPECT_FALSE(r.has_push());
  EXPECT_EQ(r.app_id(), kApp);
  EXPECT_EQ(r.device_id(), device);
  EXPECT_EQ(r.epoch(), epoch);
  EXPECT_EQ(r.replay_complete().epoch(), epoch);
  EXPECT_EQ(r.replay_complete().highest_seq(), highest);
  EXPECT_EQ(r.replay_complete().count(), count);
}

TEST_F(OfflineRouterTest, OfflineDeviceGetsEveryStoredMessageInSeqOrderOnConnect) {
  start_router(config());
  const uint64_t expires = now_ms() + kHourMs;
  for (uint64_t seq = 1; seq <= 30; ++seq) {
    store(message("d1", seq, expires));
    if (seq % 3 == 0) store(message("d2", seq, expires));
  }
  ASSERT_TRUE(wait_for([&] { return router().stats().stored == 40; }))
      << router().stats().stored;

  connect("d1", "n1", 7, 0);
  auto recs = deliveries("n1", 31);
  ASSERT_EQ(recs.size(), 31u);
  for (uint64_t i = 0; i < 30; ++i) {
    const auto& r = recs[i];
    ASSERT_TRUE(r.has_push());
    EXPECT_EQ(r.push().seq(), i + 1) << "replay out of seq order";
    EXPECT_EQ(r.push().message_id(), "d1-m" + std::to_string(i + 1));
    EXPECT_EQ(r.push().payload(), "payload " + std::to_string(i + 1));
    EXPECT_TRUE(r.replay());
    EXPECT_EQ(r.epoch(), 7u);
    EXPECT_EQ(r.node_id(), "n1");
    EXPECT_EQ(r.device_id(), "d1");
    EXPECT_EQ(r.schema_version(), 1u);
  }
  expect_complete(recs[30], "d1", 7, 30, 30);
  ASSERT_TRUE(wait_for([&] { return router().stats().replays == 1; }));
  EXPECT_EQ(router().stats().replayed, 30u);
  EXPECT_EQ(kafka_->high_watermark(deliver_topic("n1"), 0), 31) << "nothing of d2 goes to n1";
}

TEST_F(OfflineRouterTest, AckedMessagesAreNotResentOnTheNextConnection) {
  start_router(config());
  const uint64_t expires = now_ms() + kHourMs;
  for (uint64_t seq = 1; seq <= 5; ++seq) store(message("d1", seq, expires));
  ASSERT_TRUE(wait_for([&] { return router().stats().stored == 5; }));
  // By seq, and by id alone (the node did not know the seq).
  ack("d1", {{"d1-m2", 2}, {"d1-m4", 0}});
  ASSERT_TRUE(wait_for([&] { return router().stats().ack_events == 1; }));
  EXPECT_EQ(router().stats().acked, 2u);

  connect("d1", "n1", 1, 0);
  auto first = deliveries("n1", 4);
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(pushed_seqs(first), (std::vector<uint64_t>{1, 3, 5}));
  expect_complete(first[3], "d1", 1, 5, 3);

  // Cumulative ack up to 3, then the device reconnects on another node.
  ack("d1", {}, 3);
  ASSERT_TRUE(wait_for([&] { return router().stats().ack_events == 2; }));
  disconnect("d1", "n1", 1);
  connect("d1", "n2", 2, 0);
  auto second = deliveries("n2", 2);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(pushed_seqs(second), std::vector<uint64_t>{5});
  expect_complete(second[1], "d1", 2, 5, 1);

  // Hello.last_seq = 5: nothing above it, and 5 counts as acked.
  connect("d1", "n1", 3, 5);
  auto third = deliveries("n1", 5);
  ASSERT_EQ(third.size(), 5u);
  expect_complete(third[4], "d1", 3, 5, 0);
  ASSERT_TRUE(wait_for([&] { return router().stats().acked == 5; }));
}

TEST_F(OfflineRouterTest, ExpiredMessagesNeverArrive) {
  ManualClock clock(now_ms());
  start_router(config(), &clock);
  store(message("d1", 1, clock.now_ms() + 1000));
  store(message("d1", 2, clock.now_ms() + kHourMs));
  store(message("d1", 3, clock.now_ms() - 1));  // expired on arrival
  ASSERT_TRUE(wait_for([&] {
    auto s = router().stats();
    return s.stored == 2 && s.not_stored == 1;
  }));
  clock.advance_ms(5000);
  connect("d1", "n1", 9, 0);
  auto recs = deliveries("n1", 2);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(pushed_seqs(recs), std::vector<uint64_t>{2});
  expect_complete(recs[1], "d1", 9, 2, 1);
}

TEST_F(OfflineRouterTest, MessageWhoseAckRacedAheadOfItsStoreIsNotResent) {
  start_router(config());
  // The device got 2 and 3 live and acked them before their store records came.
  ack("d1", {{"d1-m2", 2}, {"d1-m3", 0}});
  ASSERT_TRUE(wait_for([&] { return router().stats().ack_events == 1; }));
  const uint64_t expires = now_ms() + kHourMs;
  for (uint64_t seq = 1; seq <= 4; ++seq) store(message("d1", seq, expires));
  ASSERT_TRUE(wait_for([&] {
    auto s = router().stats();
    return s.stored == 2 && s.not_stored == 2;
  }));
  connect("d1", "n1", 4, 0);
  auto recs = deliveries("n1", 3);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(pushed_seqs(recs), (std::vector<uint64_t>{1, 4}));
  expect_complete(recs[2], "d1", 4, 4, 2);
}

TEST_F(OfflineRouterTest, ReplayCompleteIsSentEvenWhenNothingIsStored) {
  start_router(config());
  connect("nobody", "n1", 42, 17);
  auto recs = deliveries("n1", 1);
  ASSERT_EQ(recs.size(), 1u);
  expect_complete(recs[0], "nobody", 42, 17, 0);
  EXPECT_EQ(recs[0].node_id(), "n1");
}

TEST_F(OfflineRouterTest, StoreArrivingAfterTheReplayIsForwardedToTheNode) {
  start_router(config());
  connect("d1", "n1", 5, 0);
  ASSERT_TRUE(wait_for([&] { return router().stats().replays == 1; }));
  const uint64_t expires = now_ms() + kHourMs;
  // Routed while the online router still saw the device offline (epoch 0).
  store(message("d1", 1, expires));
  ASSERT_TRUE(wait_for([&] { return router().stats().forwarded == 1; }));
  // Sent live to this very connection (epoch 5): not forwarded again.
  store(message("d1", 2, expires, {}, 5));
  ASSERT_TRUE(wait_for([&] { return router().stats().stored == 2; }));
  auto recs = deliveries("n1", 2);
  ASSERT_EQ(recs.size(), 2u);
  expect_complete(recs[0], "d1", 5, 0, 0);
  ASSERT_TRUE(recs[1].has_push());
  EXPECT_EQ(recs[1].push().seq(), 1u);
  EXPECT_TRUE(recs[1].replay());
  EXPECT_EQ(recs[1].epoch(), 5u);
  EXPECT_EQ(recs[1].node_id(), "n1");
  // Gone: nothing is forwarded any more; messages wait for the next connect.
  disconnect("d1", "n1", 5);
  store(message("d1", 3, expires));
  ASSERT_TRUE(wait_for([&] { return router().stats().stored == 3; }));
  EXPECT_EQ(router().stats().forwarded, 1u);
  EXPECT_EQ(kafka_->high_watermark(deliver_topic("n1"), 0), 2);
}

TEST_F(OfflineRouterTest, StoredMessagesSurviveARestartAndRedeliveryIsNotAppliedTwice) {
  start_router(config());
  const uint64_t expires = now_ms() + kHourMs;
  for (uint64_t seq = 1; seq <= 3; ++seq) store(message("d1", seq, expires));
  ack("d1", {{"d1-m2", 2}});
  ASSERT_TRUE(wait_for([&] {
    auto s = router().stats();
    return s.stored == 3 && s.ack_events == 1;
  }));
  stop_router();

  // A new group has no committed offsets: every record comes again, and the
  // store's checkpoints recognise them as applied.
  group_ = kafka_->unique_name("group-again");
  start_router(config());
  ASSERT_TRUE(wait_for([&] { return router().stats().skipped_applied == 4; }))
      << router().stats().skipped_applied;
  EXPECT_EQ(router().stats().stored, 0u);
  connect("d1", "n1", 1, 0);
  auto recs = deliveries("n1", 3);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(pushed_seqs(recs), (std::vector<uint64_t>{1, 3}));
  expect_complete(recs[2], "d1", 1, 3, 2);
}

TEST_F(OfflineRouterTest, BadRecordsAreSkippedAndCounted) {
  start_router(config());
  produce(offline_, "app1/d1", "\xff\xff not protobuf");
  auto future = message("d1", 1, now_ms() + kHourMs);
  future.set_schema_version(2);
  store(future);
  produce(presence_, "app1/d1", "\x08\x99\x99\x99\x99\x99\x99\x99\x99\x99\x01");
  bus::v1::Presence bad_node;
  bad_node.set_schema_version(1);
  bad_node.set_app_id(kApp);
  bad_node.set_device_id("d1");
  bad_node.set_node_id("no spaces/allowed");
  produce(presence_, "app1/d1", bad_node.SerializeAsString());
  store(message("d1", 2, now_ms() + kHourMs));
  ASSERT_TRUE(wait_for([&] {
    auto s = router().stats();
    return s.stored == 1 && s.rejected == 4;
  })) << router().stats().rejected;
  EXPECT_TRUE(router().ready());
}

TEST_F(OfflineRouterTest, RefusesToStartWhenPartitionCountsDiffer) {
  auto cfg = config();
  cfg.kafka.presence_topic = kafka_->create_topic(kPartitions + 1, "presence-wide");
  OfflineRouter r(io_->executor(), cfg);
  auto started = r.start();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error(), make_error_code(errc::invalid_argument));
  EXPECT_FALSE(r.ready());
}

}  // namespace
}  // namespace pushgw::offline_router::testing
