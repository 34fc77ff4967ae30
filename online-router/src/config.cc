#include "online_router/config.h"

namespace pushgw::online_router {

using common::enum_names;
using common::non_empty;
using common::range;

std::string_view class_name(TrafficClass c) noexcept {
  return c == TrafficClass::kMarketing ? "marketing" : "normal";
}

namespace {

common::ConfigSchema<RouterConfig> build_schema() {
  const RouterConfig d;
  common::ConfigSchema<RouterConfig> s;
  s.field("class", &RouterConfig::traffic_class, d.traffic_class,
          "traffic class served: consumes pushgw.push.<class> and pushgw.fanout.<class> in the "
          "consumer group online-router.<class>",
          enum_names<TrafficClass>(
              {{"normal", TrafficClass::kNormal}, {"marketing", TrafficClass::kMarketing}}))
      .field("threads", &RouterConfig::threads, d.threads,
             "threads running the router, the Redis client and the admin server", range(1, 64))
      .field("batch_size", &RouterConfig::batch_size, d.batch_size,
             "input records routed per batch (one pipelined lookup, one produce batch)",
             range(1, 100'000))
      .field("batch_wait_ms", &RouterConfig::batch_wait, d.batch_wait,
             "longest wait for a batch to fill before a partial batch is routed", range(1, 10'000))
      .field("max_in_flight", &RouterConfig::max_in_flight, d.max_in_flight,
             "batches awaiting delivery reports before consumption pauses", range(1, 1'000))
      .field("retry_backoff_min_ms", &RouterConfig::retry_backoff_min, d.retry_backoff_min,
             "first retry delay after a status store or produce failure", range(1, 60'000))
      .field("retry_backoff_max_ms", &RouterConfig::retry_backoff_max, d.retry_backoff_max,
             "largest retry delay (the delay doubles up to it)", range(1, 600'000))
      .field("drain_timeout_ms", &RouterConfig::drain_timeout, d.drain_timeout,
             "SIGTERM: how long in-flight batches may take to be acknowledged before exit",
             range(0, 600'000));

  s.field("redis.url", &RouterConfig::redis_url, d.redis_url,
          "status store: redis://host:port or redis-cluster://h1:p1,h2:p2", non_empty())
      .field("redis.key_prefix", &RouterConfig::redis_key_prefix, d.redis_key_prefix,
             "status store key prefix (shared with conn-node and push-api)", non_empty())
      .field("nodes.max_age_ms", &RouterConfig::node_list_max_age, d.node_list_max_age,
             "the cached live-node list is re-read when older than this, or when a device "
             "connected to an unlisted node after it was read",
             range(100, 600'000))
      .field("counters.enabled", &RouterConfig::counters, d.counters,
             "keep per-message counters (routed, stored, expired) in the status store")
      .field("counters.min_ttl_s", &RouterConfig::counters_min_ttl, d.counters_min_ttl,
             "counters live at least this long, and at least the message's ttl",
             range(60, 365 * 86'400));

  s.field(
       "kafka.bootstrap", [](auto& c) -> auto& { return c.kafka.bootstrap; }, d.kafka.bootstrap,
       "Kafka bootstrap servers host:port[,host:port]")
      .field(
          "kafka.bootstrap_file", [](auto& c) -> auto& { return c.kafka.bootstrap_file; },
          d.kafka.bootstrap_file,
          "file holding the bootstrap servers (tools/kafka-dev-broker); wins over "
          "kafka.bootstrap")
      .field(
          "kafka.client_id", [](auto& c) -> auto& { return c.kafka.client_id; }, d.kafka.client_id,
          "client.id prefix; the class is appended", non_empty())
      .field(
          "kafka.group_id", [](auto& c) -> auto& { return c.kafka.group_id; }, d.kafka.group_id,
          "consumer group (empty: online-router.<class>)")
      .field(
          "kafka.message_timeout_ms", [](auto& c) -> auto& { return c.kafka.message_timeout; },
          d.kafka.message_timeout,
          "librdkafka retries a produced record this long before the router retries it "
          "itself (0 = librdkafka never gives up)",
          range(0, 3'600'000))
      .field(
          "kafka.linger_ms", [](auto& c) -> auto& { return c.kafka.linger; }, d.kafka.linger,
          "producer batching delay", range(0, 1'000))
      .field(
          "kafka.max_queue_messages", [](auto& c) -> auto& { return c.kafka.max_queue_messages; },
          d.kafka.max_queue_messages, "librdkafka's local producer queue bound (records)",
          range(1'000, 10'000'000))
      .field(
          "kafka.session_timeout_ms", [](auto& c) -> auto& { return c.kafka.session_timeout; },
          d.kafka.session_timeout, "consumer group session timeout", range(1'000, 3'600'000))
      .field(
          "kafka.heartbeat_interval_ms",
          [](auto& c) -> auto& { return c.kafka.heartbeat_interval; }, d.kafka.heartbeat_interval,
          "consumer group heartbeat interval", range(100, 600'000))
      .field(
          "kafka.commit_interval_ms", [](auto& c) -> auto& { return c.kafka.commit_interval; },
          d.kafka.commit_interval,
          "how often processed offsets are committed (also on revoke and shutdown)",
          range(10, 600'000))
      .field(
          "kafka.max_buffered", [](auto& c) -> auto& { return c.kafka.max_buffered; },
          d.kafka.max_buffered, "records buffered between the poll thread and the router",
          range(1, 10'000'000))
      .field(
          "kafka.topic_partitions", [](auto& c) -> auto& { return c.kafka.topic_partitions; },
          d.kafka.topic_partitions,
          "partitions of the input topics and pushgw.offline when this router creates them",
          range(1, 10'000))
      .field(
          "kafka.ensure_topics_timeout_ms",
          [](auto& c) -> auto& { return c.kafka.ensure_topics_timeout; },
          d.kafka.ensure_topics_timeout, "bound on the startup topic check", range(100, 600'000))
      .field(
          "kafka.properties", [](auto& c) -> auto& { return c.kafka.properties; },
          d.kafka.properties,
          "extra librdkafka properties \"name=value\" for the producer and the consumer");

  s.field("failpoints.crash_after_consume", &RouterConfig::crash_after_consume,
          d.crash_after_consume,
          "TESTS ONLY: _exit(75) after consuming the Nth non-empty batch, before producing its "
          "records (0 = off)",
          range(0, 1'000'000'000));

  common::add_admin_fields(
      s, [](auto& c) -> auto& { return c.admin; }, 9210);
  common::add_log_fields(
      s, [](auto& c) -> auto& { return c.log; });
  return s;
}

}  // namespace

void RouterConfig::validate() const {
  if (kafka.bootstrap.empty() && kafka.bootstrap_file.empty()) {
    throw common::ConfigError("kafka.bootstrap: set it or kafka.bootstrap_file");
  }
  if (retry_backoff_max < retry_backoff_min) {
    throw common::ConfigError("retry_backoff_max_ms (" + std::to_string(retry_backoff_max.count()) +
                              ") is below retry_backoff_min_ms (" +
                              std::to_string(retry_backoff_min.count()) + ")");
  }
  for (const auto& p : kafka.properties) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw common::ConfigError("kafka.properties: \"" + p + "\" is not name=value");
    }
  }
}

std::string RouterConfig::group_id() const {
  if (!kafka.group_id.empty()) return kafka.group_id;
  return "online-router." + std::string(class_name(traffic_class));
}

const common::ConfigSchema<RouterConfig>& config_schema() {
  static const common::ConfigSchema<RouterConfig> schema = build_schema();
  return schema;
}

RouterConfig load_config(const common::ConfigSources& sources) {
  RouterConfig cfg = config_schema().load(sources);
  cfg.validate();
  return cfg;
}

}  // namespace pushgw::online_router
