#pragma once
// Test fixture for conn-node integration tests: a real redis-server, the
// in-process Kafka mock cluster, a self-signed certificate, an apps file,
// and conn-node instances started in this process. Device clients use
// pushgw_client on the test thread's io_context (run() drives one step).
#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/bus/producer.h"
#include "common/service.h"
#include "conn_node/config.h"
#include "conn_node/node.h"
#include "proto/bus.pb.h"
#include "proto/pushgw.pb.h"
#include "pushgw_client/device.h"
#include "pushgw_client/tls.h"
#include "status_store/redis_status_store.h"
#include "testsupport/kafka_mock.h"
#include "testsupport/redis_server.h"
#include "testsupport/temp_dir.h"

namespace pushgw::conn_node::testing {

using namespace std::chrono_literals;

inline constexpr const char* kApp = "demo";
inline constexpr const char* kSecret = "demo-device-secret-0123456789";
inline constexpr const char* kOtherApp = "other";
inline constexpr const char* kOtherSecret = "other-device-secret-9876543210";

/// Runs `task` on `ioc` (on this thread) until it finishes or `limit` passes.
template <class T>
T run(boost::asio::io_context& ioc, boost::asio::awaitable<T> task,
      std::chrono::milliseconds limit = 15s) {
  struct State {
    bool done = false;
    std::exception_ptr error;
    std::optional<T> value;
  };
  auto state = std::make_shared<State>();
  boost::asio::co_spawn(ioc, std::move(task), [state](std::exception_ptr e, T v) {
    state->error = e;
    if (!e) state->value.emplace(std::move(v));
    state->done = true;
  });
  ioc.restart();
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!state->done && std::chrono::steady_clock::now() < deadline) {
    ioc.run_one_for(deadline - std::chrono::steady_clock::now());
  }
  if (!state->done) throw std::runtime_error("test step did not finish in time");
  if (state->error) std::rethrow_exception(state->error);
  return std::move(*state->value);
}

/// Polls `pred` every 20 ms until true or `limit` passes.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 5s);

class NodeFixture : public ::testing::Test {
 protected:
  NodeFixture();
  ~NodeFixture() override;

  /// A config for a node on free loopback ports with every listener on,
  /// short timeouts, no replay hold. `tweak` edits it before start.
  NodeConfig node_config(const std::string& node_id);
  /// Starts a node (fails the test if it cannot); kept until the test ends.
  Node& start_node(const std::string& node_id,
                   const std::function<void(NodeConfig&)>& tweak = {});

  client::Endpoint endpoint(const Node& node, ListenerKind kind) const;
  /// A device token of `app` signed with `secret`, expiring `ttl` from now.
  std::string token(const std::string& device, const std::string& app = kApp,
                    const std::string& secret = kSecret, int64_t ttl_s = 3600) const;

  /// Connects a device link (fails the test on error).
  std::unique_ptr<client::Device> connect(const Node& node, ListenerKind kind);
  /// Connects and completes Hello; the device is online afterwards.
  std::unique_ptr<client::Device> online(const Node& node, ListenerKind kind,
                                         const std::string& device,
                                         std::vector<std::string> topics = {});
  client::HelloReply hello(client::Device& dev, const std::string& device,
                           const std::string& token, std::vector<std::string> topics = {},
                           client::HelloOptions options = {});
  /// The next frame of the device (fails on timeout / error).
  v1::Frame recv(client::Device& dev, std::chrono::milliseconds timeout = 5s);
  /// The next frame of kind `kind` (others are kept by the Device).
  v1::Frame recv_kind(client::Device& dev, v1::Frame::BodyCase kind,
                      std::chrono::milliseconds timeout = 5s);
  /// Whether no frame arrives within `wait`.
  bool silent(client::Device& dev, std::chrono::milliseconds wait);
  /// Whether the server closed the link (EOF / reset) within `wait`.
  bool closed_by_server(client::Device& dev, std::chrono::milliseconds wait = 5s);
  void send(client::Device& dev, const v1::Frame& frame);
  void send_raw(client::Device& dev, std::string bytes);

  /// Status store (read through the StatusStore API): where a device is online.
  std::optional<status_store::DeviceStatus> lookup(const std::string& device,
                                                   const std::string& app = kApp);
  /// The node id and epoch of a device's registration ("" / 0 if none).
  std::string registered_node(const std::string& device, const std::string& app = kApp);
  uint64_t registered_epoch(const std::string& device, const std::string& app = kApp);
  std::string registered_session(const std::string& device, const std::string& app = kApp);

  /// Subscriber count of `node` for a topic (0 if none).
  int64_t topic_count(const std::string& topic, const std::string& node);
  /// The registry entry of a node, if listed.
  std::optional<status_store::NodeInfo> node_info(const std::string& node);

  /// Produces a DeliveryRecord to a node's delivery topic (waits for the ack).
  void deliver(const std::string& node_id, const bus::v1::DeliveryRecord& record,
               const std::string& key);
  void deliver_many(const std::string& node_id, const std::vector<bus::v1::DeliveryRecord>& recs);
  /// A unicast push record for a device.
  bus::v1::DeliveryRecord push_record(const std::string& device, const std::string& message_id,
                                      uint64_t seq, const std::string& payload,
                                      bool ack_required = false) const;

  /// Waits until the node consumes its delivery topic (a probe device gets a push).
  void await_delivery_ready(Node& node);

  /// Records of a topic (whole topic, one partition) read from the beginning.
  std::vector<bus::Record> read_topic(const std::string& topic, size_t count,
                                      std::chrono::milliseconds timeout = 5s);

  /// The value of a metric sample line "name{labels} value" in the node's scrape (0 if absent).
  double metric(Node& node, const std::string& name_and_labels);

  boost::asio::io_context ioc_;
  testsupport::TempDir dir_;
  std::unique_ptr<testsupport::RedisServer> redis_;
  std::unique_ptr<testsupport::KafkaMock> kafka_;
  std::string cert_file_;
  std::string key_file_;
  std::string apps_file_;
  std::shared_ptr<client::ClientTls> client_tls_;
  std::unique_ptr<common::IoRunner> control_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<status_store::RedisStatusStore> store_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

/// All four listeners, for parameterized tests.
inline const std::vector<ListenerKind> kAllListeners = {ListenerKind::kTcp, ListenerKind::kTls,
                                                        ListenerKind::kWs, ListenerKind::kWss};

inline std::string listener_param_name(const ::testing::TestParamInfo<ListenerKind>& info) {
  return listener_name(info.param);
}

}  // namespace pushgw::conn_node::testing
