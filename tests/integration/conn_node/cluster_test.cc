// Several nodes in one process: the newest connection of a device wins
// across nodes (and on one node) without the stale cleanup removing the
// newer registration; drain redirects every link at the configured rate;
// the node registry; TLS session resumption.
#include "node_fixture.h"

namespace pushgw::conn_node::testing {
namespace {

class ClusterTest : public NodeFixture {
 protected:
  struct Arrival {
    std::optional<v1::Frame> frame;
    std::chrono::steady_clock::time_point at;
  };
  static boost::asio::awaitable<void> recv_one(client::Device* d, Arrival* out) {
    auto f = co_await d->recv(5s);
    out->at = std::chrono::steady_clock::now();
    if (f) out->frame = std::move(*f);
  }
  /// Waits for the next frame of every device at once, noting when each arrived.
  std::vector<Arrival> recv_all(std::vector<std::unique_ptr<client::Device>>& devs) {
    std::vector<Arrival> out(devs.size());
    int done = 0;
    for (size_t i = 0; i < devs.size(); ++i) {
      boost::asio::co_spawn(ioc_, recv_one(devs[i].get(), &out[i]),
                            [&done](std::exception_ptr) { ++done; });
    }
    ioc_.restart();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (done < static_cast<int>(devs.size()) && std::chrono::steady_clock::now() < deadline) {
      ioc_.run_one_for(100ms);
    }
    return out;
  }
};

TEST_F(ClusterTest, SessionReplacedAcrossNodesKeepsTheNewerRegistration) {
  Node& a = start_node("node-a");
  Node& b = start_node("node-b");
  auto old_link = online(a, ListenerKind::kTcp, "dev-x");
  const uint64_t old_epoch = registered_epoch("dev-x");
  EXPECT_EQ(registered_node("dev-x"), "node-a");

  auto new_link = online(b, ListenerKind::kWss, "dev-x");
  EXPECT_EQ(registered_node("dev-x"), "node-b");
  const uint64_t new_epoch = registered_epoch("dev-x");
  EXPECT_GT(new_epoch, old_epoch);

  // node-b told node-a over node-a's delivery topic; the old link is closed.
  const v1::Frame f = recv(*old_link, 10s);
  ASSERT_TRUE(f.has_error()) << f.DebugString();
  EXPECT_EQ(f.error().code(), v1::SESSION_REPLACED);
  EXPECT_TRUE(closed_by_server(*old_link));
  EXPECT_TRUE(eventually([&] { return a.stats().sessions_total == 0; }));
  // node-a's cleanup (epoch-fenced) left node-b's registration alone.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(registered_node("dev-x"), "node-b");
  EXPECT_EQ(registered_epoch("dev-x"), new_epoch);

  // The newer link works; node-a no longer routes the device.
  v1::Frame ping;
  ping.mutable_ping()->set_client_time_ms(1);
  send(*new_link, ping);
  EXPECT_TRUE(recv_kind(*new_link, v1::Frame::kPong).has_pong());
  deliver("node-b", push_record("dev-x", "m-b", 1, "to b"), "demo/dev-x");
  EXPECT_EQ(recv_kind(*new_link, v1::Frame::kPush, 10s).push().message_id(), "m-b");
  EXPECT_EQ(metric(b, "pushgw_conn_sessions_replaced_total{where=\"remote_notified\"}"), 1.0);
  EXPECT_EQ(metric(a, "pushgw_conn_sessions_replaced_total{where=\"closed_by_remote\"}"), 1.0);

  // A stale replacement record (older epoch) closes nothing.
  bus::v1::DeliveryRecord stale;
  stale.set_schema_version(1);
  stale.set_app_id(kApp);
  stale.set_device_id("dev-x");
  stale.mutable_session_replaced()->set_epoch(new_epoch);
  stale.mutable_session_replaced()->set_by_node_id("node-a");
  deliver("node-b", stale, "demo/dev-x");
  EXPECT_TRUE(silent(*new_link, 500ms));
}

TEST_F(ClusterTest, SessionReplacedOnTheSameNode) {
  Node& a = start_node("node-a");
  auto first = online(a, ListenerKind::kWs, "dev-y");
  auto second = online(a, ListenerKind::kTls, "dev-y");
  const v1::Frame f = recv(*first, 5s);
  ASSERT_TRUE(f.has_error()) << f.DebugString();
  EXPECT_EQ(f.error().code(), v1::SESSION_REPLACED);
  EXPECT_TRUE(closed_by_server(*first));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(registered_node("dev-y"), "node-a");
  EXPECT_EQ(registered_session("dev-y"), second->welcome()->session_id());
  EXPECT_EQ(a.stats().sessions_total, 1u);
  deliver("node-a", push_record("dev-y", "m-y", 1, "y"), "demo/dev-y");
  EXPECT_EQ(recv_kind(*second, v1::Frame::kPush, 10s).push().message_id(), "m-y");
}

TEST_F(ClusterTest, DrainRedirectsEveryLinkAtTheConfiguredRate) {
  Node& a = start_node("node-a", [](NodeConfig& c) {
    c.drain.rate = 10;
    c.drain.retry_after = 750ms;
  });
  Node& b = start_node("node-b");
  // node-a learns its peers on start and when the drain begins.
  constexpr int kLinks = 8;
  std::vector<std::unique_ptr<client::Device>> devs;
  for (int i = 0; i < kLinks; ++i) {
    devs.push_back(online(a, i % 2 == 0 ? ListenerKind::kTcp : ListenerKind::kWs,
                          "dev-d" + std::to_string(i)));
  }
  a.begin_drain();
  const auto arrivals = recv_all(devs);
  std::vector<std::chrono::steady_clock::time_point> at;
  for (int i = 0; i < kLinks; ++i) {
    ASSERT_TRUE(arrivals[i].frame.has_value()) << i;
    const v1::Frame& f = *arrivals[i].frame;
    ASSERT_TRUE(f.has_redirect()) << i << ": " << f.DebugString();
    at.push_back(arrivals[i].at);
    EXPECT_EQ(f.redirect().reason(), "draining");
    EXPECT_EQ(f.redirect().retry_after_ms(), 750u);
    const ListenerKind kind = i % 2 == 0 ? ListenerKind::kTcp : ListenerKind::kWs;
    ASSERT_EQ(f.redirect().endpoints_size(), 1) << f.DebugString();
    EXPECT_EQ(f.redirect().endpoints(0), "127.0.0.1:" + std::to_string(b.port(kind)));
    EXPECT_TRUE(closed_by_server(*devs[i]));
  }
  std::sort(at.begin(), at.end());
  // 8 links at 10/s: the last one about 0.7 s after the first, never all at once.
  EXPECT_GE(at.back() - at.front(), 550ms);
  EXPECT_LE(at.back() - at.front(), 3000ms);
  EXPECT_TRUE(eventually([&] { return a.stats().sessions_total == 0; }));
  EXPECT_TRUE(a.stats().draining);
  // The counter is bumped after the Redirect is written: wait for the last one.
  EXPECT_TRUE(eventually([&] { return metric(a, "pushgw_conn_drain_redirected_total") == kLinks; }))
      << metric(a, "pushgw_conn_drain_redirected_total");

  // The registry shows node-a draining; a new Hello there gets a Redirect.
  const auto info = node_info("node-a");
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->draining);
  EXPECT_FALSE(node_info("node-b")->draining);
  auto late = connect(a, ListenerKind::kTls);
  const auto reply = hello(*late, "dev-late", token("dev-late"));
  ASSERT_TRUE(reply.redirect.has_value());
  EXPECT_EQ(reply.redirect->endpoints(0), "127.0.0.1:" + std::to_string(b.port(ListenerKind::kTls)));
  EXPECT_EQ(registered_node("dev-late"), "");
}

TEST_F(ClusterTest, TlsSessionsResume) {
  Node& a = start_node("node-a");
  for (ListenerKind kind : {ListenerKind::kTls, ListenerKind::kWss}) {
    SCOPED_TRACE(listener_name(kind));
    auto first = online(a, kind, std::string("dev-r-") + listener_name(kind));
    EXPECT_FALSE(first->link().tls_resumed());
    // TLS 1.3 tickets arrive after the handshake: let the client read them.
    v1::Frame ping;
    ping.mutable_ping()->set_client_time_ms(1);
    send(*first, ping);
    recv_kind(*first, v1::Frame::kPong);
    auto second = online(a, kind, std::string("dev-s-") + listener_name(kind));
    EXPECT_TRUE(second->link().tls_resumed());
    EXPECT_EQ(second->link().tls_version(), "TLSv1.3");
  }
  EXPECT_EQ(metric(a, "pushgw_conn_handshakes_total{kind=\"resumed\",listener=\"tls\"}"), 1.0);
  EXPECT_EQ(metric(a, "pushgw_conn_handshakes_total{kind=\"full\",listener=\"wss\"}"), 1.0);
}

}  // namespace
}  // namespace pushgw::conn_node::testing
