#pragma once
/// Kafka implementations of the bus interfaces (librdkafka inside; no
/// librdkafka type leaks out) and the topic admin helper.
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/bus/config.h"
#include "common/bus/consumer.h"
#include "common/bus/producer.h"
#include "common/bus/types.h"
#include "common/error.h"

namespace prometheus {
class Registry;
}

namespace pushgw::bus {

/// Builds an idempotent producer (enable.idempotence=true, acks=all) and
/// starts its poll thread (delivery reports). Connecting happens in the
/// background: a broker that is down shows as produce errors, not here.
/// `metrics` (optional, must outlive the producer) receives
/// pushgw_bus_produced_total, pushgw_bus_delivery_failures_total and
/// pushgw_bus_produce_in_flight, labelled by client id.
/// Throws ConfigError on a bad configuration (startup only).
std::unique_ptr<Producer> make_kafka_producer(const ProducerConfig& cfg,
                                              prometheus::Registry* metrics = nullptr);

/// Builds a group consumer and starts its poll thread; call subscribe() to
/// join. Rebalance handlers are posted to `executor`. `metrics` (optional,
/// must outlive the consumer) receives pushgw_bus_consumed_total,
/// pushgw_bus_commits_total, pushgw_bus_commit_failures_total,
/// pushgw_bus_rebalances_total and pushgw_bus_consumer_lag (per partition,
/// from cached watermarks: no extra broker round trip).
/// Throws ConfigError on a bad configuration (startup only).
std::unique_ptr<Consumer> make_kafka_consumer(const ConsumerConfig& cfg,
                                              boost::asio::any_io_executor executor,
                                              RebalanceHandlers handlers = {},
                                              prometheus::Registry* metrics = nullptr);

/// What ensure_topics found or did for one topic.
struct TopicInfo {
  std::string name;
  int partitions = 0;    ///< partitions the topic has now
  bool created = false;  ///< created by this call (false: it existed)
  friend bool operator==(const TopicInfo&, const TopicInfo&) = default;
};

struct EnsureTopicsOptions {
  /// Bound for the whole call (metadata, CreateTopics, fallback).
  std::chrono::milliseconds timeout{10'000};
  /// If CreateTopics cannot be served (the librdkafka 2.0.2 mock cluster has
  /// no Admin API and never names a controller), ask the broker to
  /// auto-create the topic through a metadata request. The partition count is
  /// then the broker's default: TopicInfo::partitions tells what it got.
  bool auto_create_fallback = true;
};

/// Makes sure the topics exist, creating missing ones with the Admin API
/// (CreateTopics). "Already exists" (also from a concurrent creator) is
/// success. An existing topic with fewer partitions than asked is left as it
/// is and reported with its real count. Blocking: for startup and tools.
/// Errors: errc::timeout / errc::unavailable if the cluster cannot be
/// reached, errc::rejected if the broker refused a creation (the log names
/// the topic and the reason), errc::invalid_argument on an empty name or a
/// partition count < 1. Throws ConfigError on a bad configuration.
result<std::vector<TopicInfo>> ensure_topics(const KafkaConfig& cfg, std::vector<TopicSpec> topics,
                                             EnsureTopicsOptions options = {});

}  // namespace pushgw::bus
