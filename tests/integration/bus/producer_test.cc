// Producer against librdkafka's mock cluster: completion only on the delivery
// report, real offsets, broker down / up, queue full, close, fatal errors,
// metrics.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <prometheus/registry.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
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

double metric_value(prometheus::Registry& reg, const std::string& name) {
  for (const auto& family : reg.Collect()) {
    if (family.name == name && !family.metric.empty()) {
      const auto& m = family.metric.front();
      return family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return -1;
}

TEST(KafkaProducer, CompletesOnlyOnDeliveryReportWithRealOffset) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(1);
  asio::io_context ctx;
  auto producer = make_kafka_producer(mock.producer_config());

  // Warm up (metadata, producer id) so the delay below hits a Produce request.
  auto first = await_for(ctx, producer->produce(topic, "k0", "v0"), 10s);
  ASSERT_TRUE(first && *first) << (first ? first->error().message() : "timeout");
  EXPECT_EQ((*first)->offset, 0);

  // The broker holds the next Produce response for 1.5 s.
  ASSERT_TRUE(mock.cluster().push_broker_request_error_rtts(1, ApiKey::kProduce, {{0, 1500}}));
  const auto start = Clock::now();
  auto pending = spawn(ctx, producer->produce(topic, "k1", "v1", {{"h", "x"}}));
  run_for(ctx, 700ms);
  EXPECT_FALSE(pending->done) << "produce completed before the broker answered";
  EXPECT_EQ(producer->in_flight(), 1u);
  ASSERT_TRUE(run_until(
      ctx, [&] { return pending->done; }, 10s));
  EXPECT_GE(Clock::now() - start, 1400ms);
  ASSERT_TRUE(pending->value && *pending->value) << pending->value->error().message();
  const Delivered d = **pending->value;
  EXPECT_EQ(d.partition, 0);
  EXPECT_EQ(d.offset, 1);
  EXPECT_EQ(producer->in_flight(), 0u);

  // The broker really holds it, at that offset.
  EXPECT_EQ(mock.high_watermark(topic, 0), 2);
  auto records = mock.read(topic, 1, 2);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].offset, d.offset);
  EXPECT_EQ(records[1].key, "k1");
  EXPECT_EQ(records[1].value, "v1");
  EXPECT_EQ(records[1].headers, (std::vector<Header>{{"h", "x"}}));
  producer->close(2s);
}

TEST(KafkaProducer, RetriableErrorsDelayButDoNotFailTheProduce) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(1);
  asio::io_context ctx;
  auto producer = make_kafka_producer(mock.producer_config());
  ASSERT_TRUE(await_for(ctx, producer->produce(topic, "k", "warm"), 10s).value());

  // Two Produce answers fail with retriable errors (after a delay each).
  ASSERT_TRUE(mock.cluster().push_broker_request_error_rtts(
      1, ApiKey::kProduce,
      {{RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 300},
       {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 300}}));
  auto pending = spawn(ctx, producer->produce(topic, "k", "retried"));
  run_for(ctx, 400ms);
  EXPECT_FALSE(pending->done);
  ASSERT_TRUE(run_until(
      ctx, [&] { return pending->done; }, 10s));
  ASSERT_TRUE(*pending->value) << pending->value->error().message();
  EXPECT_EQ((*pending->value)->offset, 1);
  // Idempotence: the retries did not write duplicates.
  EXPECT_EQ(mock.high_watermark(topic, 0), 2);
}

TEST(KafkaProducer, BrokerDownFailsAfterMessageTimeoutNeverFalseSuccess) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(1);
  asio::io_context ctx;
  auto cfg = mock.producer_config();
  cfg.message_timeout = 1500ms;
  auto producer = make_kafka_producer(cfg);
  ASSERT_TRUE(await_for(ctx, producer->produce(topic, "k", "before"), 10s).value());

  mock.set_broker_down(1);
  const auto start = Clock::now();
  auto r = await_for(ctx, producer->produce(topic, "k", "while-down"), 10s);
  const auto took = Clock::now() - start;
  ASSERT_TRUE(r.has_value()) << "produce did not complete";
  ASSERT_FALSE(*r) << "success reported while the broker was down";
  EXPECT_EQ(r->error(), make_error_code(errc::timeout)) << r->error().message();
  EXPECT_GE(took, 1300ms);
  EXPECT_LT(took, 6s);

  mock.set_broker_up(1);
  auto after = await_for(ctx, producer->produce(topic, "k", "after"), 15s);
  ASSERT_TRUE(after && *after) << (after ? after->error().message() : "timeout");
  // Only the two acknowledged records are in the log.
  EXPECT_EQ(mock.high_watermark(topic, 0), 2);
  auto records = mock.read(topic, 1, 2);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].value, "before");
  EXPECT_EQ(records[1].value, "after");
  EXPECT_EQ(records[1].offset, (*after)->offset);
}

TEST(KafkaProducer, BrokerDownThenUpRetriesUntilSuccess) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(1);
  asio::io_context ctx;
  auto cfg = mock.producer_config();
  cfg.message_timeout = 20s;
  auto producer = make_kafka_producer(cfg);
  ASSERT_TRUE(await_for(ctx, producer->produce(topic, "k", "before"), 10s).value());

  mock.set_broker_down(1);
  auto pending = spawn(ctx, producer->produce(topic, "k", "retried"));
  run_for(ctx, 1500ms);
  EXPECT_FALSE(pending->done) << "completed while the broker was down";
  mock.set_broker_up(1);
  ASSERT_TRUE(run_until(
      ctx, [&] { return pending->done; }, 15s));
  ASSERT_TRUE(*pending->value) << pending->value->error().message();
  EXPECT_EQ((*pending->value)->offset, 1);
  EXPECT_EQ(mock.high_watermark(topic, 0), 2);
}

TEST(KafkaProducer, BatchCompletesWithPerRecordResults) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(3);
  asio::io_context ctx;
  auto producer = make_kafka_producer(mock.producer_config());
  std::vector<OutRecord> batch;
  for (int i = 0; i < 30; ++i) {
    batch.push_back({topic, "key-" + std::to_string(i % 7), "value-" + std::to_string(i), {}, {}});
  }
  batch.push_back({"", "k", "no topic", {}, {}});  // refused locally
  auto results = await_for(ctx, producer->produce_batch(batch), 15s);
  ASSERT_TRUE(results.has_value());
  ASSERT_EQ(results->size(), batch.size());
  EXPECT_EQ(results->back().error(), make_error_code(errc::invalid_argument));

  std::map<std::pair<int32_t, int64_t>, std::string> expected;
  std::map<std::string, int32_t> key_partition;
  for (std::size_t i = 0; i + 1 < batch.size(); ++i) {
    ASSERT_TRUE((*results)[i]) << i << ": " << (*results)[i].error().message();
    const Delivered d = *(*results)[i];
    EXPECT_TRUE(expected.emplace(std::pair{d.partition, d.offset}, batch[i].value).second);
    // Same key, same partition.
    auto [it, fresh] = key_partition.emplace(batch[i].key, d.partition);
    EXPECT_EQ(it->second, d.partition);
  }
  auto records = mock.read(topic, 3, 30);
  ASSERT_EQ(records.size(), 30u);
  for (const auto& r : records) {
    auto it = expected.find({r.partition, r.offset});
    ASSERT_NE(it, expected.end()) << r.partition << "/" << r.offset;
    EXPECT_EQ(it->second, r.value);
  }
}

TEST(KafkaProducer, QueueFullFailsOrWaitsPerPolicy) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(1);
  asio::io_context ctx;
  auto cfg = mock.producer_config();
  cfg.max_queue_messages = 2;
  cfg.linger = 500ms;  // records stay queued meanwhile

  {
    auto producer = make_kafka_producer(cfg);
    std::vector<OutRecord> batch(5, OutRecord{topic, "k", "v", {}, {}});
    auto results = await_for(ctx, producer->produce_batch(batch), 15s);
    ASSERT_TRUE(results.has_value());
    int ok = 0;
    int full = 0;
    for (const auto& r : *results) {
      ok += r ? 1 : 0;
      full += (!r && r.error() == make_error_code(errc::queue_full)) ? 1 : 0;
    }
    EXPECT_EQ(ok, 2);
    EXPECT_EQ(full, 3);
  }
  {
    cfg.queue_full = QueueFullPolicy::kWait;
    cfg.queue_full_wait = 10s;
    auto producer = make_kafka_producer(cfg);
    std::vector<OutRecord> batch(5, OutRecord{topic, "k", "v", {}, {}});
    auto results = await_for(ctx, producer->produce_batch(batch), 20s);
    ASSERT_TRUE(results.has_value());
    for (const auto& r : *results) {
      EXPECT_TRUE(r) << r.error().message();
    }
  }
  EXPECT_EQ(mock.high_watermark(topic, 0), 7);
}

TEST(KafkaProducer, CloseCompletesPendingProducesWithErrors) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(1);
  asio::io_context ctx;
  auto cfg = mock.producer_config();
  cfg.message_timeout = 0ms;  // retry forever
  auto producer = make_kafka_producer(cfg);
  ASSERT_TRUE(await_for(ctx, producer->produce(topic, "k", "warm"), 10s).value());
  mock.set_broker_down(1);
  auto a = spawn(ctx, producer->produce(topic, "k", "a"));
  auto b =
      spawn(ctx, producer->produce_batch({{topic, "k", "b1", {}, {}}, {topic, "k", "b2", {}, {}}}));
  run_for(ctx, 500ms);
  EXPECT_FALSE(a->done);
  EXPECT_FALSE(b->done);
  EXPECT_EQ(producer->in_flight(), 3u);

  const auto start = Clock::now();
  producer->close(300ms);
  EXPECT_LT(Clock::now() - start, 7s);
  ASSERT_TRUE(run_until(
      ctx, [&] { return a->done && b->done; }, 5s));
  ASSERT_FALSE(*a->value);
  EXPECT_EQ(a->value->error(), make_error_code(errc::shutting_down));
  for (const auto& r : *b->value) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::shutting_down));
  }
  // After close: refused at once.
  auto late = await_for(ctx, producer->produce(topic, "k", "late"), 2s);
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->error(), make_error_code(errc::shutting_down));
  EXPECT_EQ(producer->flush(100ms).error(), make_error_code(errc::shutting_down));
}

TEST(KafkaProducer, FatalIdempotenceErrorIsSurfaced) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(1);
  asio::io_context ctx;
  auto producer = make_kafka_producer(mock.producer_config());
  ASSERT_TRUE(await_for(ctx, producer->produce(topic, "k", "ok"), 10s).value());
  EXPECT_FALSE(producer->fatal_error());

  // A sequence desynchronisation is fatal for an idempotent producer.
  mock.cluster().push_request_errors(ApiKey::kProduce,
                                     {RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER});
  auto r = await_for(ctx, producer->produce(topic, "k", "desync"), 10s);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(*r);
  ASSERT_TRUE(run_until(
      ctx, [&] { return producer->fatal_error().has_value(); }, 5s));
  EXPECT_NE(producer->fatal_error()->find("OUT_OF_ORDER_SEQUENCE_NUMBER"), std::string::npos)
      << *producer->fatal_error();
  auto after = await_for(ctx, producer->produce(topic, "k", "after"), 5s);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->error(), make_error_code(errc::rejected));
  EXPECT_EQ(mock.high_watermark(topic, 0), 1);
}

TEST(KafkaProducer, MetricsCountDeliveriesAndFailures) {
  testsupport::KafkaMock mock;
  const std::string topic = mock.create_topic(1);
  asio::io_context ctx;
  prometheus::Registry registry;
  auto cfg = mock.producer_config();
  cfg.message_timeout = 1000ms;
  auto producer = make_kafka_producer(cfg, &registry);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(await_for(ctx, producer->produce(topic, "k", "v"), 10s).value());
  }
  mock.set_broker_down(1);
  auto failed = await_for(ctx, producer->produce(topic, "k", "lost"), 10s);
  ASSERT_TRUE(failed.has_value());
  EXPECT_FALSE(*failed);
  EXPECT_EQ(metric_value(registry, "pushgw_bus_produced_total"), 3);
  EXPECT_EQ(metric_value(registry, "pushgw_bus_delivery_failures_total"), 1);
  EXPECT_EQ(metric_value(registry, "pushgw_bus_produce_in_flight"), 0);
}

}  // namespace
}  // namespace pushgw::bus
