#pragma once
/// Plain value types of the Kafka bus: what a producer sends, what a consumer
/// receives, and how partitions are named. No librdkafka types appear here.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pushgw::bus {

/// One Kafka record header. Kafka allows repeated keys; order is kept.
struct Header {
  std::string key;
  std::string value;
  friend bool operator==(const Header&, const Header&) = default;
};

/// A record to produce.
struct OutRecord {
  std::string topic;
  /// Partitioning key. Empty means "no key" (Kafka null key), so the
  /// partitioner spreads such records; every pushgw record that needs
  /// per-device order carries a key.
  std::string key;
  std::string value;
  std::vector<Header> headers;
  /// Explicit partition; unset lets the partitioner choose from the key.
  std::optional<int32_t> partition;
};

/// Where a produced record landed, known only once the broker acknowledged it
/// (acks=all) and librdkafka delivered the report.
struct Delivered {
  int32_t partition = -1;
  int64_t offset = -1;
  friend bool operator==(const Delivered&, const Delivered&) = default;
};

/// A topic partition.
struct TopicPartition {
  std::string topic;
  int32_t partition = -1;
  friend bool operator==(const TopicPartition&, const TopicPartition&) = default;
  friend auto operator<=>(const TopicPartition&, const TopicPartition&) = default;
};

/// A consumed record. Owns copies of key, value and headers, so it may
/// outlive the consumer's internal buffers and cross threads freely.
struct Record {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  std::string key;
  std::string value;
  std::vector<Header> headers;
  /// Broker or producer timestamp in Unix ms, -1 if not available.
  int64_t timestamp_ms = -1;
  /// Which assignment of this partition delivered the record. Set by the
  /// consumer; Consumer::mark_processed ignores records whose partition has
  /// been revoked (and possibly re-assigned) since, so a stale mark can never
  /// move a committed offset.
  uint64_t assignment_epoch = 0;
};

/// A topic to create, for ensure_topics().
struct TopicSpec {
  std::string name;
  int partitions = 1;
  /// -1: the broker's default.
  int replication_factor = -1;
};

}  // namespace pushgw::bus
