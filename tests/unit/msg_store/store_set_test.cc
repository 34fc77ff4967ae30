// StoreSet: one database per partition under a base dir, reopen after close,
// and waiting for a previous holder of the same partition.
#include "msg_store/store_set.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "msg_store/error.h"
#include "store_test_util.h"

namespace pushgw::msg_store {
namespace {

using namespace std::chrono_literals;
using testing::record;

StoreOptions small_options(const Clock& clock) {
  StoreOptions o;
  o.clock = &clock;
  o.write_buffer_bytes = 1 << 20;
  o.block_cache_bytes = 1 << 20;
  return o;
}

TEST(StoreSet, OneDatabasePerPartition) {
  testsupport::TempDir dir("store-set");
  ManualClock clock;
  StoreSet set(dir.path() / "stores", small_options(clock), 2s);
  auto p0 = set.open(0);
  auto p7 = set.open(7);
  ASSERT_TRUE(p0) << p0.error().message();
  ASSERT_TRUE(p7) << p7.error().message();
  EXPECT_NE(p0->get(), p7->get());
  EXPECT_EQ(set.open(0)->get(), p0->get());  // open twice: the same store
  EXPECT_EQ(set.get(7).get(), p7->get());
  EXPECT_EQ(set.get(3), nullptr);
  EXPECT_EQ(set.open_partitions(), (std::vector<int32_t>{0, 7}));
  EXPECT_TRUE(std::filesystem::is_directory(set.dir_of(0)));
  EXPECT_EQ(set.dir_of(7), dir.path() / "stores" / "partition-7");

  const uint64_t later = clock.now_ms() + 3'600'000;
  ASSERT_TRUE((*p0)->store(std::vector{record("app", "dev", 1, later)}));
  auto other = (*p7)->read("app", "dev", 0, 10);
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->messages.empty());

  EXPECT_EQ(set.open(-1).error(), make_error_code(store_errc::invalid_argument));
}

TEST(StoreSet, CloseThenReopenKeepsData) {
  testsupport::TempDir dir("store-set");
  ManualClock clock;
  StoreSet set(dir.path(), small_options(clock), 2s);
  const uint64_t later = clock.now_ms() + 3'600'000;
  {
    auto s = set.open(2);
    ASSERT_TRUE(s);
    ASSERT_TRUE((*s)->store(std::vector{record("app", "dev", 1, later)}));
  }
  set.close(2);
  EXPECT_EQ(set.get(2), nullptr);
  EXPECT_TRUE(set.open_partitions().empty());
  auto again = set.open(2);
  ASSERT_TRUE(again) << again.error().message();
  auto r = (*again)->read("app", "dev", 0, 10);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(r->messages[0].seq(), 1u);
}

TEST(StoreSet, ReopenWaitsForThePreviousHolder) {
  testsupport::TempDir dir("store-set");
  ManualClock clock;
  StoreSet set(dir.path(), small_options(clock), 5s);
  auto held = set.open(1);
  ASSERT_TRUE(held);
  std::shared_ptr<MessageStore> holder = std::move(*held);
  set.close(1);  // someone still holds the database: it stays open
  ASSERT_TRUE(holder->store(std::vector{record("app", "dev", 1, clock.now_ms() + 60'000)}));

  // Released concurrently: open() either finds it released or waits for it,
  // and never fails on RocksDB's lock.
  std::thread releaser([&holder] { holder.reset(); });
  auto reopened = set.open(1);
  releaser.join();
  ASSERT_TRUE(reopened) << reopened.error().message();
  auto r = (*reopened)->read("app", "dev", 0, 10);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->messages.size(), 1u);
}

TEST(StoreSet, GivesUpWhenThePreviousHolderNeverLetsGo) {
  testsupport::TempDir dir("store-set");
  ManualClock clock;
  StoreSet set(dir.path(), small_options(clock), 300ms);
  auto held = set.open(1);
  ASSERT_TRUE(held);
  std::shared_ptr<MessageStore> holder = std::move(*held);
  set.close(1);
  auto reopened = set.open(1);
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error(), make_error_code(store_errc::locked));

  // Another process (here: a store opened directly) holding the directory.
  StoreSet other(dir.path(), small_options(clock), 300ms);
  auto blocked = other.open(1);
  ASSERT_FALSE(blocked);
  EXPECT_EQ(blocked.error(), make_error_code(store_errc::locked));
}

}  // namespace
}  // namespace pushgw::msg_store
