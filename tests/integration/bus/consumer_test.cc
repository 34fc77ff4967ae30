// Consumer against librdkafka's mock cluster: offsets committed only for
// processed records, redelivery after close, explicit commit, rebalance
// callbacks, batches, regex subscriptions, shutdown.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/bus/kafka.h"
#include "run_util.h"
#include "testsupport/kafka_mock.h"

namespace pushgw::bus {
namespace {

using namespace std::chrono_literals;
using testing::await_for;
using testing::run_for;
using testing::run_until;
using testing::spawn;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr int64_t kNoOffset = -1001;  // RD_KAFKA_OFFSET_INVALID

void produce_values(asio::io_context& ctx, testsupport::KafkaMock& mock, const std::string& topic,
                    int count, int32_t partition = 0) {
  auto producer = make_kafka_producer(mock.producer_config());
  std::vector<OutRecord> batch;
  for (int i = 0; i < count; ++i) {
    batch.push_back({topic, "k", "v" + std::to_string(i), {}, partition});
  }
  auto results = await_for(ctx, producer->produce_batch(batch), 10s);
  ASSERT_TRUE(results.has_value());
  for (const auto& r : *results) {
    ASSERT_TRUE(r) << r.error().message();
  }
  producer->close(1s);
}

// Takes batches until `n` records arrived or `timeout` passed.
std::vector<Record> collect(asio::io_context& ctx, Consumer& consumer, std::size_t n,
                            std::chrono::milliseconds timeout = 20s) {
  std::vector<Record> out;
  const auto deadline = Clock::now() + timeout;
  while (out.size() < n && Clock::now() < deadline) {
    auto batch = await_for(ctx, consumer.next_batch(n - out.size(), 200ms), 5s);
    if (!batch || !*batch) {
      ADD_FAILURE() << "next_batch failed: " << (batch ? batch->error().message() : "timeout");
      break;
    }
    for (auto& r : **batch) {
      out.push_back(std::move(r));
    }
  }
  return out;
}

std::vector<int64_t> offsets_of(const std::vector<Record>& records) {
  std::vector<int64_t> out;
  for (const auto& r : records) {
    out.push_back(r.offset);
  }
  return out;
}

TEST(KafkaConsumer, CommitsOnlyProcessedAndRedeliversTheRest) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(1);
  const std::string group = mock.unique_name("g");
  asio::io_context ctx;
  produce_values(ctx, mock, topic, 10);

  {
    auto consumer = make_kafka_consumer(mock.consumer_config(group), ctx.get_executor());
    ASSERT_TRUE(consumer->subscribe({topic}));
    auto records = collect(ctx, *consumer, 10);
    ASSERT_EQ(offsets_of(records), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    EXPECT_EQ(records[3].value, "v3");
    // Processed: 0..3, and 6 out of order. 4 and 5 are not, so the commit
    // must stop at 4 and 6 comes again too.
    EXPECT_EQ(consumer->mark_processed(std::span(records).subspan(0, 3)), 3u);
    EXPECT_EQ(consumer->mark_processed(records[6]), 1u);
    EXPECT_EQ(consumer->mark_processed(records[3]), 1u);
    EXPECT_EQ(consumer->mark_processed(records[3]), 0u) << "a second mark is not accepted";
    // Past the auto-commit interval nothing beyond the processed prefix moves.
    run_for(ctx, 600ms);
    EXPECT_EQ(mock.committed(group, topic, 1).at(0), 4);
    ASSERT_TRUE(await_for(ctx, consumer->close(), 15s));
  }
  EXPECT_EQ(mock.committed(group, topic, 1).at(0), 4);

  auto again = make_kafka_consumer(mock.consumer_config(group), ctx.get_executor());
  ASSERT_TRUE(again->subscribe({topic}));
  auto redelivered = collect(ctx, *again, 6);
  EXPECT_EQ(offsets_of(redelivered), (std::vector<int64_t>{4, 5, 6, 7, 8, 9}));
  // Nothing more than the unprocessed ones.
  auto extra = await_for(ctx, again->next_batch(10, 300ms), 5s);
  ASSERT_TRUE(extra && *extra);
  EXPECT_TRUE((*extra)->empty());
  again->mark_processed(redelivered);
  ASSERT_TRUE(await_for(ctx, again->close(), 15s));
  EXPECT_EQ(mock.committed(group, topic, 1).at(0), 10);
}

TEST(KafkaConsumer, ExplicitCommitWithoutAutoCommit) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(1);
  const std::string group = mock.unique_name("g");
  asio::io_context ctx;
  produce_values(ctx, mock, topic, 5);

  auto cfg = mock.consumer_config(group);
  cfg.kafka.properties["enable.auto.commit"] = "false";
  prometheus::Registry registry;
  auto consumer = make_kafka_consumer(cfg, ctx.get_executor(), {}, &registry);
  ASSERT_TRUE(consumer->subscribe({topic}));
  auto records = collect(ctx, *consumer, 5);
  ASSERT_EQ(records.size(), 5u);

  // Nothing processed: commit() succeeds and commits nothing.
  auto empty = await_for(ctx, consumer->commit(), 10s);
  ASSERT_TRUE(empty && *empty) << (empty ? empty->error().message() : "timeout");
  EXPECT_EQ(mock.committed(group, topic, 1).at(0), kNoOffset);

  consumer->mark_processed(std::span(records).subspan(0, 3));
  run_for(ctx, 500ms);
  EXPECT_EQ(mock.committed(group, topic, 1).at(0), kNoOffset) << "committed without commit()";
  const auto start = Clock::now();
  auto done = await_for(ctx, consumer->commit(), 10s);
  ASSERT_TRUE(done && *done) << (done ? done->error().message() : "timeout");
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_EQ(mock.committed(group, topic, 1).at(0), 3);
  ASSERT_TRUE(await_for(ctx, consumer->close(), 15s));
  double commits = 0;
  for (const auto& f : registry.Collect()) {
    if (f.name == "pushgw_bus_commits_total") {
      commits = f.metric.at(0).counter.value;
    }
  }
  EXPECT_GE(commits, 1);
}

TEST(KafkaConsumer, AutoCommitCommitsProcessedOffsetsInTheBackground) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(2);
  const std::string group = mock.unique_name("g");
  asio::io_context ctx;
  produce_values(ctx, mock, topic, 4, 0);
  produce_values(ctx, mock, topic, 3, 1);

  auto consumer = make_kafka_consumer(mock.consumer_config(group), ctx.get_executor());
  ASSERT_TRUE(consumer->subscribe({topic}));
  auto records = collect(ctx, *consumer, 7);
  ASSERT_EQ(records.size(), 7u);
  std::vector<Record> processed;
  for (const auto& r : records) {
    if ((r.partition == 0 && r.offset < 2) || r.partition == 1) {
      processed.push_back(r);
    }
  }
  EXPECT_EQ(consumer->mark_processed(processed), 5u);
  std::map<int32_t, int64_t> want{{0, 2}, {1, 3}};
  std::map<int32_t, int64_t> got;
  const auto deadline = Clock::now() + 5s;
  while (Clock::now() < deadline) {
    run_for(ctx, 100ms);
    got = mock.committed(group, topic, 2);
    if (got == want) {
      break;
    }
  }
  EXPECT_EQ(got, want);
  ASSERT_TRUE(await_for(ctx, consumer->close(), 15s));
}

TEST(KafkaConsumer, RebalanceCallbacksAndCommitOnRevoke) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(4);
  const std::string group = mock.unique_name("g");
  asio::io_context ctx;
  for (int32_t p = 0; p < 4; ++p) {
    produce_values(ctx, mock, topic, 2, p);
  }

  std::vector<std::vector<TopicPartition>> a_assigned;
  std::vector<std::vector<TopicPartition>> a_revoked;
  std::vector<std::vector<TopicPartition>> b_assigned;
  RebalanceHandlers a_handlers{[&](auto parts) { a_assigned.push_back(parts); },
                               [&](auto parts) { a_revoked.push_back(parts); }};
  // No background commits for A: whatever is committed below was committed
  // by the revoke (or by close).
  auto a_cfg = mock.consumer_config(group, "a");
  a_cfg.kafka.properties["enable.auto.commit"] = "false";
  auto a = make_kafka_consumer(a_cfg, ctx.get_executor(), a_handlers);
  ASSERT_TRUE(a->subscribe({topic}));
  ASSERT_TRUE(run_until(
      ctx, [&] { return !a_assigned.empty(); }, 15s));
  auto first = a_assigned.front();
  std::sort(first.begin(), first.end());
  EXPECT_EQ(first, (std::vector<TopicPartition>{{topic, 0}, {topic, 1}, {topic, 2}, {topic, 3}}));
  EXPECT_EQ(a->assignment().size(), 4u);

  // A processes the first record of every partition before B joins.
  auto records = collect(ctx, *a, 8);
  ASSERT_EQ(records.size(), 8u);
  std::vector<Record> firsts;
  std::copy_if(records.begin(), records.end(), std::back_inserter(firsts),
               [](const Record& r) { return r.offset == 0; });
  EXPECT_EQ(a->mark_processed(firsts), 4u);

  RebalanceHandlers b_handlers{[&](auto parts) { b_assigned.push_back(parts); }, {}};
  auto b = make_kafka_consumer(mock.consumer_config(group, "b"), ctx.get_executor(), b_handlers);
  ASSERT_TRUE(b->subscribe({topic}));
  // Keep A polling (as a real caller would) while the group rebalances.
  auto split = [&] { return a->assignment().size() == 2 && b->assignment().size() == 2; };
  const auto deadline = Clock::now() + 25s;
  while (!split() && Clock::now() < deadline) {
    auto more = await_for(ctx, a->next_batch(100, 100ms), 5s);
    ASSERT_TRUE(more && *more);
  }
  ASSERT_TRUE(split());
  ASSERT_TRUE(run_until(
      ctx, [&] { return !b_assigned.empty() && !a_revoked.empty(); }, 5s));

  // Cooperative (incremental) rebalance: A gives up exactly what B gets and
  // keeps the rest without interruption.
  auto revoked = a_revoked.front();
  std::sort(revoked.begin(), revoked.end());
  auto b_parts = b->assignment();
  std::sort(b_parts.begin(), b_parts.end());
  EXPECT_EQ(revoked, b_parts);
  EXPECT_EQ(b_assigned.front().size(), 2u);
  std::set<TopicPartition> owned;
  for (const auto& tp : a->assignment()) {
    owned.insert(tp);
  }
  for (const auto& tp : b_parts) {
    EXPECT_TRUE(owned.insert(tp).second) << "partition owned twice";
  }
  EXPECT_EQ(owned.size(), 4u);

  // A has auto commit off and never called commit(): the revoke callback
  // committed what A had processed, before giving partitions up (it commits
  // the stored offsets of the whole assignment, kept partitions included).
  //
  // One exception, of the librdkafka 2.0 mock and not of Kafka: when the
  // leader's SyncGroup reaches the mock before the follower's, the mock
  // completes the sync at once and answers the follower's SyncGroup with
  // INVALID_REQUEST; the follower rejoins, the group is rebalancing again
  // while A's revoke callback runs, and the mock refuses A's commit with
  // REBALANCE_IN_PROGRESS (a real broker accepts commits of the current
  // generation while it prepares a rebalance). Seen about once in 10 runs on
  // a loaded machine. Then nothing is committed and B must get the records
  // again from offset 0: redelivered, never skipped.
  const auto committed = mock.committed(group, topic, 4);
  const std::map<int32_t, int64_t> processed{{0, 1}, {1, 1}, {2, 1}, {3, 1}};
  const std::map<int32_t, int64_t> nothing{{0, -1001}, {1, -1001}, {2, -1001}, {3, -1001}};
  const bool revoke_committed = committed == processed;
  if (!revoke_committed) {
    EXPECT_EQ(committed, nothing) << "a revoke commit is all or nothing";
    std::printf("[note] the mock refused the revoke commit (its SyncGroup race); "
                "checking redelivery instead\n");
  }

  // B starts after the committed records: offset 1 of each of its partitions
  // (or offset 0 when nothing was committed).
  auto b_records = collect(ctx, *b, 2);
  ASSERT_EQ(b_records.size(), 2u);
  std::set<TopicPartition> b_owned(b_parts.begin(), b_parts.end());
  std::map<int32_t, int64_t> b_next;  // B's next offset per partition after these
  for (const auto& r : b_records) {
    EXPECT_TRUE(b_owned.count(TopicPartition{r.topic, r.partition}) != 0);
    if (revoke_committed) {
      EXPECT_EQ(r.offset, 1);
    } else {
      EXPECT_EQ(r.offset, b_next.count(r.partition) != 0 ? b_next[r.partition] : 0)
          << "B skipped records nobody committed";
    }
    b_next[r.partition] = r.offset + 1;
  }
  b->mark_processed(b_records);
  ASSERT_TRUE(await_for(ctx, b->close(), 15s));
  ASSERT_TRUE(await_for(ctx, a->close(), 15s));
  // B's close committed its processed records; the rest is as above, except
  // that without the revoke commit A's kept partitions hold what A's close
  // committed: its processed offset, or nothing when the mock (rebalancing
  // after B left) refused that commit too.
  const auto final_committed = mock.committed(group, topic, 4);
  for (int32_t p = 0; p < 4; ++p) {
    const int64_t got = final_committed.count(p) != 0 ? final_committed.at(p) : -1;
    if (b_next.count(p) != 0) {
      EXPECT_EQ(got, b_next[p]) << "partition " << p;
    } else if (revoke_committed || b_owned.count(TopicPartition{topic, p}) != 0) {
      EXPECT_EQ(got, revoke_committed ? 1 : -1001) << "partition " << p;
    } else {
      EXPECT_TRUE(got == 1 || got == -1001) << "partition " << p << ": " << got;
    }
  }
  ASSERT_GE(a_revoked.size(), 2u);
}

TEST(KafkaConsumer, RegexSubscriptionAndHeaders) {
  testsupport::KafkaMock mock;
  const std::string prefix = mock.unique_name("rx");
  ASSERT_TRUE(mock.cluster().create_topic(prefix + ".one", 1));
  ASSERT_TRUE(mock.cluster().create_topic(prefix + ".two", 1));
  asio::io_context ctx;
  auto producer = make_kafka_producer(mock.producer_config());
  ASSERT_TRUE(
      await_for(ctx, producer->produce(prefix + ".one", "k1", "a", {{"trace", "1"}}), 10s).value());
  ASSERT_TRUE(await_for(ctx, producer->produce(prefix + ".two", "", "b"), 10s).value());

  std::string regex = "^";
  for (char c : prefix) {
    if (c == '.') {
      regex += "\\";
    }
    regex += c;
  }
  regex += "\\..*";
  auto consumer =
      make_kafka_consumer(mock.consumer_config(mock.unique_name("g")), ctx.get_executor());
  ASSERT_TRUE(consumer->subscribe({regex}));
  auto records = collect(ctx, *consumer, 2);
  ASSERT_EQ(records.size(), 2u);
  std::sort(records.begin(), records.end(),
            [](const Record& x, const Record& y) { return x.topic < y.topic; });
  EXPECT_EQ(records[0].topic, prefix + ".one");
  EXPECT_EQ(records[0].key, "k1");
  EXPECT_EQ(records[0].value, "a");
  EXPECT_EQ(records[0].headers, (std::vector<Header>{{"trace", "1"}}));
  EXPECT_GT(records[0].timestamp_ms, 0);
  EXPECT_EQ(records[1].topic, prefix + ".two");
  EXPECT_EQ(records[1].key, "");
  ASSERT_TRUE(await_for(ctx, consumer->close(), 15s));
}

TEST(KafkaConsumer, BatchesTimeoutsAndShutdown) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(1);
  asio::io_context ctx;
  produce_values(ctx, mock, topic, 25);
  auto cfg = mock.consumer_config(mock.unique_name("g"));
  cfg.max_buffered = 10;  // back-pressure: the buffer never holds more
  auto consumer = make_kafka_consumer(cfg, ctx.get_executor());
  EXPECT_EQ(consumer->subscribe({}).error(), make_error_code(errc::invalid_argument));
  ASSERT_TRUE(consumer->subscribe({topic}));

  // Batches are capped by `max` and come in order.
  auto all = collect(ctx, *consumer, 25);
  ASSERT_EQ(all.size(), 25u);
  for (int i = 0; i < 25; ++i) {
    EXPECT_EQ(all[i].offset, i);
  }

  // Nothing left: a batch waits for its timeout and is empty.
  const auto start = Clock::now();
  auto empty = await_for(ctx, consumer->next_batch(10, 300ms), 5s);
  ASSERT_TRUE(empty && *empty);
  EXPECT_TRUE((*empty)->empty());
  EXPECT_GE(Clock::now() - start, 250ms);

  // One pending next_batch at a time.
  auto parked = spawn(ctx, consumer->next_batch(10, 10s));
  auto second = await_for(ctx, consumer->next_batch(10, 10ms), 5s);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->error(), make_error_code(errc::invalid_argument));
  EXPECT_FALSE(parked->done);

  // close() wakes the parked batch with shutting_down.
  ASSERT_TRUE(await_for(ctx, consumer->close(), 15s));
  ASSERT_TRUE(run_until(
      ctx, [&] { return parked->done; }, 5s));
  EXPECT_EQ(parked->value->error(), make_error_code(errc::shutting_down));
  auto after = await_for(ctx, consumer->next_batch(10, 10ms), 5s);
  EXPECT_EQ(after->error(), make_error_code(errc::shutting_down));
  auto commit = await_for(ctx, consumer->commit(), 5s);
  EXPECT_EQ(commit->error(), make_error_code(errc::shutting_down));
  EXPECT_EQ(consumer->mark_processed(all), 0u);
  EXPECT_EQ(consumer->subscribe({topic}).error(), make_error_code(errc::shutting_down));
  EXPECT_TRUE(await_for(ctx, consumer->close(), 5s)) << "close is idempotent";
}

TEST(KafkaConsumer, EagerAssignorAndDestructorWithoutClose) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(2);
  const std::string group = mock.unique_name("g");
  asio::io_context ctx;
  produce_values(ctx, mock, topic, 3);
  std::vector<TopicPartition> assigned;
  std::vector<TopicPartition> revoked;
  {
    auto cfg = mock.consumer_config(group);
    cfg.kafka.properties["partition.assignment.strategy"] = "range";
    auto consumer = make_kafka_consumer(
        cfg, ctx.get_executor(),
        {[&](auto parts) { assigned = parts; }, [&](auto parts) { revoked = parts; }});
    ASSERT_TRUE(consumer->subscribe({topic}));
    auto records = collect(ctx, *consumer, 3);
    ASSERT_EQ(records.size(), 3u);
    consumer->mark_processed(records[0]);
    run_until(
        ctx, [&] { return !assigned.empty(); }, 5s);
  }
  // The destructor committed the processed record while leaving the group,
  // and the revoke notification was posted.
  EXPECT_EQ(mock.committed(group, topic, 2), (std::map<int32_t, int64_t>{{0, 1}, {1, kNoOffset}}));
  run_for(ctx, 50ms);
  std::sort(assigned.begin(), assigned.end());
  std::sort(revoked.begin(), revoked.end());
  EXPECT_EQ(assigned, (std::vector<TopicPartition>{{topic, 0}, {topic, 1}}));
  EXPECT_EQ(revoked, assigned);
}

}  // namespace
}  // namespace pushgw::bus
