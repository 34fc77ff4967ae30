#pragma once
/// Typed configuration of push-api. Every key, its default and meaning are
/// declared once in config_schema() (`push-api --help-config` prints them;
/// push-api/README.md lists them).
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/admin_server.h"
#include "common/config.h"
#include "common/log.h"

namespace pushgw::push_api {

struct ListenConfig {
  std::string host = "0.0.0.0";
  /// 0 picks a free port (tests).
  uint16_t port = 8080;
  int backlog = 1024;
  /// Concurrent HTTP connections; extra ones are closed at once.
  uint32_t max_connections = 10'000;
  /// A connection idle this long between requests, or this slow to send one
  /// request, is closed.
  std::chrono::milliseconds idle_timeout{60'000};
};

struct LimitsConfig {
  /// Hard cap on a request body (413 payload_too_large above it). Must hold
  /// max_device_ids ids of 128 bytes with their JSON quoting.
  uint32_t max_body_bytes = 256 * 1024;
  /// Request line plus headers (431 above it).
  uint32_t max_header_bytes = 8 * 1024;
  /// Header fields per request (431 above it).
  uint32_t max_headers = 64;
  /// Nesting depth of a JSON body (400 above it).
  uint32_t max_json_depth = 8;
  /// Payload bytes after decoding (413 above it).
  uint32_t max_payload_bytes = 4096;
  uint32_t max_device_ids = 1000;
  uint32_t max_user_ids = 100;
  uint32_t max_ttl_s = 2'592'000;
  uint32_t default_ttl_s = 86'400;
  /// Allowed distance between X-Timestamp and the server clock.
  std::chrono::seconds signature_window{300};
};

struct KafkaSection {
  std::string bootstrap;
  /// A file holding the bootstrap list (written by tools/kafka-dev-broker); wins when set.
  std::string bootstrap_file;
  std::string client_id = "push-api";
  /// A push whose records are not all acknowledged within this answers 503
  /// (librdkafka message.timeout.ms).
  std::chrono::milliseconds produce_timeout{5000};
  std::chrono::milliseconds linger{1};
  /// librdkafka's local queue bound (queue.buffering.max.messages).
  int max_queue_messages = 200'000;
  /// Create missing pushgw.push.* / pushgw.fanout.* / probe topics at startup.
  bool ensure_topics = true;
  /// Partitions of the topics push-api creates (existing ones are left alone).
  int topic_partitions = 8;
  /// Extra librdkafka properties "name=value".
  std::vector<std::string> properties;
};

struct IdempotencyConfig {
  /// How long an idempotency key answers with the first 202.
  std::chrono::seconds ttl{86'400};
};

struct DispatchConfig {
  /// ttl_s of the dispatch answer: how long a client may reuse it.
  uint32_t ttl_s = 300;
  /// Endpoints returned at most.
  uint32_t max_endpoints = 16;
  /// How long the node list read from the status store is reused.
  std::chrono::milliseconds cache{1000};
};

struct ReadinessConfig {
  /// Topic of the bus probe record /readyz produces when no push was
  /// acknowledged recently (empty: rely on push outcomes only).
  std::string probe_topic = "pushgw.health";
  /// A push or probe acknowledged within this long counts as "bus reachable".
  std::chrono::milliseconds fresh{5000};
  /// A readiness check slower than this counts as not ready.
  std::chrono::milliseconds check_timeout{2000};
};

struct PushApiConfig {
  /// I/O threads serving HTTP (0 = one per CPU).
  unsigned threads = 2;
  std::string apps_file = "deploy/local/apps.toml";
  std::string redis_url = "redis://127.0.0.1:6379";
  std::string redis_key_prefix = "pgw";
  ListenConfig listen;
  LimitsConfig limits;
  KafkaSection kafka;
  IdempotencyConfig idempotency;
  DispatchConfig dispatch;
  ReadinessConfig readiness;
  /// Stop accepting on SIGTERM, then wait this long for in-flight requests.
  std::chrono::milliseconds shutdown_grace{10'000};
  bool admin_enabled = true;
  common::AdminServerOptions admin;
  common::LogConfig log;

  /// Checks what single-key constraints cannot. Throws common::ConfigError naming the key.
  void validate() const;
};

/// The schema of PushApiConfig; built once, thread-safe to read.
const common::ConfigSchema<PushApiConfig>& config_schema();

/// Loads and validates (throws common::ConfigError).
PushApiConfig load_config(const common::ConfigSources& sources);

}  // namespace pushgw::push_api
