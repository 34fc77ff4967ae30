#include "common/bus/config.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "rdkafka_util.h"

namespace pushgw::bus {
namespace {

struct Reserved {
  std::string_view property;
  std::string_view reason;
};

// Properties the wrapper sets itself because its guarantees depend on them.
constexpr std::array kProducerManaged{
    Reserved{"enable.idempotence", "always true: produce() promises no duplicates"},
    Reserved{"acks", "always \"all\": produce() completes only on a durable write"},
    Reserved{"request.required.acks",
             "always \"all\": produce() completes only on a durable write"},
    Reserved{"transactional.id", "transactions are not supported by pushgw::bus"},
    Reserved{"bootstrap.servers", "set KafkaConfig::bootstrap_servers"},
    Reserved{"metadata.broker.list", "set KafkaConfig::bootstrap_servers"},
    Reserved{"client.id", "set KafkaConfig::client_id"},
    Reserved{"message.timeout.ms", "set ProducerConfig::message_timeout"},
    Reserved{"delivery.timeout.ms", "set ProducerConfig::message_timeout"},
    Reserved{"linger.ms", "set ProducerConfig::linger"},
    Reserved{"queue.buffering.max.ms", "set ProducerConfig::linger"},
    Reserved{"queue.buffering.max.messages", "set ProducerConfig::max_queue_messages"},
};

constexpr std::array kConsumerManaged{
    Reserved{"enable.auto.offset.store",
             "always false: offsets are stored only for processed records"},
    Reserved{"enable.partition.eof", "always false"},
    Reserved{"bootstrap.servers", "set KafkaConfig::bootstrap_servers"},
    Reserved{"metadata.broker.list", "set KafkaConfig::bootstrap_servers"},
    Reserved{"client.id", "set KafkaConfig::client_id"},
    Reserved{"group.id", "set ConsumerConfig::group_id"},
    Reserved{"auto.offset.reset", "set ConsumerConfig::auto_offset_reset"},
    Reserved{"session.timeout.ms", "set ConsumerConfig::session_timeout"},
    Reserved{"heartbeat.interval.ms", "set ConsumerConfig::heartbeat_interval"},
    Reserved{"max.poll.interval.ms", "set ConsumerConfig::max_poll_interval"},
    Reserved{"auto.commit.interval.ms", "set ConsumerConfig::auto_commit_interval"},
};

template <std::size_t N>
void add_extras(const KafkaConfig& k, const std::array<Reserved, N>& reserved, Properties& out) {
  for (const auto& [name, value] : k.properties) {
    auto it = std::find_if(reserved.begin(), reserved.end(),
                           [&](const Reserved& r) { return r.property == name; });
    if (it != reserved.end()) {
      throw ConfigError("kafka property \"" + name +
                        "\" may not be set here: " + std::string(it->reason));
    }
    out.emplace_back(name, value);
  }
}

void check_common(const KafkaConfig& k) {
  if (k.bootstrap_servers.empty()) {
    throw ConfigError("kafka bootstrap_servers: must not be empty");
  }
  if (k.client_id.empty()) {
    throw ConfigError("kafka client_id: must not be empty");
  }
}

void check_non_negative(std::chrono::milliseconds v, const char* field) {
  if (v.count() < 0) {
    throw ConfigError(std::string(field) + ": must not be negative");
  }
}

void check_positive(std::chrono::milliseconds v, const char* field) {
  if (v.count() <= 0) {
    throw ConfigError(std::string(field) + ": must be positive");
  }
}

std::string ms(std::chrono::milliseconds v) { return std::to_string(v.count()); }

}  // namespace

Properties producer_properties(const ProducerConfig& cfg) {
  check_common(cfg.kafka);
  check_non_negative(cfg.message_timeout, "producer message_timeout");
  check_non_negative(cfg.linger, "producer linger");
  check_non_negative(cfg.queue_full_wait, "producer queue_full_wait");
  if (cfg.max_queue_messages <= 0) {
    throw ConfigError("producer max_queue_messages: must be positive");
  }
  Properties p{
      {"bootstrap.servers", cfg.kafka.bootstrap_servers},
      {"client.id", cfg.kafka.client_id},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"message.timeout.ms", ms(cfg.message_timeout)},
      {"linger.ms", ms(cfg.linger)},
      {"queue.buffering.max.messages", std::to_string(cfg.max_queue_messages)},
  };
  add_extras(cfg.kafka, kProducerManaged, p);
  return p;
}

Properties consumer_properties(const ConsumerConfig& cfg) {
  check_common(cfg.kafka);
  if (cfg.group_id.empty()) {
    throw ConfigError("consumer group_id: must not be empty");
  }
  if (cfg.auto_offset_reset != "earliest" && cfg.auto_offset_reset != "latest") {
    throw ConfigError("consumer auto_offset_reset: \"" + cfg.auto_offset_reset +
                      "\" is not \"earliest\" or \"latest\"");
  }
  check_positive(cfg.session_timeout, "consumer session_timeout");
  check_positive(cfg.heartbeat_interval, "consumer heartbeat_interval");
  check_positive(cfg.max_poll_interval, "consumer max_poll_interval");
  check_positive(cfg.auto_commit_interval, "consumer auto_commit_interval");
  check_positive(cfg.fetch_wait_max, "consumer fetch_wait_max");
  if (cfg.max_buffered == 0) {
    throw ConfigError("consumer max_buffered: must be positive");
  }
  Properties p{
      {"bootstrap.servers", cfg.kafka.bootstrap_servers},
      {"client.id", cfg.kafka.client_id},
      {"group.id", cfg.group_id},
      {"enable.auto.offset.store", "false"},
      {"enable.auto.commit", "true"},
      {"enable.partition.eof", "false"},
      {"auto.commit.interval.ms", ms(cfg.auto_commit_interval)},
      {"auto.offset.reset", cfg.auto_offset_reset},
      {"session.timeout.ms", ms(cfg.session_timeout)},
      {"heartbeat.interval.ms", ms(cfg.heartbeat_interval)},
      {"max.poll.interval.ms", ms(cfg.max_poll_interval)},
      {"fetch.wait.max.ms", ms(cfg.fetch_wait_max)},
      // Incremental rebalancing: members keep the partitions they retain
      // (no stop-the-world), and sticky assignment moves as few partitions
      // (offline-router RocksDB instances) as possible. Overridable.
      {"partition.assignment.strategy", "cooperative-sticky"},
  };
  add_extras(cfg.kafka, kConsumerManaged, p);
  return p;
}

void check_producer_config(const ProducerConfig& cfg) {
  (void)detail::make_conf(producer_properties(cfg));
}

void check_consumer_config(const ConsumerConfig& cfg) {
  (void)detail::make_conf(consumer_properties(cfg));
}

}  // namespace pushgw::bus
