// ensure_topics against the mock cluster: existing topics, creation through
// the broker fallback (the 2.0.2 mock has no CreateTopics), bounded failures.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>

#include "common/bus/kafka.h"
#include "run_util.h"
#include "testsupport/kafka_mock.h"

namespace pushgw::bus {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

KafkaConfig kafka_config(testsupport::KafkaMock& mock) {
  KafkaConfig cfg;
  cfg.bootstrap_servers = mock.bootstrap_servers();
  cfg.client_id = "admin-test";
  return cfg;
}

TEST(EnsureTopics, ExistingTopicsAreReportedWithTheirPartitions) {
  testsupport::KafkaMock mock;
  const std::string a = mock.create_topic(3);
  const std::string b = mock.create_topic(1);
  auto r = ensure_topics(kafka_config(mock), {{a, 3}, {b, 2}});
  ASSERT_TRUE(r) << r.error().message();
  // b has fewer partitions than asked: left alone, real count reported.
  EXPECT_EQ(*r, (std::vector<TopicInfo>{{a, 3, false}, {b, 1, false}}));
}

TEST(EnsureTopics, MissingTopicIsCreatedThroughBrokerFallbackAndUsable) {
  testsupport::KafkaMock mock;
  const std::string name = mock.unique_name("created");
  EnsureTopicsOptions opts;
  opts.timeout = 3s;
  const auto start = Clock::now();
  auto r = ensure_topics(kafka_config(mock), {{name, 2}}, opts);
  EXPECT_LT(Clock::now() - start, 5s);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].name, name);
  EXPECT_TRUE((*r)[0].created);
  // The mock's auto-creation picks its default partition count (4), which
  // the result reports truthfully.
  EXPECT_EQ((*r)[0].partitions, 4);

  // A second call finds it.
  auto again = ensure_topics(kafka_config(mock), {{name, 2}}, opts);
  ASSERT_TRUE(again);
  EXPECT_FALSE((*again)[0].created);
  EXPECT_EQ((*again)[0].partitions, 4);

  boost::asio::io_context ctx;
  auto producer = make_kafka_producer(mock.producer_config());
  auto d = testing::await_for(ctx, producer->produce(name, "k", "v"), 10s);
  ASSERT_TRUE(d && *d);
}

TEST(EnsureTopics, WithoutFallbackTheMockTimesOutWithinTheBound) {
  testsupport::KafkaMock mock;
  EnsureTopicsOptions opts;
  opts.timeout = 1500ms;
  opts.auto_create_fallback = false;
  const auto start = Clock::now();
  auto r = ensure_topics(kafka_config(mock), {{mock.unique_name("never"), 1}}, opts);
  EXPECT_LT(Clock::now() - start, 4s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::timeout));
}

TEST(EnsureTopics, UnreachableClusterFailsWithinTheBound) {
  testsupport::KafkaMock mock;
  auto cfg = kafka_config(mock);
  mock.set_broker_down(1);
  EnsureTopicsOptions opts;
  opts.timeout = 1s;
  const auto start = Clock::now();
  auto r = ensure_topics(cfg, {{"whatever", 1}}, opts);
  EXPECT_LT(Clock::now() - start, 3s);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error() == make_error_code(errc::timeout) ||
              r.error() == make_error_code(errc::unavailable))
      << r.error().message();
}

}  // namespace
}  // namespace pushgw::bus
