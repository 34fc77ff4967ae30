// apply_partition(): what one consumed batch does to one partition's store,
// with a real RocksDB in a temp dir and no Kafka (records are built here).
#include "offline_router/partition_work.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "msg_store/rocksdb_store.h"
#include "proto/bus.pb.h"
#include "testsupport/temp_dir.h"

namespace pushgw::offline_router {
namespace {

using bus::v1::AckEvent;
using bus::v1::DeliveryRecord;
using bus::v1::Presence;

constexpr uint64_t kHourMs = 3'600'000;
constexpr const char* kApp = "app";

class PartitionWorkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg_ = config_schema().defaults();
    cfg_.kafka.deliver_prefix = "deliver.";
    faults_ = std::make_shared<msg_store::FaultInjection>();
    msg_store::StoreOptions o;
    o.clock = &clock_;
    o.write_buffer_bytes = 1 << 20;
    o.block_cache_bytes = 1 << 20;
    o.faults = faults_;
    auto s = msg_store::open_rocksdb_store(dir_.path() / "db", o);
    ASSERT_TRUE(s) << s.error().message();
    store_ = std::shared_ptr<msg_store::MessageStore>(std::move(*s));
    state_ = std::make_shared<PartitionState>(&tracked_);
    state_->store = store_;
  }

  bus::Record rec(const std::string& topic, std::string value, const std::string& device) {
    bus::Record r;
    r.topic = topic;
    r.partition = 0;
    r.offset = next_offset_[topic]++;
    r.key = device_key(kApp, device);
    r.value = std::move(value);
    return r;
  }
  bus::Record stored(const std::string& device, uint64_t seq, uint64_t epoch = 0,
                     uint64_t expires = 0) {
    DeliveryRecord d;
    d.set_schema_version(1);
    d.set_app_id(kApp);
    d.set_device_id(device);
    d.set_epoch(epoch);
    auto* p = d.mutable_push();
    p->set_message_id(device + "-m" + std::to_string(seq));
    p->set_seq(seq);
    p->set_payload("p" + std::to_string(seq));
    p->set_expires_ms(expires != 0 ? expires : clock_.now_ms() + kHourMs);
    p->set_ack_required(true);
    return rec(cfg_.kafka.offline_topic, d.SerializeAsString(), device);
  }
  bus::Record presence(const std::string& device, Presence::Kind kind, const std::string& node,
                       uint64_t epoch, uint64_t last_seq = 0) {
    Presence p;
    p.set_schema_version(1);
    p.set_kind(kind);
    p.set_app_id(kApp);
    p.set_device_id(device);
    p.set_node_id(node);
    p.set_epoch(epoch);
    p.set_last_seq(last_seq);
    return rec(cfg_.kafka.presence_topic, p.SerializeAsString(), device);
  }
  bus::Record connected(const std::string& device, const std::string& node, uint64_t epoch,
                        uint64_t last_seq = 0) {
    return presence(device, Presence::CONNECTED, node, epoch, last_seq);
  }
  bus::Record disconnected(const std::string& device, const std::string& node, uint64_t epoch) {
    return presence(device, Presence::DISCONNECTED, node, epoch);
  }
  bus::Record acked(const std::string& device, std::vector<uint64_t> seqs, uint64_t last = 0) {
    AckEvent ev;
    ev.set_schema_version(1);
    ev.set_app_id(kApp);
    ev.set_device_id(device);
    ev.set_last_seq(last);
    for (auto s : seqs) {
      auto* m = ev.add_acked();
      m->set_seq(s);
      m->set_message_id(device + "-m" + std::to_string(s));
    }
    return rec(cfg_.kafka.acks_topic, ev.SerializeAsString(), device);
  }

  PartitionResult run(std::vector<bus::Record> records) {
    PartitionWork w;
    w.partition = 0;
    w.state = state_;
    w.store = store_;
    w.records = std::move(records);
    WorkContext ctx;
    ctx.config = &cfg_;
    ctx.tracked = &tracked_;
    ctx.now_ms = [this] { return clock_.now_ms(); };
    if (broker_) {
      ctx.offline_end_offset = [this](int32_t partition) -> std::optional<int64_t> {
        EXPECT_EQ(partition, 0);
        ++end_offset_queries_;
        return end_offset_;
      };
    }
    return apply_partition(ctx, w);
  }

  std::vector<uint64_t> stored_seqs(const std::string& device) {
    auto r = store_->read(kApp, device, 0, 1000);
    EXPECT_TRUE(r);
    std::vector<uint64_t> out;
    if (r) {
      for (const auto& m : r->messages) out.push_back(m.seq());
    }
    return out;
  }

  static std::vector<DeliveryRecord> decode(const std::vector<bus::OutRecord>& out) {
    std::vector<DeliveryRecord> v;
    for (const auto& o : out) {
      DeliveryRecord d;
      EXPECT_TRUE(d.ParseFromString(o.value));
      v.push_back(std::move(d));
    }
    return v;
  }

  ManualClock clock_{1'700'000'000'000ULL};
  testsupport::TempDir dir_{"offline-work-test"};
  RouterConfig cfg_;
  std::shared_ptr<msg_store::FaultInjection> faults_;
  std::shared_ptr<msg_store::MessageStore> store_;
  std::atomic<uint64_t> tracked_{0};
  std::shared_ptr<PartitionState> state_;
  std::map<std::string, int64_t> next_offset_;
  // The broker's end offset of pushgw.offline[0] (nullopt: not available);
  // without broker_ the work has no way to ask.
  bool broker_ = false;
  std::optional<int64_t> end_offset_;
  int end_offset_queries_ = 0;
};

std::vector<uint64_t> replayed_seqs(const std::vector<DeliveryRecord>& recs) {
  std::vector<uint64_t> out;
  for (const auto& d : recs) {
    if (d.has_push()) out.push_back(d.push().seq());
  }
  return out;
}

TEST_F(PartitionWorkTest, StoresAndAConnectInOneBatchReplayInSeqOrder) {
  // Stored out of order, then the device connects in the same batch.
  auto r = run({stored("d1", 3), stored("d1", 1), stored("d2", 5), stored("d1", 2),
                connected("d1", "n1", 9)});
  ASSERT_FALSE(r.error) << r.error.message();
  EXPECT_EQ(r.applied.store.count(msg_store::StoreOutcome::kStored), 4u);
  ASSERT_EQ(r.replays.size(), 1u);
  const auto& g = r.replays[0];
  EXPECT_EQ(g.messages, 3u);
  auto recs = decode(g.records);
  ASSERT_EQ(recs.size(), 4u);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(recs[i].has_push());
    EXPECT_EQ(recs[i].push().seq(), i + 1);
    EXPECT_TRUE(recs[i].replay());
    EXPECT_EQ(recs[i].epoch(), 9u);
    EXPECT_EQ(recs[i].node_id(), "n1");
    EXPECT_EQ(g.records[i].topic, "deliver.n1");
    EXPECT_EQ(g.records[i].key, "app/d1");
  }
  ASSERT_TRUE(recs[3].has_replay_complete());
  EXPECT_EQ(recs[3].replay_complete().epoch(), 9u);
  EXPECT_EQ(recs[3].replay_complete().highest_seq(), 3u);
  EXPECT_EQ(recs[3].replay_complete().count(), 3u);
  EXPECT_TRUE(r.forwards.empty());
}

TEST_F(PartitionWorkTest, ReplayPagesThroughLongQueues) {
  cfg_.replay.page = 4;
  std::vector<bus::Record> batch;
  for (uint64_t s = 1; s <= 11; ++s) batch.push_back(stored("d1", s));
  ASSERT_FALSE(run(std::move(batch)).error);
  auto r = run({connected("d1", "n1", 1, 2)});
  ASSERT_EQ(r.replays.size(), 1u);
  auto recs = decode(r.replays[0].records);
  ASSERT_EQ(recs.size(), 10u);
  for (std::size_t i = 0; i < 9; ++i) EXPECT_EQ(recs[i].push().seq(), i + 3);
  EXPECT_EQ(recs[9].replay_complete().highest_seq(), 11u);
  EXPECT_EQ(recs[9].replay_complete().count(), 9u);
}

TEST_F(PartitionWorkTest, LastSeqOfAConnectIsACumulativeAck) {
  ASSERT_FALSE(run({stored("d1", 1), stored("d1", 2), stored("d1", 3)}).error);
  auto r = run({connected("d1", "n1", 2, 2)});
  ASSERT_EQ(r.replays.size(), 1u);
  EXPECT_EQ(r.applied.ack.deleted, 2u);
  EXPECT_EQ(stored_seqs("d1"), std::vector<uint64_t>{3});
  // Below the watermark now: a late store of seq 1 is dropped.
  auto late = run({stored("d1", 1)});
  EXPECT_EQ(late.applied.store.count(msg_store::StoreOutcome::kBelowWatermark), 1u);
}

TEST_F(PartitionWorkTest, AckBeforeStoreDropsTheStore) {
  ASSERT_FALSE(run({acked("d1", {2})}).error);
  auto r = run({stored("d1", 1), stored("d1", 2)});
  EXPECT_EQ(r.applied.store.count(msg_store::StoreOutcome::kAlreadyAcked), 1u);
  EXPECT_EQ(stored_seqs("d1"), std::vector<uint64_t>{1});
}

TEST_F(PartitionWorkTest, RedeliveredRecordsAreSkippedByTheCheckpoints) {
  auto first = run({stored("d1", 1), stored("d1", 2), acked("d1", {1})});
  ASSERT_FALSE(first.error);
  EXPECT_EQ(first.skipped_applied, 0u);
  // The same records again (a crash before the commit), plus a new one.
  next_offset_.clear();
  auto again = run({stored("d1", 1), stored("d1", 2), acked("d1", {1}), stored("d1", 3)});
  ASSERT_FALSE(again.error);
  EXPECT_EQ(again.skipped_applied, 3u);
  EXPECT_EQ(again.ack_events, 0u);
  EXPECT_EQ(again.applied.store.outcomes.size(), 1u) << "only the new record is applied";
  EXPECT_EQ(stored_seqs("d1"), (std::vector<uint64_t>{2, 3}));
  auto cp = store_->checkpoint(cfg_.kafka.offline_topic);
  ASSERT_TRUE(cp && *cp);
  EXPECT_EQ(**cp, 3);
}

TEST_F(PartitionWorkTest, RecordsPastTheCheckpointCountAStateGap) {
  ASSERT_FALSE(run({stored("d1", 1)}).error);
  auto fresh = std::make_shared<PartitionState>(&tracked_);
  fresh->store = store_;
  state_ = fresh;
  next_offset_[cfg_.kafka.offline_topic] = 5;  // offsets 1..4 were applied elsewhere
  auto r = run({stored("d1", 2), stored("d1", 3)});
  EXPECT_EQ(r.state_gaps, 1u);
  EXPECT_EQ(stored_seqs("d1"), (std::vector<uint64_t>{1, 2, 3}));
}

TEST_F(PartitionWorkTest, OnlyTheNewestConnectIsReplayedAndADisconnectCancelsIt) {
  ASSERT_FALSE(run({stored("d1", 1), stored("d2", 1)}).error);
  auto r = run({connected("d1", "n1", 1), connected("d1", "n2", 2), connected("d2", "n1", 4),
                disconnected("d2", "n1", 4)});
  ASSERT_EQ(r.replays.size(), 1u);
  EXPECT_EQ(r.replays[0].records.front().topic, "deliver.n2");
  auto recs = decode(r.replays[0].records);
  EXPECT_EQ(recs.back().replay_complete().epoch(), 2u);
  EXPECT_EQ(r.replays_skipped, 2u);
  // An older connect arriving after a newer one is not replayed either.
  auto stale = run({connected("d1", "n1", 3), connected("d1", "n2", 1)});
  ASSERT_EQ(stale.replays.size(), 1u);
  EXPECT_EQ(decode(stale.replays[0].records).back().replay_complete().epoch(), 3u);
}

TEST_F(PartitionWorkTest, LateStoresAreForwardedToTheConnectedNodeOnly) {
  ASSERT_FALSE(run({connected("d1", "n1", 5)}).error);
  EXPECT_EQ(tracked_.load(), 1u);
  auto r = run({stored("d1", 1), stored("d1", 2, /*epoch=*/5), stored("d9", 1)});
  ASSERT_EQ(r.forwards.size(), 1u) << "d1#2 went live to epoch 5, d9 is not connected";
  EXPECT_EQ(r.forwards[0].topic, "deliver.n1");
  auto f = decode(r.forwards);
  EXPECT_EQ(f[0].push().seq(), 1u);
  EXPECT_TRUE(f[0].replay());
  EXPECT_EQ(f[0].epoch(), 5u);
  // A duplicate store (the online router produced it again) is not forwarded again.
  auto dup = run({stored("d1", 1), stored("d1", 3)});
  ASSERT_EQ(dup.forwards.size(), 1u);
  EXPECT_EQ(decode(dup.forwards)[0].push().seq(), 3u);

  ASSERT_FALSE(run({disconnected("d1", "n1", 5)}).error);
  EXPECT_EQ(tracked_.load(), 0u);
  EXPECT_TRUE(run({stored("d1", 4)}).forwards.empty());

  cfg_.replay.forward_late_stores = false;
  ASSERT_FALSE(run({connected("d1", "n1", 6)}).error);
  EXPECT_TRUE(run({stored("d1", 5)}).forwards.empty());
}

// A CONNECTED presence read before stores that were produced before it (Kafka
// orders records within a partition, not across topics): its replay waits for
// them, so they arrive in seq order instead of as late forwards after newer
// live messages.
TEST_F(PartitionWorkTest, AConnectThatOvertookStoresWaitsForThemAndReplaysInOrder) {
  broker_ = true;
  ASSERT_FALSE(run({stored("d1", 1)}).error);  // pushgw.offline applied up to offset 1
  end_offset_ = 3;                              // two more stores are on their way
  auto c = connected("d1", "n1", 7);
  const int64_t presence_offset = c.offset;
  auto r = run({c});
  ASSERT_FALSE(r.error);
  EXPECT_TRUE(r.replays.empty()) << "replayed before the store caught up";
  EXPECT_EQ(r.replays_deferred, 1u);
  EXPECT_EQ(r.deferred_offsets, std::vector<int64_t>{presence_offset});
  EXPECT_TRUE(r.released.empty());

  auto r2 = run({stored("d1", 2), stored("d1", 3)});
  ASSERT_FALSE(r2.error);
  EXPECT_TRUE(r2.forwards.empty()) << "the replay carries them, in order";
  ASSERT_EQ(r2.replays.size(), 1u);
  auto recs = decode(r2.replays[0].records);
  EXPECT_EQ(replayed_seqs(recs), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(recs.back().replay_complete().highest_seq(), 3u);
  EXPECT_EQ(recs.back().replay_complete().epoch(), 7u);
  EXPECT_EQ(r2.replays_caught_up, 1u);
  ASSERT_EQ(r2.released.size(), 1u);
  EXPECT_EQ(r2.released[0].offset, presence_offset);
  EXPECT_EQ(r2.released[0].topic, cfg_.kafka.presence_topic);
  EXPECT_TRUE(state_->pending.empty());

  // Connected and caught up: a later store is a late forward again.
  auto r3 = run({stored("d1", 4)});
  ASSERT_EQ(r3.forwards.size(), 1u);
  EXPECT_EQ(decode(r3.forwards)[0].push().seq(), 4u);
}

TEST_F(PartitionWorkTest, AWaitingReplayGoesAtItsDeadlineWithWhatIsStored) {
  broker_ = true;
  ASSERT_FALSE(run({stored("d1", 1)}).error);
  end_offset_ = 9;  // never reached below
  ASSERT_EQ(run({connected("d1", "n1", 2)}).replays_deferred, 1u);
  clock_.advance_ms(static_cast<uint64_t>(cfg_.replay.catch_up_wait.count()) - 1);
  auto early = run({});
  EXPECT_TRUE(early.replays.empty());
  EXPECT_TRUE(early.released.empty());
  clock_.advance_ms(1);
  auto r = run({});
  ASSERT_EQ(r.replays.size(), 1u);
  EXPECT_EQ(replayed_seqs(decode(r.replays[0].records)), std::vector<uint64_t>{1});
  EXPECT_EQ(r.replays_wait_timeouts, 1u);
  EXPECT_EQ(r.released.size(), 1u);
}

TEST_F(PartitionWorkTest, ANewerPresenceEndsAWaitingReplay) {
  broker_ = true;
  ASSERT_FALSE(run({stored("d1", 1), stored("d2", 1)}).error);
  end_offset_ = 9;
  auto r = run({connected("d1", "n1", 2), connected("d2", "n1", 3)});
  EXPECT_EQ(r.replays_deferred, 2u);
  EXPECT_EQ(end_offset_queries_, 1) << "one question per partition and batch";
  // d1 disconnects (same epoch): no replay. d2 reconnects elsewhere: the new
  // connection's replay waits in its place.
  auto r2 = run({disconnected("d1", "n1", 2), connected("d2", "n2", 4)});
  EXPECT_TRUE(r2.replays.empty());
  EXPECT_EQ(r2.released.size(), 2u);
  EXPECT_EQ(r2.replays_deferred, 1u);
  ASSERT_EQ(state_->pending.size(), 1u);
  EXPECT_EQ(state_->pending.begin()->second.epoch, 4u);
  EXPECT_EQ(state_->pending.begin()->second.node_id, "n2");
}

TEST_F(PartitionWorkTest, NoWaitWhenCaughtUpOrTheEndOffsetIsUnknownOrWaitingIsOff) {
  broker_ = true;
  ASSERT_FALSE(run({stored("d1", 1)}).error);
  end_offset_ = 1;  // caught up
  EXPECT_EQ(run({connected("d1", "n1", 2)}).replays.size(), 1u);
  end_offset_ = std::nullopt;  // the broker did not answer
  EXPECT_EQ(run({connected("d1", "n1", 3)}).replays.size(), 1u);
  end_offset_ = 9;
  cfg_.replay.catch_up_wait = std::chrono::milliseconds(0);
  EXPECT_EQ(run({connected("d1", "n1", 4)}).replays.size(), 1u);
  EXPECT_TRUE(state_->pending.empty());
}

TEST_F(PartitionWorkTest, TrackedConnectionsAreBounded) {
  cfg_.replay.max_tracked_connections = 1;
  ASSERT_FALSE(run({connected("d1", "n1", 1), connected("d2", "n1", 1)}).error);
  EXPECT_EQ(tracked_.load(), 1u);
  EXPECT_EQ(state_->connected.size(), 1u);
  state_.reset();
  EXPECT_EQ(tracked_.load(), 0u) << "a forgotten partition gives its share back";
}

TEST_F(PartitionWorkTest, ExpiredMessagesAreNotStoredNorReplayed) {
  auto r = run({stored("d1", 1, 0, clock_.now_ms() + 1000), stored("d1", 2),
                stored("d1", 3, 0, clock_.now_ms() - 1)});
  EXPECT_EQ(r.applied.store.count(msg_store::StoreOutcome::kExpired), 1u);
  clock_.advance_ms(2000);
  auto c = run({connected("d1", "n1", 1)});
  ASSERT_EQ(c.replays.size(), 1u);
  auto recs = decode(c.replays[0].records);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].push().seq(), 2u);
}

TEST_F(PartitionWorkTest, BadRecordsAreCountedNotApplied) {
  auto garbage = rec(cfg_.kafka.offline_topic, "\xff\xff", "d1");
  auto future = stored("d1", 2);
  DeliveryRecord d;
  ASSERT_TRUE(d.ParseFromString(future.value));
  d.set_schema_version(2);
  future.value = d.SerializeAsString();
  auto bad_node = connected("d1", "no/slash", 1);
  auto other = rec("other.topic", "x", "d1");
  auto good = stored("d1", 1);
  auto r = run({garbage, future, bad_node, other, good});
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.rejected_bad, 3u);
  EXPECT_EQ(r.rejected_schema, 1u);
  EXPECT_TRUE(r.replays.empty());
  EXPECT_EQ(stored_seqs("d1"), std::vector<uint64_t>{1});
  // The checkpoint covers the rejected records too: a redelivery skips them.
  auto cp = store_->checkpoint(cfg_.kafka.offline_topic);
  ASSERT_TRUE(cp && *cp);
  EXPECT_EQ(**cp, 3);
}

TEST_F(PartitionWorkTest, AFailedWriteAppliesNothingAndCanBeRetried) {
  faults_->fail_writes = true;
  std::vector<bus::Record> batch = {stored("d1", 1), acked("d1", {7}), connected("d1", "n1", 1)};
  auto failed = run(batch);
  EXPECT_TRUE(failed.error);
  EXPECT_TRUE(failed.replays.empty()) << "no replay without the write";
  faults_->fail_writes = false;
  PartitionResult ok;
  for (int i = 0; i < 200; ++i) {  // RocksDB may report busy while it recovers
    ok = run(batch);
    if (!ok.error) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(ok.error) << ok.error.message();
  EXPECT_EQ(ok.skipped_applied, 0u);
  EXPECT_EQ(stored_seqs("d1"), std::vector<uint64_t>{1});
  ASSERT_EQ(ok.replays.size(), 1u);
  EXPECT_EQ(ok.replays[0].messages, 1u);
}

TEST(NodeId, OnlyTopicSafeNamesAreValid) {
  EXPECT_TRUE(valid_node_id("node-1.a_b"));
  EXPECT_FALSE(valid_node_id(""));
  EXPECT_FALSE(valid_node_id("a/b"));
  EXPECT_FALSE(valid_node_id("a b"));
  EXPECT_FALSE(valid_node_id(std::string(201, 'a')));
  EXPECT_TRUE(valid_node_id(std::string(200, 'a')));
  EXPECT_EQ(device_key("a", "d"), "a/d");
}

}  // namespace
}  // namespace pushgw::offline_router
