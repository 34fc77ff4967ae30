#pragma once
// Fixture of the offline router integration tests: an in-process Kafka mock
// cluster per test with unique topics, the router on a background
// io_context, real RocksDB in a temp dir, and a producer standing in for the
// online router (stores) and conn-node (presence, acks).
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/bus/producer.h"
#include "common/clock.h"
#include "common/service.h"
#include "offline_router/config.h"
#include "offline_router/router.h"
#include "proto/bus.pb.h"
#include "testsupport/kafka_mock.h"
#include "testsupport/temp_dir.h"

namespace pushgw::offline_router::testing {

using namespace std::chrono_literals;

inline constexpr const char* kApp = "app1";
inline constexpr int kPartitions = 2;
inline constexpr uint64_t kHourMs = 3'600'000;

uint64_t now_ms();

/// Acked message of an AckEvent: id and seq (0 = unknown to the node).
struct Acked {
  std::string id;
  uint64_t seq = 0;
};

class RouterFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  /// A config for this test's Kafka topics and data dir, test-friendly timings.
  RouterConfig config() const;
  /// Starts a router (fails the test if it cannot) and waits until it owns
  /// every partition.
  void start_router(const RouterConfig& cfg, const Clock* clock = nullptr);
  /// Orderly shutdown of the running router.
  void stop_router();
  /// Another member of the same group (started, not waited for).
  std::unique_ptr<OfflineRouter> start_member(const RouterConfig& cfg);
  /// Orderly shutdown of `r`.
  void shutdown(OfflineRouter& r);
  /// OfflineRouter::device_stored() of `r` (router() by default).
  result<DeviceStored> device_stored(const std::string& device, OfflineRouter* r = nullptr);
  OfflineRouter& router() { return *router_; }

  /// A stored-message record as the online router writes it to pushgw.offline.
  static bus::v1::DeliveryRecord message(const std::string& device, uint64_t seq,
                                         uint64_t expires_ms, const std::string& id = {},
                                         uint64_t epoch = 0);
  bus::Delivered store(const bus::v1::DeliveryRecord& r);
  bus::Delivered connect(const std::string& device, const std::string& node, uint64_t epoch,
                         uint64_t last_seq);
  bus::Delivered disconnect(const std::string& device, const std::string& node, uint64_t epoch);
  bus::Delivered ack(const std::string& device, const std::vector<Acked>& acked,
                     uint64_t last_seq = 0);
  bus::Delivered produce(const std::string& topic, const std::string& key,
                         const std::string& value);

  /// The node's delivery topic (created by the fixture for n1, n2).
  std::string deliver_topic(const std::string& node) const { return deliver_prefix_ + node; }
  /// Reads the node's delivery topic from the start until `count` records
  /// arrived (or 15 s passed).
  std::vector<bus::v1::DeliveryRecord> deliveries(const std::string& node, std::size_t count);
  /// Polls `pred` every 20 ms up to `timeout`.
  static bool wait_for(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = 20s);

  std::unique_ptr<testsupport::KafkaMock> kafka_;
  std::unique_ptr<testsupport::TempDir> dir_;
  std::string offline_;
  std::string presence_;
  std::string acks_;
  std::string deliver_prefix_;
  std::string group_;
  std::unique_ptr<common::IoRunner> io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<OfflineRouter> router_;
};

}  // namespace pushgw::offline_router::testing
