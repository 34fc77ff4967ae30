// Session life per device-protocol.md on every listener: Hello, Welcome and
// registration, every auth failure, Hello timeout, bad first frames, bad
// framing, garbage, heartbeat timeout, Ping/Pong, Bye.
#include <random>

#include "common/auth/crypto.h"
#include "conn_node/frame_codec.h"
#include "node_fixture.h"

namespace pushgw::conn_node::testing {
namespace {

class SessionTest : public NodeFixture, public ::testing::WithParamInterface<ListenerKind> {
 protected:
  bool stream() const {
    return GetParam() == ListenerKind::kTcp || GetParam() == ListenerKind::kTls;
  }
  /// Expects an Error frame with `code` next, then the close.
  void expect_error_and_close(client::Device& dev, v1::ErrorCode code) {
    const v1::Frame f = recv(dev, 5s);
    ASSERT_TRUE(f.has_error()) << f.DebugString();
    EXPECT_EQ(f.error().code(), code) << f.error().message();
    EXPECT_TRUE(closed_by_server(dev));
  }
};

TEST_P(SessionTest, GoodHelloGetsWelcomeAndRegisters) {
  Node& node = start_node("n1");
  auto dev = connect(node, GetParam());
  const auto reply = hello(*dev, "dev-1", token("dev-1"), {"news"});
  ASSERT_TRUE(reply.accepted());
  EXPECT_EQ(reply.welcome->node_id(), "n1");
  EXPECT_EQ(reply.welcome->heartbeat_s(), node.config().limits.heartbeat_s);
  EXPECT_FALSE(reply.welcome->session_id().empty());
  EXPECT_FALSE(reply.welcome->resume_ticket().empty());
  const uint64_t now = SystemClock::instance().now_ms();
  EXPECT_NEAR(static_cast<double>(reply.welcome->server_time_ms()), static_cast<double>(now),
              5000.0);
  EXPECT_EQ(registered_node("dev-1"), "n1");
  EXPECT_EQ(registered_session("dev-1"), reply.welcome->session_id());
  EXPECT_GT(registered_epoch("dev-1"), 0u);
  EXPECT_EQ(node.stats().sessions[static_cast<int>(GetParam())], 1u);
  EXPECT_EQ(metric(node, std::string("pushgw_conn_links{listener=\"") +
                             listener_name(GetParam()) + "\"}"),
            1.0);

  // Presence CONNECTED carries the session and epoch.
  auto presence = read_topic("pushgw.presence", 1);
  ASSERT_EQ(presence.size(), 1u);
  bus::v1::Presence p;
  ASSERT_TRUE(p.ParseFromString(presence[0].value));
  EXPECT_EQ(p.kind(), bus::v1::Presence::CONNECTED);
  EXPECT_EQ(p.device_id(), "dev-1");
  EXPECT_EQ(p.session_id(), reply.welcome->session_id());
  EXPECT_EQ(p.epoch(), registered_epoch("dev-1"));
  EXPECT_EQ(presence[0].key, "demo/dev-1");

  // Ping -> Pong at once, echoing the client time.
  v1::Frame ping;
  ping.mutable_ping()->set_client_time_ms(12345);
  send(*dev, ping);
  const v1::Frame pong = recv(*dev);
  ASSERT_TRUE(pong.has_pong()) << pong.DebugString();
  EXPECT_EQ(pong.pong().client_time_ms(), 12345u);
  EXPECT_GT(pong.pong().server_time_ms(), 0u);

  // Bye: the node closes and the device goes offline within a second.
  v1::Frame bye;
  bye.mutable_bye()->set_reason("done");
  send(*dev, bye);
  EXPECT_TRUE(closed_by_server(*dev));
  EXPECT_TRUE(eventually([&] { return registered_node("dev-1").empty(); }, 1500ms));
  EXPECT_TRUE(eventually([&] { return node.stats().sessions_total == 0; }));
}

TEST_P(SessionTest, EveryAuthFailureIsRefusedAndNothingRegistered) {
  Node& node = start_node("n1");
  struct Case {
    std::string name;
    std::string app;
    std::string token;
    v1::ErrorCode code;
  };
  const std::string dev = "dev-auth";
  const std::string header_none = auth::base64url_encode(R"({"alg":"none","typ":"JWT"})");
  const std::string claims = auth::base64url_encode(
      R"({"app":"demo","sub":"dev-auth","exp":)" +
      std::to_string(SystemClock::instance().now_s() + 3600) + "}");
  const std::vector<Case> cases = {
      {"bad signature", kApp, token(dev, kApp, "not-the-secret"), v1::AUTH_FAILED},
      {"token of another app", kApp, token(dev, kOtherApp, kOtherSecret), v1::AUTH_FAILED},
      {"unknown app", "no-such-app", token(dev, "no-such-app", kSecret), v1::AUTH_FAILED},
      {"expired", kApp, token(dev, kApp, kSecret, -10), v1::TOKEN_EXPIRED},
      {"alg none", kApp, header_none + "." + claims + ".", v1::AUTH_FAILED},
      {"malformed", kApp, "this.is-not-a.jwt!", v1::AUTH_FAILED},
      {"empty", kApp, "", v1::AUTH_FAILED},
      {"token for another device", kApp, token("someone-else"), v1::AUTH_FAILED},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto d = connect(node, GetParam());
    v1::Frame f;
    auto* h = f.mutable_hello();
    h->set_protocol_version(1);
    h->set_app_id(c.app);
    h->set_device_id(dev);
    h->set_token(c.token);
    send(*d, f);
    expect_error_and_close(*d, c.code);
  }
  EXPECT_EQ(registered_node(dev), "");
  EXPECT_EQ(registered_epoch(dev), 0u);  // register_device never ran
  EXPECT_EQ(node.stats().sessions_total, 0u);
  EXPECT_GE(metric(node, "pushgw_conn_auth_failures_total{reason=\"bad_signature\"}"), 1.0);
  EXPECT_GE(metric(node, "pushgw_conn_auth_failures_total{reason=\"expired\"}"), 1.0);
  EXPECT_GE(metric(node, "pushgw_conn_auth_failures_total{reason=\"unknown_app\"}"), 1.0);
}

TEST_P(SessionTest, UnsupportedVersionAndBadIds) {
  Node& node = start_node("n1");
  {
    auto d = connect(node, GetParam());
    client::HelloOptions o;
    o.protocol_version = 2;
    const auto reply = hello(*d, "dev-v", token("dev-v"), {}, o);
    ASSERT_TRUE(reply.error.has_value());
    EXPECT_EQ(reply.error->code(), v1::UNSUPPORTED_VERSION);
    EXPECT_TRUE(closed_by_server(*d));
  }
  for (const std::string& bad : {std::string(), std::string(129, 'a'), std::string("a b"),
                                std::string("dev/1")}) {
    auto d = connect(node, GetParam());
    const auto reply = hello(*d, bad, token("x"));
    ASSERT_TRUE(reply.error.has_value());
    EXPECT_EQ(reply.error->code(), v1::BAD_FRAME);
    EXPECT_TRUE(closed_by_server(*d));
  }
  EXPECT_EQ(node.stats().sessions_total, 0u);
}

TEST_P(SessionTest, NoHelloInTimeGetsHelloTimeout) {
  Node& node = start_node("n1");  // hello_timeout 1 s
  auto d = connect(node, GetParam());
  const auto start = std::chrono::steady_clock::now();
  const v1::Frame f = recv(*d, 4s);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(f.has_error()) << f.DebugString();
  EXPECT_EQ(f.error().code(), v1::HELLO_TIMEOUT);
  EXPECT_GE(waited, 800ms);
  EXPECT_LE(waited, 2500ms);
  EXPECT_TRUE(closed_by_server(*d));
}

TEST_P(SessionTest, OtherFirstFrameIsBadFrame) {
  Node& node = start_node("n1");
  auto d = connect(node, GetParam());
  v1::Frame ping;
  ping.mutable_ping()->set_client_time_ms(1);
  send(*d, ping);
  expect_error_and_close(*d, v1::BAD_FRAME);

  // A frame only the server may send, after a good Hello, is BAD_FRAME too.
  auto d2 = online(node, GetParam(), "dev-2");
  v1::Frame welcome;
  welcome.mutable_welcome()->set_session_id("x");
  send(*d2, welcome);
  expect_error_and_close(*d2, v1::BAD_FRAME);
  EXPECT_TRUE(eventually([&] { return registered_node("dev-2").empty(); }, 1500ms));
}

TEST_P(SessionTest, ZeroLengthAndOversizedFrames) {
  Node& node = start_node("n1", [](NodeConfig& c) {
    c.limits.max_frame_bytes = 4096;
    c.limits.max_upstream_bytes = 1024;
  });
  {
    auto d = connect(node, GetParam());
    // tcp/tls: a zero length prefix; ws: an empty binary message.
    send_raw(*d, stream() ? std::string(4, '\0') : std::string());
    expect_error_and_close(*d, v1::BAD_FRAME);
  }
  {
    auto d = connect(node, GetParam());
    if (stream()) {
      send_raw(*d, std::string("\x00\x00\x10\x01", 4));  // 4097 > 4096: refused from the prefix
    } else {
      send_raw(*d, std::string(5000, 'x'));
    }
    expect_error_and_close(*d, v1::FRAME_TOO_LARGE);
  }
  {
    // Oversized after a good Hello, on an open session.
    auto d = online(node, GetParam(), "dev-big");
    if (stream()) {
      send_raw(*d, std::string("\xff\xff\xff\xff", 4));
    } else {
      send_raw(*d, std::string(4097, 'y'));
    }
    expect_error_and_close(*d, v1::FRAME_TOO_LARGE);
  }
  if (!stream()) {
    auto d = connect(node, GetParam());
    auto r = run(ioc_, [](client::Device* dev) -> boost::asio::awaitable<result<void>> {
      co_return co_await dev->link().send_text("hello?");
    }(d.get()));
    ASSERT_TRUE(r);
    expect_error_and_close(*d, v1::BAD_FRAME);
  }
}

TEST_P(SessionTest, GarbageNeverStallsOtherLinks) {
  Node& node = start_node("n1");
  auto good = online(node, GetParam(), "dev-good");
  std::mt19937 rng(42);
  for (int i = 0; i < 5; ++i) {
    auto d = connect(node, GetParam());
    std::string junk(200 + i * 300, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    if (stream()) junk[0] = 0;  // keep the prefix small enough to reach the parser sometimes
    send_raw(*d, junk);
    const v1::Frame f = recv(*d, 5s);
    ASSERT_TRUE(f.has_error()) << f.DebugString();
    EXPECT_TRUE(f.error().code() == v1::BAD_FRAME || f.error().code() == v1::FRAME_TOO_LARGE)
        << f.error().code();
    EXPECT_TRUE(closed_by_server(*d));
  }
  // Malformed protobuf after a valid prefix.
  if (stream()) {
    auto d = connect(node, GetParam());
    send_raw(*d, std::string("\x00\x00\x00\x03\xff\xff\xff", 7));
    expect_error_and_close(*d, v1::BAD_FRAME);
  }
  v1::Frame ping;
  ping.mutable_ping()->set_client_time_ms(7);
  send(*good, ping);
  const v1::Frame pong = recv_kind(*good, v1::Frame::kPong);
  EXPECT_EQ(pong.pong().client_time_ms(), 7u);
  EXPECT_EQ(node.stats().sessions_total, 1u);
}

TEST_P(SessionTest, HeartbeatTimeoutClosesAndUnregisters) {
  Node& node = start_node("n1", [](NodeConfig& c) {
    c.limits.heartbeat_s = 1;
    c.limits.heartbeat_timeout = 700ms;
  });
  auto alive = online(node, GetParam(), "dev-alive");
  auto d = online(node, GetParam(), "dev-quiet");
  EXPECT_EQ(registered_node("dev-quiet"), "n1");
  // dev-alive pings every 200 ms and stays; dev-quiet stays silent.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) {
    v1::Frame ping;
    ping.mutable_ping()->set_client_time_ms(static_cast<uint64_t>(i + 1));
    send(*alive, ping);
    recv_kind(*alive, v1::Frame::kPong);
    std::this_thread::sleep_for(200ms);
  }
  const v1::Frame f = recv(*d, 3s);
  ASSERT_TRUE(f.has_error()) << f.DebugString();
  EXPECT_EQ(f.error().code(), v1::HEARTBEAT_TIMEOUT);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_TRUE(closed_by_server(*d));
  EXPECT_TRUE(eventually([&] { return registered_node("dev-quiet").empty(); }, 1500ms));
  EXPECT_EQ(registered_node("dev-alive"), "n1");
  EXPECT_EQ(node.stats().sessions_total, 1u);
}

INSTANTIATE_TEST_SUITE_P(Listeners, SessionTest, ::testing::ValuesIn(kAllListeners),
                         listener_param_name);

}  // namespace
}  // namespace pushgw::conn_node::testing
