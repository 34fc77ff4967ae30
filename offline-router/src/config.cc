#include "offline_router/config.h"

namespace pushgw::offline_router {

using common::non_empty;
using common::range;

namespace {

common::ConfigSchema<RouterConfig> build_schema() {
  const RouterConfig d;
  common::ConfigSchema<RouterConfig> s;
  s.field("kafka.bootstrap", [](auto& c) -> auto& { return c.kafka.bootstrap; },
          d.kafka.bootstrap, "Kafka bootstrap servers host:port[,host:port]")
      .field("kafka.bootstrap_file", [](auto& c) -> auto& { return c.kafka.bootstrap_file; },
             d.kafka.bootstrap_file,
             "file holding the bootstrap list (tools/kafka-dev-broker writes one); wins over "
             "kafka.bootstrap when set")
      .field("kafka.client_id", [](auto& c) -> auto& { return c.kafka.client_id; },
             d.kafka.client_id, "Kafka client.id", non_empty())
      .field("kafka.group_id", [](auto& c) -> auto& { return c.kafka.group_id; },
             d.kafka.group_id, "consumer group of all offline routers", non_empty())
      .field("kafka.offline_topic", [](auto& c) -> auto& { return c.kafka.offline_topic; },
             d.kafka.offline_topic, "DeliveryRecords to store (ttl > 0)", non_empty())
      .field("kafka.presence_topic", [](auto& c) -> auto& { return c.kafka.presence_topic; },
             d.kafka.presence_topic, "Presence events (CONNECTED triggers a replay)",
             non_empty())
      .field("kafka.acks_topic", [](auto& c) -> auto& { return c.kafka.acks_topic; },
             d.kafka.acks_topic, "AckEvents (delete, advance the watermark)", non_empty())
      .field("kafka.deliver_prefix", [](auto& c) -> auto& { return c.kafka.deliver_prefix; },
             d.kafka.deliver_prefix, "replays go to <deliver_prefix><node_id>", non_empty())
      .field("kafka.partitions", [](auto& c) -> auto& { return c.kafka.partitions; },
             d.kafka.partitions,
             "partitions of the three input topics when the router creates them (existing "
             "topics are checked: they must all have the same count)",
             range(1, 10'000))
      .field("kafka.session_timeout_ms", [](auto& c) -> auto& { return c.kafka.session_timeout; },
             d.kafka.session_timeout, "consumer group session timeout", range(1000, 3'600'000))
      .field("kafka.heartbeat_interval_ms",
             [](auto& c) -> auto& { return c.kafka.heartbeat_interval; },
             d.kafka.heartbeat_interval, "consumer group heartbeat interval",
             range(100, 3'600'000))
      .field("kafka.message_timeout_ms", [](auto& c) -> auto& { return c.kafka.message_timeout; },
             d.kafka.message_timeout, "a replay produce fails after this", range(100, 600'000))
      .field("kafka.linger_ms", [](auto& c) -> auto& { return c.kafka.linger; }, d.kafka.linger,
             "producer batching delay", range(0, 1000))
      .field("kafka.properties", [](auto& c) -> auto& { return c.kafka.properties; },
             d.kafka.properties,
             "extra librdkafka properties \"name=value\" for the producer and the consumer");

  s.field("store.data_dir", [](auto& c) -> auto& { return c.store.data_dir; },
          d.store.data_dir, "one RocksDB per owned partition under <data_dir>/partition-<n>",
          non_empty())
      .field("store.max_per_device", [](auto& c) -> auto& { return c.store.max_per_device; },
             d.store.max_per_device,
             "stored messages without collapse key per device; on overflow the oldest are "
             "dropped and a resync marker is stored",
             range(1, 1'000'000))
      .field("store.max_collapsible_per_device",
             [](auto& c) -> auto& { return c.store.max_collapsible_per_device; },
             d.store.max_collapsible_per_device, "stored messages with a collapse key per device",
             range(1, 1'000'000))
      .field("store.ack_retention_s", [](auto& c) -> auto& { return c.store.ack_retention; },
             d.store.ack_retention,
             "how long acks are remembered (a store arriving after its ack is dropped)",
             range(60, 365 * 86400))
      .field("store.device_cache_entries",
             [](auto& c) -> auto& { return c.store.device_cache_entries; },
             d.store.device_cache_entries, "devices whose queue figures are cached, per partition",
             range(1, 100'000'000))
      .field("store.write_buffer_mb", [](auto& c) -> auto& { return c.store.write_buffer_mb; },
             d.store.write_buffer_mb, "RocksDB memtable size per partition", range(1, 4096))
      .field("store.block_cache_mb", [](auto& c) -> auto& { return c.store.block_cache_mb; },
             d.store.block_cache_mb, "RocksDB block cache per partition", range(1, 65536))
      .field("store.sync", [](auto& c) -> auto& { return c.store.sync; }, d.store.sync,
             "fsync the WAL with each batch before its offsets may be committed (off: a "
             "process crash loses nothing, a machine crash may lose the last batches)")
      .field("store.open_wait_ms", [](auto& c) -> auto& { return c.store.open_wait; },
             d.store.open_wait,
             "opening a partition waits this long for its previous holder to close it",
             range(0, 600'000))
      .field("store.pool_threads", [](auto& c) -> auto& { return c.store.pool_threads; },
             d.store.pool_threads, "threads running RocksDB calls", range(1, 64));

  s.field("batch.max_records", [](auto& c) -> auto& { return c.batch.max_records; },
          d.batch.max_records, "records taken from Kafka per batch", range(1, 100'000))
      .field("batch.poll_timeout_ms", [](auto& c) -> auto& { return c.batch.poll_timeout; },
             d.batch.poll_timeout, "longest wait for a batch", range(1, 60'000))
      .field("batch.retry_backoff_ms", [](auto& c) -> auto& { return c.batch.retry_backoff; },
             d.batch.retry_backoff, "wait before retrying a batch whose store write failed",
             range(1, 600'000));

  s.field("replay.page", [](auto& c) -> auto& { return c.replay.page; }, d.replay.page,
          "messages read per store call during a replay", range(1, 100'000))
      .field("replay.produce_attempts",
             [](auto& c) -> auto& { return c.replay.produce_attempts; },
             d.replay.produce_attempts,
             "attempts to produce a replay before giving up (the messages stay stored)",
             range(1, 100))
      .field("replay.forward_late_stores",
             [](auto& c) -> auto& { return c.replay.forward_late_stores; },
             d.replay.forward_late_stores,
             "send a message stored after its device's replay straight to the device's node")
      .field("replay.max_tracked_connections",
             [](auto& c) -> auto& { return c.replay.max_tracked_connections; },
             d.replay.max_tracked_connections,
             "connected devices remembered for replay.forward_late_stores", range(0, 100'000'000))
      .field("replay.catch_up_wait_ms", [](auto& c) -> auto& { return c.replay.catch_up_wait; },
             d.replay.catch_up_wait,
             "a replay waits until the store has caught up with the stores produced before the "
             "device connected, at most this long (0 = no wait)",
             range(0, 60'000));

  common::add_admin_fields(s, [](auto& c) -> auto& { return c.admin; }, 9400);
  common::add_log_fields(s, [](auto& c) -> auto& { return c.log; });
  return s;
}

}  // namespace

const common::ConfigSchema<RouterConfig>& config_schema() {
  static const common::ConfigSchema<RouterConfig> schema = build_schema();
  return schema;
}

void RouterConfig::validate() const {
  if (kafka.bootstrap.empty() && kafka.bootstrap_file.empty()) {
    throw common::ConfigError("kafka.bootstrap: set it or kafka.bootstrap_file");
  }
  if (kafka.offline_topic == kafka.presence_topic || kafka.offline_topic == kafka.acks_topic ||
      kafka.presence_topic == kafka.acks_topic) {
    throw common::ConfigError(
        "kafka.offline_topic / kafka.presence_topic / kafka.acks_topic: must be three topics");
  }
  if (kafka.heartbeat_interval >= kafka.session_timeout) {
    throw common::ConfigError("kafka.heartbeat_interval_ms: must be below kafka.session_timeout_ms");
  }
  for (const auto& p : kafka.properties) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw common::ConfigError("kafka.properties: '" + p + "' is not name=value");
    }
  }
}

}  // namespace pushgw::offline_router
