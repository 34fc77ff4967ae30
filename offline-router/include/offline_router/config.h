#pragma once
/// Typed configuration of the offline router. Every key, its default and
/// meaning are declared once in config_schema() (`offline-router
/// --help-config` prints them; offline-router/README.md lists them).
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/admin_server.h"
#include "common/config.h"
#include "common/log.h"

namespace pushgw::offline_router {

struct KafkaSettings {
  std::string bootstrap;
  /// File holding the bootstrap list (tools/kafka-dev-broker writes one); wins when set.
  std::string bootstrap_file;
  std::string client_id = "pushgw-offline-router";
  std::string group_id = "pushgw-offline-router";
  std::string offline_topic = "pushgw.offline";
  std::string presence_topic = "pushgw.presence";
  std::string acks_topic = "pushgw.acks";
  /// Replays go to deliver_prefix + node_id.
  std::string deliver_prefix = "pushgw.deliver.";
  /// Partitions of the three input topics when the router has to create them.
  int partitions = 16;
  std::chrono::milliseconds session_timeout{10'000};
  std::chrono::milliseconds heartbeat_interval{3'000};
  std::chrono::milliseconds message_timeout{30'000};
  std::chrono::milliseconds linger{2};
  /// Extra librdkafka properties "name=value" for producer and consumer.
  std::vector<std::string> properties;
};

struct StoreSettings {
  /// One RocksDB per owned partition under this directory.
  std::string data_dir = "/var/lib/pushgw/offline";
  uint32_t max_per_device = 100;
  uint32_t max_collapsible_per_device = 100;
  std::chrono::seconds ack_retention{7 * 24 * 3600};
  uint32_t device_cache_entries = 100'000;
  uint32_t write_buffer_mb = 64;
  uint32_t block_cache_mb = 64;
  /// fsync the WAL with each batch before its offsets may be committed.
  bool sync = true;
  /// How long opening a partition waits for its previous holder.
  std::chrono::milliseconds open_wait{30'000};
  /// Threads running RocksDB calls.
  unsigned pool_threads = 2;
};

struct BatchSettings {
  /// Records taken from Kafka per batch.
  uint32_t max_records = 2'000;
  std::chrono::milliseconds poll_timeout{100};
  /// Back-off after a failed store write (full disk) before the batch is retried.
  std::chrono::milliseconds retry_backoff{1'000};
};

struct ReplaySettings {
  /// Messages read per read() call during a replay.
  uint32_t page = 500;
  /// Attempts to produce one replay before it is given up (the messages stay stored).
  uint32_t produce_attempts = 3;
  /// Forward a message stored after its device connected to the node at once.
  bool forward_late_stores = true;
  /// Connected devices remembered per router for forward_late_stores.
  uint32_t max_tracked_connections = 1'000'000;
  /// A CONNECTED presence can overtake stores produced before it (Kafka
  /// orders records within a partition, not across topics). Its replay waits
  /// until the store has applied pushgw.offline up to the partition's end
  /// offset as it was when the presence was read, at most this long
  /// (0 = replay at once).
  std::chrono::milliseconds catch_up_wait{1'500};
};

struct RouterConfig {
  KafkaSettings kafka;
  StoreSettings store;
  BatchSettings batch;
  ReplaySettings replay;
  common::AdminServerOptions admin;
  common::LogConfig log;

  /// Cross-field checks. Throws common::ConfigError naming the key.
  void validate() const;
};

/// The schema of RouterConfig (keys, defaults, ranges, docs).
const common::ConfigSchema<RouterConfig>& config_schema();

}  // namespace pushgw::offline_router
