#pragma once
/// librdkafka's mock Kafka cluster, owned RAII-style: a real Kafka protocol
/// server on loopback (produce, fetch, consumer groups, offset commits,
/// fault injection) that keeps all data in memory. It stands in for Kafka in
/// tests (in-process) and in the single-box run (tools/kafka-dev-broker).
/// Never for production: nothing is persisted and nothing is replicated.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace pushgw::bus {

/// Kafka protocol request types, for fault injection.
enum class ApiKey : int16_t {
  kProduce = 0,
  kFetch = 1,
  kListOffsets = 2,
  kMetadata = 3,
  kOffsetCommit = 8,
  kOffsetFetch = 9,
  kFindCoordinator = 10,
  kJoinGroup = 11,
  kHeartbeat = 12,
  kLeaveGroup = 13,
  kSyncGroup = 14,
  kInitProducerId = 22,
};

/// A running mock cluster with brokers 1..N listening on 127.0.0.1.
///
/// librdkafka 2.0.2 picks the listen ports itself (ephemeral ports; there is
/// no way to ask for fixed ones), so clients learn them from
/// bootstrap_servers(). The brokers run on librdkafka's own threads; all
/// methods are thread-safe. Destroying the object stops the brokers.
class MockCluster {
 public:
  /// Starts `brokers` (>= 1) brokers. errc::invalid_argument for a bad
  /// count, errc::unavailable if librdkafka could not start them.
  static result<std::unique_ptr<MockCluster>> start(int brokers);

  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  /// "127.0.0.1:port,..." for bootstrap.servers.
  const std::string& bootstrap_servers() const { return bootstrap_; }
  int broker_count() const { return brokers_; }

  /// Creates a topic (replication is capped at the broker count).
  /// errc::invalid_argument for a bad name or count, errc::rejected if the
  /// mock refused (the log says why).
  result<void> create_topic(const std::string& name, int partitions, int replication_factor = 1);

  /// Broker `broker_id` (1..N) drops its connections and refuses new ones /
  /// accepts them again. errc::not_found for an unknown broker.
  result<void> set_broker_down(int32_t broker_id);
  result<void> set_broker_up(int32_t broker_id);

  /// Adds `rtt_ms` of latency to every response of a broker.
  result<void> set_broker_rtt(int32_t broker_id, int rtt_ms);

  /// The next requests of type `api` (on any broker) fail with these
  /// librdkafka error codes (rd_kafka_resp_err_t values), in order.
  void push_request_errors(ApiKey api, const std::vector<int>& errors);

  /// The next requests of type `api` on one broker answer with (error, rtt_ms)
  /// in order: error 0 with an rtt delays a request without failing it.
  result<void> push_broker_request_error_rtts(int32_t broker_id, ApiKey api,
                                              const std::vector<std::pair<int, int>>& error_rtts);

  /// Forgets queued request errors of type `api`.
  void clear_request_errors(ApiKey api);

 private:
  struct Handles;
  MockCluster(std::unique_ptr<Handles> handles, std::string bootstrap, int brokers);

  std::unique_ptr<Handles> handles_;
  std::string bootstrap_;
  int brokers_;
};

}  // namespace pushgw::bus
