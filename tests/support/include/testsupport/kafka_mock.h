#pragma once
/// An in-process librdkafka mock cluster for integration tests: a real Kafka
/// protocol server on loopback (brokers 1..N), with unique topic names per
/// test, fault injection, test-friendly client configs, and read-back of
/// what the cluster holds (committed offsets, watermarks) through librdkafka
/// directly, independent of the bus wrapper under test.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/bus/config.h"
#include "common/bus/mock_cluster.h"
#include "common/bus/types.h"

namespace pushgw::testsupport {

class KafkaMock {
 public:
  /// Starts `brokers` brokers. Throws std::runtime_error if it cannot.
  explicit KafkaMock(int brokers = 1);
  ~KafkaMock();
  KafkaMock(const KafkaMock&) = delete;
  KafkaMock& operator=(const KafkaMock&) = delete;

  const std::string& bootstrap_servers() const { return cluster_->bootstrap_servers(); }
  /// Fault injection and the rest of the mock API.
  bus::MockCluster& cluster() { return *cluster_; }

  /// A name unique to this process, the running test and this call, usable
  /// as a topic or group id: "<prefix>.<Suite>.<Test>.<pid>.<n>".
  std::string unique_name(std::string_view prefix = "t");

  /// Creates a uniquely named topic and returns its name. Throws
  /// std::runtime_error if the mock refuses.
  std::string create_topic(int partitions = 1, std::string_view prefix = "t");

  /// Broker down / up; throw std::runtime_error for an unknown broker.
  void set_broker_down(int32_t broker_id);
  void set_broker_up(int32_t broker_id);

  /// Configs pointing at this cluster with short timeouts (session 3 s,
  /// heartbeat 500 ms, metadata refresh 500 ms, message timeout 10 s). The
  /// 2.0.2 mock waits session timeout - 1 s for members to rejoin in a
  /// rebalance, so the session timeout sets the pace of group tests.
  bus::ProducerConfig producer_config(std::string client_id = "test-producer") const;
  bus::ConsumerConfig consumer_config(std::string group_id,
                                      std::string client_id = "test-consumer") const;

  /// Committed offset of `group` for partitions 0..partitions-1 of `topic`,
  /// read with rd_kafka_committed (-1001 = none). Throws on failure.
  std::map<int32_t, int64_t> committed(const std::string& group, const std::string& topic,
                                       int partitions,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(5));

  /// Reads partitions 0..partitions-1 of `topic` from the beginning with a
  /// plain assigned consumer (no group, no commits) until `count` records
  /// arrived or `timeout` passed. Records come in per-partition order.
  std::vector<bus::Record> read(const std::string& topic, int partitions, std::size_t count,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10));

  /// High watermark (next offset to be written) of one partition, queried
  /// from the broker. Throws on failure.
  int64_t high_watermark(const std::string& topic, int32_t partition,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  std::unique_ptr<bus::MockCluster> cluster_;
  int counter_ = 0;
};

}  // namespace pushgw::testsupport
