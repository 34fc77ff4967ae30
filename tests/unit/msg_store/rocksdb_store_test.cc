// RocksDB message store against a real RocksDB in a temp dir, with an
// injected clock: order, TTL (reads and the compaction filter), collapse
// keys, caps and the resync marker, watermark and acks, reopen, errors.
#include "msg_store/rocksdb_store.h"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "msg_store/error.h"
#include "store_test_util.h"

namespace pushgw::msg_store {
namespace {

using testing::kHour;
using testing::record;
using testing::seqs_of;
using testing::StoreFixture;
using Seqs = std::vector<uint64_t>;
using O = StoreOutcome;

class RocksStore : public StoreFixture {};

TEST_F(RocksStore, ReadsInSeqOrderWhateverTheStoreOrder) {
  EXPECT_EQ(put({record("app", "dev", 5, later()), record("app", "dev", 1, later())}),
            (std::vector<O>{O::kStored, O::kStored}));
  EXPECT_EQ(put({record("app", "dev", 300, later()), record("app", "dev", 3, later()),
                 record("app", "dev", 256, later())}),
            (std::vector<O>{O::kStored, O::kStored, O::kStored}));
  // 256 and 300 would sort before 3 and 5 with a little-endian or decimal key.
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{1, 3, 5, 256, 300}));
  EXPECT_EQ(read_seqs("app", "dev", 3), (Seqs{5, 256, 300}));
  EXPECT_EQ(read_seqs("app", "dev", 300), Seqs{});

  auto page = store_->read("app", "dev", 0, 2);
  ASSERT_TRUE(page);
  EXPECT_EQ(seqs_of(*page), (Seqs{1, 3}));
  EXPECT_TRUE(page->more);
  auto rest = store_->read("app", "dev", 3, 10);
  ASSERT_TRUE(rest);
  EXPECT_EQ(seqs_of(*rest), (Seqs{5, 256, 300}));
  EXPECT_FALSE(rest->more);

  // The stored frame comes back as it was given.
  auto one = store_->read("app", "dev", 4, 1);
  ASSERT_TRUE(one);
  ASSERT_EQ(one->messages.size(), 1u);
  EXPECT_EQ(one->messages[0].message_id(), "app-dev-m5");
  EXPECT_EQ(one->messages[0].payload(), "payload-5");
  EXPECT_TRUE(one->messages[0].ack_required());
}

TEST_F(RocksStore, DevicesAndAppsDoNotMix) {
  put({record("a", "bc", 1, later()), record("ab", "c", 2, later()), record("a", "b", 3, later()),
       record("a", "bcd", 4, later())});
  EXPECT_EQ(read_seqs("a", "bc"), Seqs{1});
  EXPECT_EQ(read_seqs("ab", "c"), Seqs{2});
  EXPECT_EQ(read_seqs("a", "b"), Seqs{3});
  EXPECT_EQ(read_seqs("a", "bcd"), Seqs{4});
  EXPECT_EQ(read_seqs("a", "x"), Seqs{});
}

TEST_F(RocksStore, ExpiredMessagesAreNeverReturned) {
  const uint64_t t0 = clock_.now_ms();
  put({record("app", "dev", 1, t0 + 1000), record("app", "dev", 2, t0 + 5000)});
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{1, 2}));
  clock_.advance_ms(1000);  // expires_ms == now counts as expired
  auto r = store_->read("app", "dev", 0, 10);
  ASSERT_TRUE(r);
  EXPECT_EQ(seqs_of(*r), Seqs{2});
  EXPECT_EQ(r->expired_skipped, 1u);
  clock_.advance_ms(10'000);
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{});
  auto stats = store_->device_stats("app", "dev");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->stored, 0u);
  EXPECT_EQ(stats->expired_pending, 2u);
}

TEST_F(RocksStore, AlreadyExpiredRecordsAreNotStored) {
  const uint64_t t0 = clock_.now_ms();
  EXPECT_EQ(put({record("app", "dev", 1, t0), record("app", "dev", 2, t0 - 1)}),
            (std::vector<O>{O::kExpired, O::kExpired}));
  clock_.set_ms(t0 - 10'000);  // even with the clock moved back: nothing was written
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{});
}

TEST_F(RocksStore, CompactionFilterRemovesExpiredEntries) {
  const uint64_t t0 = clock_.now_ms();
  put({record("app", "dev", 1, t0 + 1000), record("app", "dev", 2, t0 + kHour),
       record("app", "other", 1, t0 + 1000, "ck")});
  ASSERT_TRUE(store_->flush());
  clock_.advance_ms(2000);
  ASSERT_TRUE(store_->compact());
  // Moving the clock back makes any entry still on disk readable again:
  // only the one the filter did not drop is.
  clock_.set_ms(t0);
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{2});
  EXPECT_EQ(read_seqs("app", "other"), Seqs{});
  auto stats = store_->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->expired_compacted, 2u);
}

TEST_F(RocksStore, CompactionKeepsUnexpiredEntries) {
  const uint64_t t0 = clock_.now_ms();
  put({record("app", "dev", 1, t0 + 1000), record("app", "dev", 2, t0 + 2000)});
  ASSERT_TRUE(store_->compact());
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{1, 2}));
  auto stats = store_->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->expired_compacted, 0u);
}

TEST_F(RocksStore, CollapseKeepsOnlyTheNewestPerKeyAndDevice) {
  EXPECT_EQ(
      put({record("app", "dev", 1, later(), "score"), record("app", "dev", 2, later()),
           record("app", "dev", 3, later(), "score"), record("app", "dev", 4, later(), "news"),
           record("app", "peer", 5, later(), "score")}),
      (std::vector<O>{O::kStored, O::kStored, O::kCollapsed, O::kStored, O::kStored}));
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{2, 3, 4}));
  EXPECT_EQ(read_seqs("app", "peer"), Seqs{5});

  // A later batch: the newest still wins, an older arrival is superseded.
  EXPECT_EQ(put({record("app", "dev", 6, later(), "score")}), std::vector<O>{O::kCollapsed});
  EXPECT_EQ(put({record("app", "dev", 1, later(), "score", "late-1")}),
            std::vector<O>{O::kSuperseded});
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{2, 4, 6}));
  auto r = store_->store(std::vector{record("app", "dev", 7, later(), "news")});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->collapsed_away, 1u);
  auto stats = store_->device_stats("app", "dev");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->stored, 3u);
  EXPECT_EQ(stats->collapsible, 2u);
}

TEST_F(RocksStore, AckedCollapsedMessageFreesItsKey) {
  put({record("app", "dev", 1, later(), "k")});
  ASSERT_TRUE(store_->ack_seqs("app", "dev", {1}));
  EXPECT_EQ(put({record("app", "dev", 2, later(), "k")}), std::vector<O>{O::kStored});
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{2});
}

TEST_F(RocksStore, RedeliveredRecordIsADuplicate) {
  put({record("app", "dev", 1, later()), record("app", "dev", 2, later())});
  EXPECT_EQ(put({record("app", "dev", 1, later()), record("app", "dev", 2, later())}),
            (std::vector<O>{O::kDuplicate, O::kDuplicate}));
  auto stats = store_->device_stats("app", "dev");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->stored, 2u);
  // A duplicate inside one batch too.
  EXPECT_EQ(put({record("app", "dev", 3, later()), record("app", "dev", 3, later())}),
            (std::vector<O>{O::kStored, O::kDuplicate}));
}

TEST_F(RocksStore, CapDropsOldestAndLeavesOneResyncMarker) {
  max_per_device_ = 3;
  open();
  const uint64_t t0 = clock_.now_ms();
  auto outcomes =
      put({record("app", "dev", 1, t0 + 1 * kHour), record("app", "dev", 2, t0 + 5 * kHour),
           record("app", "dev", 3, t0 + 2 * kHour), record("app", "dev", 4, t0 + kHour),
           record("app", "dev", 5, t0 + kHour)});
  EXPECT_EQ(outcomes,
            (std::vector<O>{O::kStored, O::kStored, O::kStored, O::kOverflowed, O::kOverflowed}));
  // 1 and 2 dropped; the marker takes seq 2, ahead of what is left.
  auto r = store_->read("app", "dev", 0, 100);
  ASSERT_TRUE(r);
  EXPECT_EQ(seqs_of(*r), (Seqs{2, 3, 4, 5}));
  const auto& marker = r->messages[0];
  EXPECT_TRUE(is_resync_marker(marker));
  EXPECT_EQ(marker.message_id(), "pushgw.resync:2");
  EXPECT_TRUE(marker.payload().empty());
  EXPECT_TRUE(marker.ack_required());
  EXPECT_EQ(marker.expires_ms(), t0 + 5 * kHour);  // latest expiry of the dropped ones
  for (size_t i = 1; i < r->messages.size(); ++i) EXPECT_FALSE(is_resync_marker(r->messages[i]));

  // Another overflow moves the one marker forward.
  auto more = store_->store(std::vector{record("app", "dev", 6, t0 + kHour)});
  ASSERT_TRUE(more);
  EXPECT_EQ(more->outcomes, std::vector<O>{O::kOverflowed});
  EXPECT_EQ(more->overflow_dropped, 1u);
  EXPECT_EQ(more->markers_written, 1u);
  auto r2 = store_->read("app", "dev", 0, 100);
  ASSERT_TRUE(r2);
  EXPECT_EQ(seqs_of(*r2), (Seqs{3, 4, 5, 6}));
  EXPECT_EQ(r2->messages[0].message_id(), "pushgw.resync:3");
  EXPECT_EQ(r2->messages[0].expires_ms(), t0 + 5 * kHour);
  auto stats = store_->device_stats("app", "dev");
  ASSERT_TRUE(stats);
  EXPECT_TRUE(stats->resync_marker);
  EXPECT_EQ(stats->stored, 4u);

  // The marker is acked like any message.
  ASSERT_TRUE(store_->ack_ids("app", "dev", {"pushgw.resync:3"}));
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{4, 5, 6}));
}

TEST_F(RocksStore, CapCountsMessagesWithoutCollapseKeySeparately) {
  max_per_device_ = 2;
  max_collapsible_ = 2;
  open();
  put({record("app", "dev", 1, later(), "a"), record("app", "dev", 2, later()),
       record("app", "dev", 3, later(), "b"), record("app", "dev", 4, later())});
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{1, 2, 3, 4}));  // 2 + 2: no overflow
  EXPECT_EQ(put({record("app", "dev", 5, later(), "c")}), std::vector<O>{O::kOverflowed});
  auto r = store_->read("app", "dev", 0, 100);
  ASSERT_TRUE(r);
  EXPECT_EQ(seqs_of(*r), (Seqs{1, 2, 3, 4, 5}));  // collapsible 1 dropped, marker at 1
  EXPECT_TRUE(is_resync_marker(r->messages[0]));
}

TEST_F(RocksStore, ExpiredMessagesDoNotCountAgainstTheCap) {
  max_per_device_ = 2;
  open();
  const uint64_t t0 = clock_.now_ms();
  put({record("app", "dev", 1, t0 + 1000), record("app", "dev", 2, t0 + 1000)});
  clock_.advance_ms(2000);
  auto r = store_->store(std::vector{record("app", "dev", 3, later())});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcomes, std::vector<O>{O::kStored});
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{3});
  EXPECT_EQ(put({record("app", "dev", 4, later())}), std::vector<O>{O::kStored});
  auto stats = store_->device_stats("app", "dev");
  ASSERT_TRUE(stats);
  EXPECT_FALSE(stats->resync_marker);
}

TEST_F(RocksStore, CumulativeAckSetsTheWatermark) {
  put({record("app", "dev", 1, later()), record("app", "dev", 2, later(), "k"),
       record("app", "dev", 3, later()), record("app", "dev", 5, later())});
  auto a = store_->ack_up_to("app", "dev", 3);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->deleted, 3u);
  EXPECT_EQ(a->watermark_advanced, 1u);
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{5});
  // Nothing at or below the watermark is stored again.
  EXPECT_EQ(put({record("app", "dev", 2, later()), record("app", "dev", 3, later()),
                 record("app", "dev", 4, later())}),
            (std::vector<O>{O::kBelowWatermark, O::kBelowWatermark, O::kStored}));
  // A lower cumulative ack changes nothing.
  auto b = store_->ack_up_to("app", "dev", 1);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->watermark_advanced, 0u);
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{4, 5}));
  auto stats = store_->device_stats("app", "dev");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->watermark, 3u);
  EXPECT_EQ(stats->lowest_seq, 4u);
  EXPECT_EQ(stats->highest_stored_seq, 5u);
  // The collapse key of the acked message is free again.
  EXPECT_EQ(put({record("app", "dev", 6, later(), "k")}), std::vector<O>{O::kStored});
}

TEST_F(RocksStore, AckBySeqAndByMessageId) {
  put({record("app", "dev", 1, later()), record("app", "dev", 2, later()),
       record("app", "dev", 3, later())});
  auto by_seq = store_->ack_seqs("app", "dev", {2});
  ASSERT_TRUE(by_seq);
  EXPECT_EQ(by_seq->deleted, 1u);
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{1, 3}));
  auto by_id = store_->ack_ids("app", "dev", {"app-dev-m3"});
  ASSERT_TRUE(by_id);
  EXPECT_EQ(by_id->deleted, 1u);
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{1});
  // Acked messages are not stored again when redelivered.
  EXPECT_EQ(put({record("app", "dev", 2, later()), record("app", "dev", 3, later())}),
            (std::vector<O>{O::kAlreadyAcked, O::kAlreadyAcked}));
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{1});
}

TEST_F(RocksStore, AckThatRacedAheadOfItsStoreWins) {
  // The device got these live and acked them before the store records came.
  ASSERT_TRUE(store_->ack_seqs("app", "dev", {7}));
  ASSERT_TRUE(store_->ack_ids("app", "dev", {"app-dev-m8"}));
  EXPECT_EQ(put({record("app", "dev", 7, later()), record("app", "dev", 8, later()),
                 record("app", "dev", 9, later())}),
            (std::vector<O>{O::kAlreadyAcked, O::kAlreadyAcked, O::kStored}));
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{9});
}

TEST_F(RocksStore, AckAndStoreInOneBatchGiveTheSameResultInEitherOrder) {
  std::vector<bus::v1::DeliveryRecord> stores{record("app", "dev", 1, later()),
                                              record("app", "dev", 2, later())};
  std::vector<AckRequest> acks(1);
  acks[0].app_id = "app";
  acks[0].device_id = "dev";
  acks[0].message_ids = {"app-dev-m1"};
  auto r = store_->apply(stores, acks);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ack.deleted, 1u);
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{2});
}

TEST_F(RocksStore, ReopenKeepsMessagesWatermarkMarkerAndCheckpoints) {
  max_per_device_ = 2;
  open();
  put({record("app", "dev", 1, later()), record("app", "dev", 2, later()),
       record("app", "dev", 3, later()), record("app", "dev", 4, later(), "ck"),
       record("app", "dev", 5, later())});
  ASSERT_TRUE(store_->ack_up_to("app", "other", 10));
  WriteOptions w;
  w.checkpoints = {{"pushgw.offline", 42}, {"pushgw.acks", 7}};
  ASSERT_TRUE(store_->store(std::vector{record("app", "dev", 6, later(), "ck")}, w));
  auto before = store_->read("app", "dev", 0, 100);
  ASSERT_TRUE(before);
  ASSERT_TRUE(store_->close());
  EXPECT_EQ(store_->read("app", "dev", 0, 1).error(), make_error_code(store_errc::closed));
  open();
  auto after = store_->read("app", "dev", 0, 100);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->messages.size(), before->messages.size());
  for (size_t i = 0; i < after->messages.size(); ++i) {
    EXPECT_EQ(after->messages[i].SerializeAsString(), before->messages[i].SerializeAsString());
  }
  // 1 and 2 dropped (marker at 2), 4 collapsed into 6.
  EXPECT_EQ(seqs_of(*after), (Seqs{2, 3, 5, 6}));
  EXPECT_TRUE(is_resync_marker(after->messages[0]));
  EXPECT_EQ(put({record("app", "other", 9, later())}), std::vector<O>{O::kBelowWatermark});
  auto cp = store_->checkpoint("pushgw.offline");
  ASSERT_TRUE(cp);
  EXPECT_EQ(*cp, std::optional<int64_t>(42));
  EXPECT_EQ(*store_->checkpoint("pushgw.acks"), std::optional<int64_t>(7));
  EXPECT_EQ(*store_->checkpoint("none"), std::nullopt);
  // The caps were persisted with the queue: one more message still overflows.
  EXPECT_EQ(put({record("app", "dev", 7, later())}), std::vector<O>{O::kOverflowed});
}

TEST_F(RocksStore, SyncedWritesAndSyncWal) {
  WriteOptions w;
  w.sync = true;
  ASSERT_TRUE(store_->store(std::vector{record("app", "dev", 1, later())}, w));
  ASSERT_TRUE(store_->sync_wal());
  ASSERT_TRUE(store_->store({}, w));  // nothing to write, still syncs
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{1});
}

TEST_F(RocksStore, MalformedRecordsAreInvalidNotErrors) {
  bus::v1::DeliveryRecord no_push;
  no_push.set_app_id("app");
  no_push.set_device_id("dev");
  auto no_device = record("app", "", 1, later());
  auto seq0 = record("app", "dev", 0, later());
  auto no_expiry = record("app", "dev", 2, 0);
  auto long_id = record(std::string(300, 'a'), "dev", 3, later());
  auto marker_id = record("app", "dev", 4, later(), {}, "pushgw.resync:4");
  EXPECT_EQ(put({no_push, no_device, seq0, no_expiry, long_id, marker_id,
                 record("app", "dev", 5, later())}),
            (std::vector<O>{O::kInvalid, O::kInvalid, O::kInvalid, O::kInvalid, O::kInvalid,
                            O::kInvalid, O::kStored}));
  EXPECT_EQ(store_->read("", "dev", 0, 1).error(), make_error_code(store_errc::invalid_argument));
  EXPECT_EQ(store_->read("app", "dev", 0, 0).error(),
            make_error_code(store_errc::invalid_argument));
  AckRequest bad;
  bad.app_id = "app";
  auto a = store_->ack({&bad, 1});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->invalid, 1u);
}

TEST_F(RocksStore, FullDiskFailsWritesAsValuesAndRecovers) {
  put({record("app", "dev", 1, later())});
  faults_->fail_writes = true;
  auto failed = store_->store(std::vector{record("app", "dev", 2, later())});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error(), make_error_code(store_errc::no_space));
  // Still failing: no recovery while the disk is full; reads keep working.
  auto again = store_->ack_up_to("app", "dev", 1);
  ASSERT_FALSE(again);
  EXPECT_EQ(read_seqs("app", "dev"), Seqs{1});
  faults_->fail_writes = false;  // space returned
  // RocksDB recovers from a full disk on its own thread; until it is done a
  // write answers store_errc::busy. Retry, bounded.
  auto ok = store_->store(std::vector{record("app", "dev", 3, later())});
  for (int i = 0; i < 200 && !ok && ok.error() == make_error_code(store_errc::busy); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ok = store_->store(std::vector{record("app", "dev", 3, later())});
  }
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->outcomes, std::vector<O>{O::kStored});
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{1, 3}));  // the failed write left nothing behind
  ASSERT_TRUE(store_->close());
  open();
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{1, 3}));
}

// The first write after open (empty memtable) fails: Resume() alone would
// leave the failed WAL writer in place (RocksDB asserted on the next write).
TEST_F(RocksStore, FullDiskOnTheFirstWriteAfterOpenRecovers) {
  put({record("app", "dev", 1, later())});
  ASSERT_TRUE(store_->close());
  open();
  faults_->fail_writes = true;
  WriteOptions synced;
  synced.sync = true;
  synced.checkpoints.push_back({"cp", 7});
  auto failed = store_->store(std::vector{record("app", "dev", 2, later())}, synced);
  ASSERT_FALSE(failed);
  faults_->fail_writes = false;
  auto ok = store_->store(std::vector{record("app", "dev", 3, later())}, synced);
  for (int i = 0; i < 200 && !ok && ok.error() == make_error_code(store_errc::busy); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ok = store_->store(std::vector{record("app", "dev", 3, later())}, synced);
  }
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->outcomes, std::vector<O>{O::kStored});
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{1, 3}));
  ASSERT_TRUE(store_->close());
  open();
  EXPECT_EQ(read_seqs("app", "dev"), (Seqs{1, 3}));
  auto cp = store_->checkpoint("cp");
  ASSERT_TRUE(cp && *cp);
  EXPECT_EQ(**cp, 7);
}

TEST(RocksStoreOpen, ErrorsAreValues) {
  testsupport::TempDir dir("msg-store-open");
  StoreOptions o;
  o.write_buffer_bytes = 1 << 20;
  {
    std::ofstream f(dir.file("plain-file"));
    f << "x";
  }
  auto on_file = open_rocksdb_store(dir.file("plain-file"), o);
  ASSERT_FALSE(on_file);
  auto under_file = open_rocksdb_store(dir.file("plain-file") / "db", o);
  ASSERT_FALSE(under_file);
  EXPECT_EQ(under_file.error(), make_error_code(store_errc::io_error));

  StoreOptions zero_cap = o;
  zero_cap.max_per_device = 0;
  EXPECT_EQ(open_rocksdb_store(dir.file("db"), zero_cap).error(),
            make_error_code(store_errc::invalid_argument));

  auto first = open_rocksdb_store(dir.file("db"), o);
  ASSERT_TRUE(first) << first.error().message();
  auto second = open_rocksdb_store(dir.file("db"), o);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), make_error_code(store_errc::locked));

  auto faults = std::make_shared<FaultInjection>();
  faults->fail_writes = true;
  StoreOptions full = o;
  full.faults = faults;
  auto on_full_disk = open_rocksdb_store(dir.file("db2"), full);
  ASSERT_FALSE(on_full_disk);
  EXPECT_EQ(on_full_disk.error(), make_error_code(store_errc::no_space));
}

}  // namespace
}  // namespace pushgw::msg_store
