#pragma once
/// Typed configuration of the online router. Every key, its default and its
/// meaning are declared once in config_schema() (`online-router
/// --help-config` prints them; online-router/README.md lists them).
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/admin_server.h"
#include "common/config.h"
#include "common/log.h"

namespace pushgw::online_router {

/// The traffic class a router instance serves. Each class is its own
/// cluster: its own input topics and its own consumer group.
enum class TrafficClass : uint8_t { kNormal = 0, kMarketing = 1 };

/// "normal" or "marketing".
std::string_view class_name(TrafficClass c) noexcept;

struct KafkaSection {
  /// "host:port[,host:port...]"; ignored when bootstrap_file is set.
  std::string bootstrap;
  /// A file holding the bootstrap list (written by tools/kafka-dev-broker).
  std::string bootstrap_file;
  /// client.id prefix; the class is appended ("online-router.normal").
  std::string client_id = "online-router";
  /// Empty: "online-router.<class>" (one consumer group per class).
  std::string group_id;
  /// How long librdkafka retries one produced record before reporting a
  /// failure (the router then retries it itself); 0 = librdkafka never gives up.
  std::chrono::milliseconds message_timeout{30'000};
  std::chrono::milliseconds linger{5};
  /// librdkafka's local producer queue bound (records).
  int max_queue_messages = 1'000'000;
  std::chrono::milliseconds session_timeout{10'000};
  std::chrono::milliseconds heartbeat_interval{3'000};
  /// How often processed offsets are committed (also on revoke and shutdown).
  std::chrono::milliseconds commit_interval{1'000};
  /// Records buffered between the consumer's poll thread and the router.
  uint32_t max_buffered = 20'000;
  /// Partitions of the input topics and pushgw.offline if this router creates them.
  int topic_partitions = 8;
  /// Bound on the startup topic check (ensure_topics).
  std::chrono::milliseconds ensure_topics_timeout{10'000};
  /// Extra librdkafka properties "name=value" for the producer and the consumer.
  std::vector<std::string> properties;
};

struct RouterConfig {
  TrafficClass traffic_class = TrafficClass::kNormal;
  /// Threads running the router, the Redis client and the admin server.
  unsigned threads = 1;
  /// Input records taken per batch (one pipelined lookup, one produce batch).
  uint32_t batch_size = 4000;
  /// Longest wait for a batch to fill before a partial one is routed.
  std::chrono::milliseconds batch_wait{50};
  /// Batches whose produced records await delivery reports; when reached,
  /// the router stops consuming until one completes.
  uint32_t max_in_flight = 8;
  /// Retry backoff for status store and produce failures (doubling).
  std::chrono::milliseconds retry_backoff_min{50};
  std::chrono::milliseconds retry_backoff_max{5'000};
  /// SIGTERM: how long in-flight batches may take to be acknowledged.
  std::chrono::milliseconds drain_timeout{10'000};

  std::string redis_url = "redis://127.0.0.1:6379";
  std::string redis_key_prefix = "pgw";
  /// A device whose node is missing from the live-node list is routed as
  /// offline unless it connected less than this before the list was read.
  std::chrono::milliseconds node_list_max_age{5'000};
  /// Message counters (routed, stored, expired) in the status store.
  bool counters = true;
  /// Counters live at least this long (and at least the message's ttl).
  std::chrono::seconds counters_min_ttl{86'400};

  KafkaSection kafka;
  /// Test failpoint: after consuming the Nth non-empty batch, _exit before
  /// producing its records (0 = off). Exit status kFailpointExitCode.
  uint32_t crash_after_consume = 0;

  common::AdminServerOptions admin;
  common::LogConfig log;

  /// Checks what single-key constraints cannot (bootstrap set, backoff
  /// order). Throws common::ConfigError naming the key.
  void validate() const;
  /// The consumer group: kafka.group_id or "online-router.<class>".
  std::string group_id() const;
};

/// Exit status of the crash_after_consume failpoint.
inline constexpr int kFailpointExitCode = 75;

/// The schema of RouterConfig; built once, thread-safe to read.
const common::ConfigSchema<RouterConfig>& config_schema();

/// Loads and validates (throws common::ConfigError).
RouterConfig load_config(const common::ConfigSources& sources);

}  // namespace pushgw::online_router
