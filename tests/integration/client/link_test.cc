// Link over real loopback sockets against an independent server (Asio,
// asio::ssl, Beast websocket), for each of tcp, tls, ws and wss.
#include "pushgw_client/link.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>

#include "run_helpers.h"
#include "test_server.h"
#include "testsupport/temp_dir.h"

namespace pushgw::client {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::run;
using testing::SelfSignedCert;
using testing::ServerMode;
using testing::TestServer;

const SelfSignedCert& cert() {
  static const SelfSignedCert c = testing::make_self_signed_cert();
  return c;
}

std::shared_ptr<ClientTls> insecure_tls(TlsOptions o = {}) {
  o.verify_peer = false;
  auto tls = ClientTls::create(o);
  if (!tls) throw std::runtime_error("ClientTls::create failed");
  return *tls;
}

v1::Frame ping(uint64_t t) {
  v1::Frame f;
  f.mutable_ping()->set_client_time_ms(t);
  return f;
}

v1::Frame upstream(std::string channel, std::string payload, std::string id = "r1") {
  v1::Frame f;
  f.mutable_upstream()->set_request_id(std::move(id));
  f.mutable_upstream()->set_channel(std::move(channel));
  f.mutable_upstream()->set_payload(std::move(payload));
  return f;
}

v1::Frame bye(std::string reason) {
  v1::Frame f;
  f.mutable_bye()->set_reason(std::move(reason));
  return f;
}

std::string transport_name(const ::testing::TestParamInfo<Transport>& info) {
  return std::string(to_string(info.param));
}

class LinkTest : public ::testing::TestWithParam<Transport> {
 protected:
  void SetUp() override {
    server_ = std::make_unique<TestServer>(GetParam(), &cert());
    options_.connect_timeout = 5s;
    options_.send_timeout = 5s;
    if (uses_tls(GetParam())) options_.tls = insecure_tls();
  }

  std::unique_ptr<Link> connect(ConnectOptions options) {
    auto link = run(ioc_, Link::connect(ioc_.get_executor(), server_->endpoint(), options));
    if (!link) throw std::runtime_error("connect failed: " + link.error().message());
    return std::move(*link);
  }
  std::unique_ptr<Link> connect() { return connect(options_); }

  result<void> send(Link& link, const v1::Frame& f) { return run(ioc_, link.send(f)); }
  result<v1::Frame> recv(Link& link, std::chrono::milliseconds t = 5s) {
    return run(ioc_, link.recv(t));
  }

  asio::io_context ioc_;
  std::unique_ptr<TestServer> server_;
  ConnectOptions options_;
};

TEST_P(LinkTest, FramesRoundTrip) {
  auto link = connect();
  EXPECT_TRUE(link->is_open());
  EXPECT_EQ(link->transport(), GetParam());
  EXPECT_EQ(link->local_endpoint().rfind("127.0.0.1:", 0), 0u) << link->local_endpoint();

  v1::Frame hello;
  hello.mutable_hello()->set_protocol_version(1);
  hello.mutable_hello()->set_app_id("demo");
  hello.mutable_hello()->set_device_id("dev-1");
  hello.mutable_hello()->add_topics("news");
  v1::Frame sub;
  sub.mutable_subscribe()->add_add("a");
  sub.mutable_subscribe()->add_remove("b");
  std::string big(60000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31);
  const std::vector<v1::Frame> frames = {hello, ping(42), upstream("chat", big), sub,
                                         upstream("chat", "")};
  for (const auto& f : frames) {
    ASSERT_TRUE(send(*link, f));
    auto got = recv(*link);
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(got->SerializeAsString(), f.SerializeAsString()) << f.ShortDebugString();
  }
  run(ioc_, link->close());
  EXPECT_FALSE(link->is_open());
}

TEST_P(LinkTest, DecodesFramesWrittenBackToBack) {
  auto link = connect();
  ASSERT_TRUE(send(*link, upstream("burst", "200")));
  for (uint64_t i = 1; i <= 200; ++i) {
    auto got = recv(*link);
    ASSERT_TRUE(got) << i << ": " << got.error().message();
    ASSERT_TRUE(got->has_ping()) << got->ShortDebugString();
    EXPECT_EQ(got->ping().client_time_ms(), i);
  }
  auto none = recv(*link, 0ms);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), make_error_code(errc::timeout));
}

TEST_P(LinkTest, RecvTimesOutAndTheLinkStaysUsable) {
  auto link = connect();
  const auto start = std::chrono::steady_clock::now();
  auto got = recv(*link, 200ms);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), make_error_code(errc::timeout));
  EXPECT_GE(waited, 190ms);
  EXPECT_LT(waited, 3s);

  auto polled = recv(*link, 0ms);
  ASSERT_FALSE(polled);
  EXPECT_EQ(polled.error(), make_error_code(errc::timeout));

  ASSERT_TRUE(send(*link, ping(7)));
  auto echo = recv(*link);
  ASSERT_TRUE(echo) << echo.error().message();
  EXPECT_EQ(echo->ping().client_time_ms(), 7u);
  EXPECT_TRUE(link->is_open());
}

TEST_P(LinkTest, PeerCloseIsReported) {
  auto link = connect();
  ASSERT_TRUE(send(*link, bye("close")));
  auto got = recv(*link);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), asio::error::eof) << got.error().message();
  EXPECT_TRUE(is_peer_closed(got.error()));
  auto again = recv(*link, 0ms);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), got.error());
  EXPECT_FALSE(link->is_open());
  run(ioc_, link->close());
}

TEST_P(LinkTest, PeerResetIsReportedAsPeerClosed) {
  auto link = connect();
  ASSERT_TRUE(send(*link, bye("reset")));
  auto got = recv(*link);
  ASSERT_FALSE(got);
  EXPECT_TRUE(is_peer_closed(got.error())) << got.error().message();
}

TEST_P(LinkTest, BadFramesFromTheServerAreBadMessage) {
  for (const char* kind : {"zero", "too_large", "garbage", "text"}) {
    SCOPED_TRACE(kind);
    auto link = connect();
    ASSERT_TRUE(send(*link, upstream("bad", kind)));
    auto got = recv(*link);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error(), make_error_code(errc::bad_message)) << got.error().message();
    auto again = recv(*link, 0ms);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), make_error_code(errc::bad_message));
    EXPECT_FALSE(link->is_open());
    run(ioc_, link->close());
  }
}

TEST_P(LinkTest, SmallerMaxFrameBytesRefusesLargerFrames) {
  ConnectOptions o = options_;
  o.max_frame_bytes = 1000;
  auto link = connect(o);
  ASSERT_TRUE(send(*link, upstream("chat", std::string(900, 'a'))));
  EXPECT_TRUE(recv(*link));
  ASSERT_TRUE(send(*link, upstream("chat", std::string(1000, 'a'))));
  auto got = recv(*link);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), make_error_code(errc::bad_message));
}

TEST_P(LinkTest, SendRawPassesBytesThrough) {
  auto link = connect();
  const v1::Frame f = ping(99);
  if (uses_websocket(GetParam())) {
    ASSERT_TRUE(run(ioc_, link->send_raw(f.SerializeAsString())));
  } else {
    const std::string body = f.SerializeAsString();
    std::string bytes = {0, 0, 0, static_cast<char>(body.size())};
    bytes += body;
    ASSERT_TRUE(run(ioc_, link->send_raw(bytes.substr(0, 3))));
    ASSERT_TRUE(run(ioc_, link->send_raw(bytes.substr(3))));
  }
  auto got = recv(*link);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->ping().client_time_ms(), 99u);
}

TEST_P(LinkTest, SendTextIsForWebSocketsOnly) {
  auto link = connect();
  auto sent = run(ioc_, link->send_text("hi there"));
  if (!uses_websocket(GetParam())) {
    ASSERT_FALSE(sent);
    EXPECT_EQ(sent.error(), make_error_code(errc::invalid_argument));
    return;
  }
  ASSERT_TRUE(sent);
  auto got = recv(*link);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->bye().reason(), "text:hi there");
}

asio::awaitable<int> receive_pings(Link* link, int n) {
  int in_order = 0;
  for (int i = 0; i < n; ++i) {
    auto got = co_await link->recv(5s);
    if (!got) break;
    if (got->has_upstream() && got->upstream().request_id() == std::to_string(i) &&
        got->upstream().payload() == std::string(30000, static_cast<char>('a' + i % 26))) {
      ++in_order;
    }
  }
  co_return in_order;
}

asio::awaitable<void> note_send(Link* link, v1::Frame f, std::shared_ptr<int> ok,
                                std::shared_ptr<int> done) {
  auto r = co_await link->send(f);
  if (r) ++*ok;
  ++*done;
}

asio::awaitable<int> send_concurrently(Link* link, int n) {
  auto ex = co_await asio::this_coro::executor;
  auto ok = std::make_shared<int>(0);
  auto done = std::make_shared<int>(0);
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(ex,
                   note_send(link,
                             upstream("chat", std::string(30000, static_cast<char>('a' + i % 26)),
                                      std::to_string(i)),
                             ok, done),
                   [](std::exception_ptr e) {
                     if (e) std::rethrow_exception(e);
                   });
  }
  asio::steady_timer timer(ex);
  while (*done < n) {
    timer.expires_after(1ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
  co_return *ok;
}

asio::awaitable<std::tuple<int, int>> sends_while_receiving(Link* link, int n) {
  using namespace asio::experimental::awaitable_operators;
  co_return co_await (receive_pings(link, n) && send_concurrently(link, n));
}

TEST_P(LinkTest, ConcurrentSendsKeepFramesWholeWhileARecvIsPending) {
  auto link = connect();
  const auto [received, sent] = run(ioc_, sends_while_receiving(link.get(), 40));
  EXPECT_EQ(sent, 40);
  EXPECT_EQ(received, 40);
}

asio::awaitable<result<v1::Frame>> close_later(Link* link) {
  asio::steady_timer timer(co_await asio::this_coro::executor, 100ms);
  co_await timer.async_wait(asio::use_awaitable);
  co_await link->close();
  co_return result<v1::Frame>(v1::Frame{});
}

asio::awaitable<result<v1::Frame>> recv_then_close(Link* link) {
  using namespace asio::experimental::awaitable_operators;
  auto [got, ignored] = co_await (link->recv(kNoTimeout) && close_later(link));
  co_return got;
}

TEST_P(LinkTest, CloseCompletesAPendingRecv) {
  auto link = connect();
  auto got = run(ioc_, recv_then_close(link.get()), 5s);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), asio::error::operation_aborted) << got.error().message();
  EXPECT_FALSE(link->is_open());
  auto sent = send(*link, ping(1));
  EXPECT_FALSE(sent);
}

TEST_P(LinkTest, BindsTheLocalAddress) {
  ConnectOptions o = options_;
  o.local_address = "127.0.0.2";
  auto link = connect(o);
  EXPECT_EQ(link->local_endpoint().rfind("127.0.0.2:", 0), 0u) << link->local_endpoint();
  ASSERT_TRUE(send(*link, ping(5)));
  ASSERT_TRUE(recv(*link));
  const auto peers = server_->peers();
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0], "127.0.0.2");
}

INSTANTIATE_TEST_SUITE_P(AllTransports, LinkTest,
                         ::testing::Values(Transport::kTcp, Transport::kTls, Transport::kWs,
                                           Transport::kWss),
                         transport_name);

class WebSocketLinkTest : public LinkTest {};

TEST_P(WebSocketLinkTest, AnswersServerPingsWithPongs) {
  auto link = connect();
  ASSERT_TRUE(send(*link, upstream("ping", "")));
  auto echo = recv(*link);
  ASSERT_TRUE(echo) << echo.error().message();
  EXPECT_TRUE(echo->has_upstream());
  // The pong went out before this frame, so the server has read it by the
  // time it echoes.
  ASSERT_TRUE(send(*link, ping(3)));
  ASSERT_TRUE(recv(*link));
  EXPECT_EQ(server_->pongs(), 1);
}

INSTANTIATE_TEST_SUITE_P(WebSockets, WebSocketLinkTest,
                         ::testing::Values(Transport::kWs, Transport::kWss), transport_name);

class TlsLinkTest : public LinkTest {
 protected:
  /// Connects, does one round trip (which also reads the TLS 1.3 tickets)
  /// and closes; returns whether the handshake resumed.
  bool connect_once(std::shared_ptr<ClientTls> tls) {
    ConnectOptions o = options_;
    o.tls = std::move(tls);
    auto link = connect(o);
    EXPECT_TRUE(send(*link, ping(1)));
    EXPECT_TRUE(recv(*link));
    const bool resumed = link->tls_resumed();
    run(ioc_, link->close());
    return resumed;
  }
};

TEST_P(TlsLinkTest, ReconnectResumesWithTheSharedCache) {
  auto tls = insecure_tls();
  EXPECT_FALSE(connect_once(tls));
  EXPECT_GE(tls->sessions_received(), 1u);
  EXPECT_GE(tls->cached_sessions(), 1u);
  EXPECT_TRUE(connect_once(tls));
  EXPECT_TRUE(connect_once(tls));
  EXPECT_EQ(server_->tls_handshakes(), 3);
  EXPECT_EQ(server_->tls_resumed(), 2);

  // Another cache knows nothing about this server.
  EXPECT_FALSE(connect_once(insecure_tls()));
  // A cleared cache starts over.
  tls->clear_sessions();
  EXPECT_EQ(tls->cached_sessions(), 0u);
  EXPECT_FALSE(connect_once(tls));
  EXPECT_EQ(server_->tls_resumed(), 2);
}

TEST_P(TlsLinkTest, ManyLinksResumeBeforeTheyReadAnything) {
  auto tls = insecure_tls();
  EXPECT_FALSE(connect_once(tls));  // reads the tickets
  int resumed = 0;
  for (int i = 0; i < 20; ++i) {
    ConnectOptions o = options_;
    o.tls = tls;
    auto link = connect(o);  // closed without reading: no new tickets
    if (link->tls_resumed()) ++resumed;
    run(ioc_, link->close());
  }
  EXPECT_EQ(resumed, 20);
}

TEST_P(TlsLinkTest, WithoutReuseEachTicketIsOfferedOnce) {
  TlsOptions o;
  o.reuse_sessions = false;
  auto tls = insecure_tls(o);
  EXPECT_FALSE(connect_once(tls));
  // The test server (OpenSSL defaults) sends two tickets per handshake.
  EXPECT_EQ(tls->sessions_received(), 2u);
  std::vector<bool> resumed;
  for (int i = 0; i < 4; ++i) {
    ConnectOptions co = options_;
    co.tls = tls;
    auto link = connect(co);
    resumed.push_back(link->tls_resumed());
    run(ioc_, link->close());
  }
  if (uses_websocket(GetParam())) {
    // Each link read the 101 answer, and with it the tickets of its own handshake.
    EXPECT_EQ(resumed, std::vector<bool>({true, true, true, true}));
  } else {
    EXPECT_EQ(resumed, std::vector<bool>({true, true, false, false}));
  }
}

TEST_P(TlsLinkTest, ResumesOverTls12Too) {
  TlsOptions o;
  o.max_version = TlsVersion::kTls12;
  auto tls = insecure_tls(o);
  ConnectOptions co = options_;
  co.tls = tls;
  auto link = connect(co);
  EXPECT_EQ(link->tls_version(), "TLSv1.2");
  run(ioc_, link->close());
  EXPECT_TRUE(connect_once(tls));
}

TEST_P(TlsLinkTest, NegotiatesTls13ByDefault) {
  auto link = connect();
  EXPECT_EQ(link->tls_version(), "TLSv1.3");
}

TEST_P(TlsLinkTest, ResumptionCanBeTurnedOff) {
  TlsOptions o;
  o.resume_sessions = false;
  auto tls = insecure_tls(o);
  EXPECT_FALSE(connect_once(tls));
  EXPECT_FALSE(connect_once(tls));
  EXPECT_EQ(tls->cached_sessions(), 0u);
  EXPECT_EQ(server_->tls_resumed(), 0);
}

TEST_P(TlsLinkTest, VerifiesTheServerCertificate) {
  testsupport::TempDir dir("pushgw-client-tls");
  const auto ca = dir.file("ca.pem").string();
  std::ofstream(ca) << cert().cert_pem;

  TlsOptions o;
  o.ca_file = ca;
  auto tls = ClientTls::create(o);
  ASSERT_TRUE(tls);
  ConnectOptions co = options_;
  co.tls = *tls;
  auto ok = run(ioc_, Link::connect(ioc_.get_executor(), server_->endpoint(), co));
  ASSERT_TRUE(ok) << ok.error().message();  // IP SAN 127.0.0.1

  o.server_name = "localhost";
  co.tls = *ClientTls::create(o);
  auto by_name = run(ioc_, Link::connect(ioc_.get_executor(), server_->endpoint(), co));
  ASSERT_TRUE(by_name) << by_name.error().message();

  o.server_name = "other.example";
  co.tls = *ClientTls::create(o);
  auto wrong_name = run(ioc_, Link::connect(ioc_.get_executor(), server_->endpoint(), co));
  ASSERT_FALSE(wrong_name);
  EXPECT_NE(wrong_name.error(), make_error_code(errc::timeout));

  TlsOptions untrusted;  // system CAs do not know the test certificate
  co.tls = *ClientTls::create(untrusted);
  auto refused = run(ioc_, Link::connect(ioc_.get_executor(), server_->endpoint(), co));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error(), make_error_code(errc::timeout));
}

INSTANTIATE_TEST_SUITE_P(Tls, TlsLinkTest, ::testing::Values(Transport::kTls, Transport::kWss),
                         transport_name);

class ConnectTest : public ::testing::Test {
 protected:
  asio::io_context ioc_;
};

TEST_F(ConnectTest, TlsEndpointNeedsTlsOptions) {
  auto r = run(ioc_, Link::connect(ioc_.get_executor(), *parse_endpoint("tls://127.0.0.1:1"), {}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::invalid_argument));
}

TEST_F(ConnectTest, BadLocalAddressIsInvalidArgument) {
  ConnectOptions o;
  o.local_address = "not-an-ip";
  auto r = run(ioc_, Link::connect(ioc_.get_executor(), *parse_endpoint("tcp://127.0.0.1:1"), o));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::invalid_argument));
}

TEST_F(ConnectTest, RefusedConnectionIsAnError) {
  uint16_t port = 0;
  {
    TestServer closed(Transport::kTcp);
    port = closed.port();
  }
  Endpoint e{Transport::kTcp, "127.0.0.1", port};
  auto r = run(ioc_, Link::connect(ioc_.get_executor(), e, {}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), asio::error::connection_refused) << r.error().message();
}

TEST_F(ConnectTest, ResolvesHostNames) {
  TestServer server(Transport::kTcp);
  Endpoint e{Transport::kTcp, "localhost", server.port()};
  auto r = run(ioc_, Link::connect(ioc_.get_executor(), e, {}));
  // localhost may resolve to ::1 first; the IPv4 address must still be tried.
  ASSERT_TRUE(r) << r.error().message();
}

TEST_F(ConnectTest, SilentServerTimesOutTheHandshake) {
  for (Transport t : {Transport::kTls, Transport::kWs, Transport::kWss}) {
    SCOPED_TRACE(to_string(t));
    TestServer mute(t, nullptr, ServerMode::kMute);
    ConnectOptions o;
    o.connect_timeout = 300ms;
    o.tls = insecure_tls();
    const auto start = std::chrono::steady_clock::now();
    auto r = run(ioc_, Link::connect(ioc_.get_executor(), mute.endpoint(), o));
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::timeout)) << r.error().message();
    EXPECT_GE(took, 290ms);
    EXPECT_LT(took, 3s);
  }
}

TEST_F(ConnectTest, RefusedUpgradeIsRejected) {
  TestServer http(Transport::kWs, nullptr, ServerMode::kHttp404);
  auto r = run(ioc_, Link::connect(ioc_.get_executor(), http.endpoint(), {}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::rejected)) << r.error().message();
}

TEST_F(ConnectTest, MissingCaFileIsInvalidArgument) {
  TlsOptions o;
  o.ca_file = "/nonexistent/ca.pem";
  auto tls = ClientTls::create(o);
  ASSERT_FALSE(tls);
  EXPECT_EQ(tls.error(), make_error_code(errc::invalid_argument));
}

}  // namespace
}  // namespace pushgw::client
