// The offline router in-process against the Kafka mock cluster and a real
// RocksDB: stores, replays on connect (order, acks, TTL, ack-before-store,
// empty replay), late-store forwarding, restart, checkpoints and bad input.
#include <chrono>
#include <map>
#include <set>
#include <thread>

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
  // (Kafka does not order the presence and offline topics against each other:
  // a store read before the disconnect would still be forwarded, and dropped
  // by the node. So the disconnect is processed first: it is the only record
  // of the next batch; the short sleep lets the previous batch finish its
  // accounting, which counts `stored` before `batches`.)
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const uint64_t batches = router().stats().batches;
  disconnect("d1", "n1", 5);
  ASSERT_TRUE(wait_for([&] { return router().stats().batches > batches; }));
  store(message("d1", 3, expires));
  ASSERT_TRUE(wait_for([&] { return router().stats().stored == 3; }));
  EXPECT_EQ(router().stats().forwarded, 1u);
  EXPECT_EQ(kafka_->high_watermark(deliver_topic("n1"), 0), 2);
}

TEST_F(OfflineRouterTest, StoredMessagesSurviveARestartAndRedeliveryIsNotAppliedTwice) {
  start_router(config());
  const uint64_t expires = now_ms() + kHourMs;
  for (uint64_t seq = 1; seq <= 3; ++seq) store(message("d1", seq, expires));
  // Stored before the ack is sent: Kafka orders neither topic against the
  // other, and an ack read first makes its message's store "already acked".
  ASSERT_TRUE(wait_for([&] { return router().stats().stored == 3; }))
      << "stored " << router().stats().stored << ", not stored " << router().stats().not_stored;
  ack("d1", {{"d1-m2", 2}});
  ASSERT_TRUE(wait_for([&] { return router().stats().ack_events == 1; }));
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

// Two routers in one group on one disk: the partitions (and their stores)
// move on join and on leave; every device still gets all its messages, in
// order, from whichever router owns it.
TEST_F(OfflineRouterTest, PartitionsMoveBetweenRoutersWithoutLossOrReorder) {
  constexpr int kDevices = 10;
  const auto cfg = config();
  start_router(cfg);
  const uint64_t expires = now_ms() + kHourMs;
  auto store_range = [&](uint64_t from, uint64_t to) {
    for (uint64_t seq = from; seq <= to; ++seq) {
      for (int d = 0; d < kDevices; ++d) store(message("d" + std::to_string(d), seq, expires));
    }
  };
  store_range(1, 10);
  ASSERT_TRUE(wait_for([&] { return router().stats().stored == 10u * kDevices; }));

  auto second = start_member(cfg);
  ASSERT_TRUE(second);
  ASSERT_TRUE(wait_for(
      [&] {
        return router().stats().partitions.size() == 1 && second->stats().partitions.size() == 1;
      },
      60s))
      << "the partitions were not split: " << router().stats().partitions.size() << " and "
      << second->stats().partitions.size();
  EXPECT_NE(router().stats().partitions, second->stats().partitions);
  for (int d = 0; d < kDevices; ++d) {
    auto a = device_stored("d" + std::to_string(d));
    auto b = device_stored("d" + std::to_string(d), second.get());
    ASSERT_TRUE(a && b);
    EXPECT_NE(a->owned, b->owned) << "one owner per device";
    EXPECT_EQ((a->owned ? a : b)->stats.stored, 10u);
  }
  store_range(11, 20);
  ASSERT_TRUE(wait_for([&] {
    return router().stats().stored + second->stats().stored == 20u * kDevices;
  })) << router().stats().stored << " + " << second->stats().stored;

  auto check = [&](const std::vector<DeliveryRecord>& recs, uint64_t first_seq, uint64_t epoch) {
    std::map<std::string, std::vector<DeliveryRecord>> by_device;
    for (const auto& r : recs) by_device[r.device_id()].push_back(r);
    ASSERT_EQ(by_device.size(), static_cast<std::size_t>(kDevices));
    for (const auto& [device, rs] : by_device) {
      ASSERT_EQ(rs.size(), 20 - first_seq + 2) << device;
      for (uint64_t i = 0; i + 1 < rs.size(); ++i) {
        ASSERT_TRUE(rs[i].has_push()) << device;
        EXPECT_EQ(rs[i].push().seq(), first_seq + i) << device << ": lost or out of order";
      }
      expect_complete(rs.back(), device, epoch, 20, static_cast<uint32_t>(20 - first_seq + 1));
    }
  };
  for (int d = 0; d < kDevices; ++d) connect("d" + std::to_string(d), "n1", 1, 0);
  check(deliveries("n1", 21u * kDevices), 1, 1);
  EXPECT_EQ(router().stats().replays + second->stats().replays, static_cast<uint64_t>(kDevices));
  EXPECT_GT(router().stats().replays, 0u) << "both routers own devices";
  EXPECT_GT(second->stats().replays, 0u) << "both routers own devices";

  // The first router leaves: the second one opens its store and replays.
  stop_router();
  ASSERT_TRUE(wait_for([&] { return second->stats().partitions.size() == 2; }, 60s));
  for (int d = 0; d < kDevices; ++d) connect("d" + std::to_string(d), "n2", 2, 10);
  check(deliveries("n2", 11u * kDevices), 11, 2);
  shutdown(*second);
}

// pushctl device/stored read these figures through GET /admin/device.
TEST_F(OfflineRouterTest, DeviceStoredFiguresComeFromTheStoreOfTheDevicesPartition) {
  start_router(config());
  const uint64_t expires = now_ms() + kHourMs;
  std::map<std::string, int32_t> partition_of;
  for (int d = 0; d < 8; ++d) {
    const std::string device = "dev" + std::to_string(d);
    for (uint64_t seq = 1; seq <= static_cast<uint64_t>(d + 1); ++seq) {
      partition_of[device] = store(message(device, seq, expires)).partition;
    }
  }
  ASSERT_TRUE(wait_for([&] { return router().stats().stored == 36; }));
  std::set<int32_t> partitions;
  for (int d = 0; d < 8; ++d) {
    const std::string device = "dev" + std::to_string(d);
    auto s = device_stored(device);
    ASSERT_TRUE(s) << s.error().message();
    EXPECT_EQ(s->partition, partition_of[device])
        << device << ": not the partition librdkafka's partitioner chose";
    EXPECT_TRUE(s->owned);
    EXPECT_EQ(s->stats.stored, static_cast<uint64_t>(d + 1)) << device;
    EXPECT_EQ(s->stats.highest_stored_seq, static_cast<uint64_t>(d + 1)) << device;
    partitions.insert(s->partition);
  }
  EXPECT_EQ(partitions.size(), static_cast<std::size_t>(kPartitions));
  ack("dev7", {{"dev7-m8", 8}}, 3);
  ASSERT_TRUE(wait_for([&] {
    auto s = device_stored("dev7");
    return s && s->stats.stored == 4;
  }));
  auto s = device_stored("dev7");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->stats.watermark, 3u);
  EXPECT_EQ(s->stats.lowest_seq, 4u);
  EXPECT_EQ(s->stats.highest_stored_seq, 7u);
  auto nobody = device_stored("nobody");
  ASSERT_TRUE(nobody);
  EXPECT_EQ(nobody->stats.stored, 0u);
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
