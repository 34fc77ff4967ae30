#include "push_api/config.h"

#include <algorithm>
#include <string>

namespace pushgw::push_api {

using common::non_empty;
using common::range;

namespace {

common::ConfigSchema<PushApiConfig> build_schema() {
  const PushApiConfig d;
  common::ConfigSchema<PushApiConfig> s;
  s.field("threads", &PushApiConfig::threads, d.threads,
          "I/O threads serving HTTP (0 = one per CPU)", range(0, 256))
      .field("apps_file", &PushApiConfig::apps_file, d.apps_file,
             "apps TOML file (api secrets, quotas), shared with conn-node", non_empty())
      .field("shutdown_grace_ms", &PushApiConfig::shutdown_grace, d.shutdown_grace,
             "SIGTERM: stop accepting, then wait this long for in-flight requests",
             range(0, 600'000))
      .field("redis.url", &PushApiConfig::redis_url, d.redis_url,
             "status store: redis://host:port or redis-cluster://h1:p1,h2:p2", non_empty())
      .field("redis.key_prefix", &PushApiConfig::redis_key_prefix, d.redis_key_prefix,
             "status store key prefix (the same for every process of a cluster)", non_empty());

  s.field(
       "listen.host", [](auto& c) -> auto& { return c.listen.host; }, d.listen.host,
       "address the HTTP API binds", non_empty())
      .field(
          "listen.port", [](auto& c) -> auto& { return c.listen.port; }, d.listen.port,
          "HTTP API port; 0 picks a free port", range(0, 65535))
      .field(
          "listen.backlog", [](auto& c) -> auto& { return c.listen.backlog; }, d.listen.backlog,
          "listen(2) backlog", range(1, 65535))
      .field(
          "listen.max_connections", [](auto& c) -> auto& { return c.listen.max_connections; },
          d.listen.max_connections, "concurrent HTTP connections; extra ones are closed",
          range(1, 1'000'000))
      .field(
          "listen.idle_timeout_ms", [](auto& c) -> auto& { return c.listen.idle_timeout; },
          d.listen.idle_timeout,
          "close a connection idle this long, or this slow to send one request",
          range(100, 3'600'000));

  s.field(
       "limits.max_body_bytes", [](auto& c) -> auto& { return c.limits.max_body_bytes; },
       d.limits.max_body_bytes, "largest request body (413 payload_too_large above)",
       range(1024, 64 << 20))
      .field(
          "limits.max_header_bytes", [](auto& c) -> auto& { return c.limits.max_header_bytes; },
          d.limits.max_header_bytes, "largest request line plus headers (431 above)",
          range(512, 1 << 20))
      .field(
          "limits.max_headers", [](auto& c) -> auto& { return c.limits.max_headers; },
          d.limits.max_headers, "header fields per request (431 above)", range(4, 10'000))
      .field(
          "limits.max_json_depth", [](auto& c) -> auto& { return c.limits.max_json_depth; },
          d.limits.max_json_depth, "nesting depth of a JSON body (400 above)", range(3, 64))
      .field(
          "limits.max_payload_bytes", [](auto& c) -> auto& { return c.limits.max_payload_bytes; },
          d.limits.max_payload_bytes, "payload bytes after decoding (413 above)", range(1, 1 << 20))
      .field(
          "limits.max_device_ids", [](auto& c) -> auto& { return c.limits.max_device_ids; },
          d.limits.max_device_ids, "device_ids per push", range(1, 100'000))
      .field(
          "limits.max_user_ids", [](auto& c) -> auto& { return c.limits.max_user_ids; },
          d.limits.max_user_ids, "user_ids per push", range(1, 10'000))
      .field(
          "limits.max_ttl_s", [](auto& c) -> auto& { return c.limits.max_ttl_s; },
          d.limits.max_ttl_s, "largest ttl_s accepted", range(0, 31'536'000))
      .field(
          "limits.default_ttl_s", [](auto& c) -> auto& { return c.limits.default_ttl_s; },
          d.limits.default_ttl_s, "ttl_s of a push that names none", range(0, 31'536'000))
      .field(
          "limits.signature_window_s", [](auto& c) -> auto& { return c.limits.signature_window; },
          d.limits.signature_window, "allowed distance between X-Timestamp and the server clock",
          range(1, 86'400));

  s.field(
       "kafka.bootstrap", [](auto& c) -> auto& { return c.kafka.bootstrap; }, d.kafka.bootstrap,
       "Kafka bootstrap servers host:port[,host:port]")
      .field(
          "kafka.bootstrap_file", [](auto& c) -> auto& { return c.kafka.bootstrap_file; },
          d.kafka.bootstrap_file,
          "file holding the bootstrap list (tools/kafka-dev-broker writes one); wins over "
          "kafka.bootstrap when set")
      .field(
          "kafka.client_id", [](auto& c) -> auto& { return c.kafka.client_id; }, d.kafka.client_id,
          "Kafka client.id", non_empty())
      .field(
          "kafka.produce_timeout_ms", [](auto& c) -> auto& { return c.kafka.produce_timeout; },
          d.kafka.produce_timeout,
          "a push whose records are not all acknowledged within this answers 503 "
          "(librdkafka message.timeout.ms)",
          range(100, 600'000))
      .field(
          "kafka.linger_ms", [](auto& c) -> auto& { return c.kafka.linger; }, d.kafka.linger,
          "producer batching delay", range(0, 1000))
      .field(
          "kafka.max_queue_messages", [](auto& c) -> auto& { return c.kafka.max_queue_messages; },
          d.kafka.max_queue_messages, "librdkafka local queue bound; a full queue answers 503",
          range(1000, 10'000'000))
      .field(
          "kafka.ensure_topics", [](auto& c) -> auto& { return c.kafka.ensure_topics; },
          d.kafka.ensure_topics,
          "create missing pushgw.push.*, pushgw.fanout.* and probe topics at startup")
      .field(
          "kafka.topic_partitions", [](auto& c) -> auto& { return c.kafka.topic_partitions; },
          d.kafka.topic_partitions, "partitions of the topics push-api creates", range(1, 1024))
      .field(
          "kafka.properties", [](auto& c) -> auto& { return c.kafka.properties; },
          d.kafka.properties, "extra librdkafka producer properties \"name=value\"");

  s.field(
      "idempotency.ttl_s", [](auto& c) -> auto& { return c.idempotency.ttl; }, d.idempotency.ttl,
      "how long an idempotency key answers with the first 202", range(1, 30 * 86'400));

  s.field(
       "dispatch.ttl_s", [](auto& c) -> auto& { return c.dispatch.ttl_s; }, d.dispatch.ttl_s,
       "ttl_s of a dispatch answer", range(1, 86'400))
      .field(
          "dispatch.max_endpoints", [](auto& c) -> auto& { return c.dispatch.max_endpoints; },
          d.dispatch.max_endpoints, "endpoints a dispatch answer lists at most", range(1, 1000))
      .field(
          "dispatch.cache_ms", [](auto& c) -> auto& { return c.dispatch.cache; }, d.dispatch.cache,
          "how long the node list read from the status store is reused", range(0, 60'000));

  s.field(
       "readiness.probe_topic", [](auto& c) -> auto& { return c.readiness.probe_topic; },
       d.readiness.probe_topic,
       "topic of the bus probe record /readyz produces when no push was acknowledged "
       "recently (empty: judge by push outcomes only)")
      .field(
          "readiness.fresh_ms", [](auto& c) -> auto& { return c.readiness.fresh; },
          d.readiness.fresh, "an acknowledgement this recent means the bus is reachable",
          range(100, 600'000))
      .field(
          "readiness.check_timeout_ms", [](auto& c) -> auto& { return c.readiness.check_timeout; },
          d.readiness.check_timeout, "a readiness check slower than this counts as failed",
          range(10, 60'000));

  s.field("admin.enabled", &PushApiConfig::admin_enabled, d.admin_enabled,
          "also serve /healthz, /readyz and /metrics on the admin port");
  common::add_admin_fields(
      s, [](auto& c) -> auto& { return c.admin; }, 9300);
  common::add_log_fields(
      s, [](auto& c) -> auto& { return c.log; });
  return s;
}

}  // namespace

const common::ConfigSchema<PushApiConfig>& config_schema() {
  static const common::ConfigSchema<PushApiConfig> schema = build_schema();
  return schema;
}

PushApiConfig load_config(const common::ConfigSources& sources) {
  PushApiConfig cfg = config_schema().load(sources);
  cfg.validate();
  return cfg;
}

void PushApiConfig::validate() const {
  if (kafka.bootstrap.empty() && kafka.bootstrap_file.empty()) {
    throw common::ConfigError("kafka.bootstrap: set it or kafka.bootstrap_file");
  }
  for (const auto& p : kafka.properties) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw common::ConfigError("kafka.properties: '" + p + "' is not name=value");
    }
  }
  if (limits.default_ttl_s > limits.max_ttl_s) {
    throw common::ConfigError("limits.default_ttl_s: " + std::to_string(limits.default_ttl_s) +
                              " exceeds limits.max_ttl_s (" + std::to_string(limits.max_ttl_s) +
                              ")");
  }
  // The largest legal push body: max_device_ids ids of 128 bytes (quoted, separated), or a
  // base64 payload of max_payload_bytes, plus room for the other fields.
  const uint64_t ids = uint64_t{limits.max_device_ids} * 131;
  const uint64_t b64 = (uint64_t{limits.max_payload_bytes} + 2) / 3 * 4;
  const uint64_t needed = std::max(ids, b64) + 4096;
  if (limits.max_body_bytes < needed) {
    throw common::ConfigError("limits.max_body_bytes: " + std::to_string(limits.max_body_bytes) +
                              " cannot hold a legal push (limits.max_device_ids ids or a base64 "
                              "payload of limits.max_payload_bytes); need at least " +
                              std::to_string(needed));
  }
  if (admin_enabled && admin.port != 0 && admin.port == listen.port) {
    throw common::ConfigError("admin.port: " + std::to_string(admin.port) +
                              " is listen.port too; pick another or set admin.enabled = false");
  }
}

}  // namespace pushgw::push_api
