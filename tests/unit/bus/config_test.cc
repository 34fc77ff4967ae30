// Configuration translation and validation: no broker involved (librdkafka
// validates properties locally; a client is never started on bad input).
#include "common/bus/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <string>

#include "common/bus/kafka.h"

namespace pushgw::bus {
namespace {

using namespace std::chrono_literals;

std::string value_of(const Properties& p, const std::string& name) {
  auto it = std::find_if(p.begin(), p.end(), [&](const auto& kv) { return kv.first == name; });
  return it == p.end() ? std::string("<unset>") : it->second;
}

ProducerConfig producer() {
  ProducerConfig cfg;
  cfg.kafka.bootstrap_servers = "127.0.0.1:9";
  return cfg;
}

ConsumerConfig consumer() {
  ConsumerConfig cfg;
  cfg.kafka.bootstrap_servers = "127.0.0.1:9";
  cfg.group_id = "g";
  return cfg;
}

// Runs `fn`, expects a ConfigError whose message contains every needle.
template <class Fn>
void expect_config_error(Fn fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    for (const auto& n : needles) {
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what() << " lacks " << n;
    }
  }
}

TEST(BusConfig, ProducerIsIdempotentWithAcksAll) {
  auto cfg = producer();
  cfg.message_timeout = 1234ms;
  cfg.linger = 7ms;
  cfg.kafka.properties["compression.codec"] = "lz4";
  auto p = producer_properties(cfg);
  EXPECT_EQ(value_of(p, "enable.idempotence"), "true");
  EXPECT_EQ(value_of(p, "acks"), "all");
  EXPECT_EQ(value_of(p, "message.timeout.ms"), "1234");
  EXPECT_EQ(value_of(p, "linger.ms"), "7");
  EXPECT_EQ(value_of(p, "bootstrap.servers"), "127.0.0.1:9");
  EXPECT_EQ(value_of(p, "compression.codec"), "lz4");
  EXPECT_NO_THROW(check_producer_config(cfg));
}

TEST(BusConfig, ConsumerStoresOffsetsOnlyExplicitly) {
  auto cfg = consumer();
  cfg.auto_commit_interval = 250ms;
  auto p = consumer_properties(cfg);
  EXPECT_EQ(value_of(p, "enable.auto.offset.store"), "false");
  EXPECT_EQ(value_of(p, "enable.auto.commit"), "true");
  EXPECT_EQ(value_of(p, "auto.commit.interval.ms"), "250");
  EXPECT_EQ(value_of(p, "group.id"), "g");
  EXPECT_EQ(value_of(p, "partition.assignment.strategy"), "cooperative-sticky");
  EXPECT_EQ(value_of(p, "fetch.wait.max.ms"), "100");
  EXPECT_NO_THROW(check_consumer_config(cfg));
}

TEST(BusConfig, UnknownPropertyIsAnErrorNamingIt) {
  auto cfg = producer();
  cfg.kafka.properties["no.such.property"] = "1";
  expect_config_error([&] { check_producer_config(cfg); }, {"no.such.property"});
  // The factory refuses before any client starts.
  expect_config_error([&] { (void)make_kafka_producer(cfg); }, {"no.such.property"});

  auto ccfg = consumer();
  ccfg.kafka.properties["fetch.mystery.ms"] = "5";
  boost::asio::io_context ctx;
  expect_config_error([&] { (void)make_kafka_consumer(ccfg, ctx.get_executor()); },
                      {"fetch.mystery.ms"});
}

TEST(BusConfig, BadValueIsAnErrorNamingPropertyAndValue) {
  auto cfg = producer();
  cfg.kafka.properties["compression.codec"] = "zip-it";
  expect_config_error([&] { check_producer_config(cfg); }, {"compression.codec", "zip-it"});
}

TEST(BusConfig, ManagedPropertiesCannotBeOverridden) {
  auto cfg = producer();
  cfg.kafka.properties["enable.idempotence"] = "false";
  expect_config_error([&] { check_producer_config(cfg); }, {"enable.idempotence"});
  cfg = producer();
  cfg.kafka.properties["acks"] = "1";
  expect_config_error([&] { check_producer_config(cfg); }, {"acks"});
  cfg = producer();
  cfg.kafka.properties["linger.ms"] = "3";
  expect_config_error([&] { check_producer_config(cfg); }, {"linger.ms", "ProducerConfig::linger"});

  auto ccfg = consumer();
  ccfg.kafka.properties["enable.auto.offset.store"] = "true";
  expect_config_error([&] { check_consumer_config(ccfg); }, {"enable.auto.offset.store"});
  ccfg = consumer();
  ccfg.kafka.properties["group.id"] = "other";
  expect_config_error([&] { check_consumer_config(ccfg); }, {"group.id"});
}

TEST(BusConfig, TypedFieldsAreValidated) {
  auto cfg = producer();
  cfg.kafka.bootstrap_servers.clear();
  expect_config_error([&] { check_producer_config(cfg); }, {"bootstrap_servers"});
  cfg = producer();
  cfg.message_timeout = -1ms;
  expect_config_error([&] { check_producer_config(cfg); }, {"message_timeout"});
  cfg = producer();
  cfg.max_queue_messages = 0;
  expect_config_error([&] { check_producer_config(cfg); }, {"max_queue_messages"});

  auto ccfg = consumer();
  ccfg.group_id.clear();
  expect_config_error([&] { check_consumer_config(ccfg); }, {"group_id"});
  ccfg = consumer();
  ccfg.auto_offset_reset = "middle";
  expect_config_error([&] { check_consumer_config(ccfg); }, {"auto_offset_reset", "middle"});
  ccfg = consumer();
  ccfg.max_buffered = 0;
  expect_config_error([&] { check_consumer_config(ccfg); }, {"max_buffered"});
}

TEST(BusConfig, InconsistentCombinationIsReportedByTheFactory) {
  // librdkafka checks combinations in rd_kafka_new: idempotence allows at
  // most 5 requests in flight per connection.
  auto cfg = producer();
  cfg.kafka.properties["max.in.flight.requests.per.connection"] = "50";
  expect_config_error([&] { (void)make_kafka_producer(cfg); },
                      {"max.in.flight", "enable.idempotence"});
}

TEST(BusConfig, EnsureTopicsRejectsBadSpecsWithoutConnecting) {
  KafkaConfig k;
  k.bootstrap_servers = "127.0.0.1:9";
  EXPECT_EQ(ensure_topics(k, {{"", 1}}).error(), make_error_code(errc::invalid_argument));
  EXPECT_EQ(ensure_topics(k, {{"t", 0}}).error(), make_error_code(errc::invalid_argument));
  EXPECT_EQ(ensure_topics(k, {{"t", 1, 0}}).error(), make_error_code(errc::invalid_argument));
}

}  // namespace
}  // namespace pushgw::bus
