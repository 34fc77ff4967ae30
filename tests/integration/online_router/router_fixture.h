#pragma once
// Fixture of the online router integration tests: one real redis-server per
// suite (unique key prefix per test), a fresh in-process Kafka mock cluster
// per test with the router's topics pre-created, a background io_context, a
// status store to register devices/nodes/topics directly, and a producer
// standing in for push-api.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/bus/producer.h"
#include "common/service.h"
#include "online_router/config.h"
#include "online_router/router.h"
#include "proto/bus.pb.h"
#include "status_store/redis_status_store.h"
#include "testsupport/kafka_mock.h"
#include "testsupport/redis_server.h"

namespace pushgw::online_router::testing {

using namespace std::chrono_literals;

inline constexpr const char* kApp = "app1";
/// Partitions of the pre-created topics.
inline constexpr int kPushPartitions = 2;
inline constexpr int kFanoutPartitions = 1;
inline constexpr int kOfflinePartitions = 2;
inline constexpr int kDeliverPartitions = 1;
/// Nodes whose delivery topics exist.
inline const std::vector<std::string> kNodes = {"n1", "n2", "n3"};

uint64_t now_ms();

class RouterFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;
  void TearDown() override;

  /// A config for this test's Redis and Kafka with test-friendly timings.
  RouterConfig config(TrafficClass c = TrafficClass::kNormal) const;
  /// Builds and starts a router on the fixture's io_context (fails the test if it cannot).
  std::unique_ptr<Router> start_router(const RouterConfig& cfg);

  // Status store, synchronously.
  uint64_t register_device(const std::string& device, const std::string& node,
                           const std::string& user = {}, uint64_t connected_at_ms = 0);
  void upsert_node(const std::string& node);
  void remove_node(const std::string& node);
  void topic_add(const std::string& topic, const std::string& node, int64_t delta);
  std::map<std::string, int64_t> counters(const std::string& message_id);

  /// A unicast request from push-api: created now, expiring after ttl_s.
  static bus::v1::PushRequest unicast(const std::string& message_id, const std::string& device,
                                      uint32_t ttl_s);
  static bus::v1::PushRequest to_topic(const std::string& message_id, const std::string& topic,
                                       uint32_t ttl_s);
  static bus::v1::PushRequest broadcast(const std::string& message_id, uint32_t ttl_s);
  /// Produces like push-api: unicast to pushgw.push.<class> keyed by
  /// app/device, topic/broadcast to pushgw.fanout.<class> keyed by message id.
  bus::Delivered push(const bus::v1::PushRequest& r, TrafficClass c = TrafficClass::kNormal);
  /// Where each request landed, in order.
  std::vector<bus::Delivered> push_all(const std::vector<bus::v1::PushRequest>& rs,
                                       TrafficClass c = TrafficClass::kNormal);
  bus::Delivered produce_raw(const std::string& topic, const std::string& key,
                             const std::string& value);

  /// Records in the topic now (sum of high watermarks).
  int64_t count(const std::string& topic, int partitions);
  /// Every record of the topic, parsed, in per-partition order.
  std::vector<bus::v1::DeliveryRecord> deliveries(const std::string& topic, int partitions);

  /// Polls `pred` every 20 ms until true or `timeout`.
  /// 30 s: a group join of the Kafka mock under ASan on two loaded cores took over 10 s once.
  static bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 30s);

  static testsupport::RedisServer* redis_;
  std::unique_ptr<testsupport::KafkaMock> kafka_;
  std::unique_ptr<common::IoRunner> io_;
  /// Keeps the io threads running while the test has nothing queued.
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::unique_ptr<status_store::RedisStatusStore> store_;
  std::unique_ptr<bus::Producer> producer_;
  std::string prefix_;
};

}  // namespace pushgw::online_router::testing
