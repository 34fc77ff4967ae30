#pragma once
/// Typed configuration of the Kafka bus clients, and its translation into
/// librdkafka properties.
///
/// The typed fields cover what pushgw tunes; `KafkaConfig::properties` passes
/// any other librdkafka property through (security, compression, ...). Every
/// property is checked by librdkafka itself (rd_kafka_conf_set) when a client
/// is built or when check_*_config() is called: an unknown name or a bad value
/// is a ConfigError whose message names the property. Properties the wrapper
/// must own for its guarantees (idempotence, acks, offset storing) and
/// properties that duplicate a typed field are refused the same way.
#include <chrono>
#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pushgw::bus {

/// A configuration error; thrown only while a client is built (startup).
/// The message names the offending property or field.
class ConfigError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Settings shared by producers and consumers.
struct KafkaConfig {
  /// "host:port[,host:port...]". Required.
  std::string bootstrap_servers;
  /// client.id, shown in broker logs and used as the `client` metrics label.
  std::string client_id = "pushgw";
  /// Extra librdkafka properties, name -> value (see librdkafka's
  /// CONFIGURATION.md). Applied after the typed fields.
  std::map<std::string, std::string> properties;
};

/// What produce() does when librdkafka's local queue is full.
enum class QueueFullPolicy {
  kFail,  ///< fail that record at once with errc::queue_full
  kWait,  ///< retry for up to ProducerConfig::queue_full_wait, then errc::queue_full
};

struct ProducerConfig {
  KafkaConfig kafka;
  /// message.timeout.ms: how long librdkafka retries a record before it fails
  /// it (errc::timeout). 0 means retry forever (the produce completes only when
  /// the broker acknowledges it or the producer is closed).
  std::chrono::milliseconds message_timeout{30'000};
  /// linger.ms: batching delay before a send.
  std::chrono::milliseconds linger{5};
  /// queue.buffering.max.messages: local queue bound.
  int max_queue_messages = 100'000;
  QueueFullPolicy queue_full = QueueFullPolicy::kFail;
  /// With QueueFullPolicy::kWait: the longest a produce waits for queue room.
  std::chrono::milliseconds queue_full_wait{1'000};
};

struct ConsumerConfig {
  KafkaConfig kafka;
  /// group.id. Required.
  std::string group_id;
  /// auto.offset.reset for partitions without a committed offset:
  /// "earliest" or "latest".
  std::string auto_offset_reset = "earliest";
  std::chrono::milliseconds session_timeout{10'000};
  std::chrono::milliseconds heartbeat_interval{3'000};
  /// max.poll.interval.ms: a consumer whose caller stops taking batches for
  /// longer than this leaves the group (its partitions go to others).
  std::chrono::milliseconds max_poll_interval{300'000};
  /// auto.commit.interval.ms: how often *stored* (processed) offsets are
  /// committed in the background. Revoke, close() and commit() commit at once.
  std::chrono::milliseconds auto_commit_interval{1'000};
  /// Records held between the poll thread and next_batch(); when full, the
  /// poll thread stops fetching until the caller takes a batch.
  std::size_t max_buffered = 10'000;
  /// fetch.wait.max.ms: the longest a fetch waits at the broker for data.
  /// A real broker answers as soon as data arrives (fetch.min.bytes = 1), so
  /// this only bounds idle fetches; librdkafka's mock cluster (the dev
  /// broker) holds every fetch the full time, so on one box it is a floor
  /// under delivery latency per hop. librdkafka's default is 500. A
  /// "fetch.wait.max.ms" entry in KafkaConfig::properties overrides it.
  std::chrono::milliseconds fetch_wait_max{100};
};

using Properties = std::vector<std::pair<std::string, std::string>>;

/// The full librdkafka property list a producer is built with, in order.
/// Throws ConfigError on a bad typed field, a managed or duplicate property.
Properties producer_properties(const ProducerConfig& cfg);
/// Same for a consumer.
Properties consumer_properties(const ConsumerConfig& cfg);

/// Validates the whole configuration with librdkafka without connecting
/// anywhere. Throws ConfigError naming the first bad property.
void check_producer_config(const ProducerConfig& cfg);
void check_consumer_config(const ConsumerConfig& cfg);

}  // namespace pushgw::bus
