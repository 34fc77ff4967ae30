// Device helper against the test server (which answers Hello per app_id and
// echoes the other frames).
#include "pushgw_client/device.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "run_helpers.h"
#include "test_server.h"

namespace pushgw::client {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::run;
using testing::TestServer;

class DeviceTest : public ::testing::TestWithParam<Transport> {
 protected:
  void SetUp() override {
    static const auto cert = testing::make_self_signed_cert();
    server_ = std::make_unique<TestServer>(GetParam(), &cert);
    ConnectOptions o;
    o.connect_timeout = 5s;
    if (uses_tls(GetParam())) {
      TlsOptions t;
      t.verify_peer = false;
      o.tls = *ClientTls::create(t);
    }
    auto link = run(ioc_, Link::connect(ioc_.get_executor(), server_->endpoint(), o));
    ASSERT_TRUE(link) << link.error().message();
    device_ = std::make_unique<Device>(std::move(*link));
  }

  result<HelloReply> hello(std::string app, HelloOptions o = {}) {
    return run(ioc_, device_->hello(std::move(app), "dev-1", "tok", 17, {"news", "sport"}, o));
  }

  asio::io_context ioc_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<Device> device_;
};

TEST_P(DeviceTest, HelloReturnsTheWelcome) {
  auto reply = hello("welcome");
  ASSERT_TRUE(reply) << reply.error().message();
  ASSERT_TRUE(reply->accepted());
  EXPECT_EQ(reply->welcome->session_id(), "dev-1");
  EXPECT_EQ(reply->welcome->heartbeat_s(), 30u);
  EXPECT_FALSE(reply->error);
  ASSERT_TRUE(device_->welcome());
  EXPECT_EQ(device_->welcome()->node_id(), "test-node");
}

TEST_P(DeviceTest, HelloReturnsTheServersErrorAsAValue) {
  auto reply = hello("refuse");
  ASSERT_TRUE(reply) << reply.error().message();
  EXPECT_FALSE(reply->accepted());
  ASSERT_TRUE(reply->error);
  EXPECT_EQ(reply->error->code(), v1::AUTH_FAILED);
  EXPECT_FALSE(device_->welcome());
  auto after = run(ioc_, device_->recv(5s));
  ASSERT_FALSE(after);
  EXPECT_TRUE(is_peer_closed(after.error())) << after.error().message();
}

TEST_P(DeviceTest, HelloReturnsARedirect) {
  auto reply = hello("redirect");
  ASSERT_TRUE(reply) << reply.error().message();
  ASSERT_TRUE(reply->redirect);
  EXPECT_EQ(reply->redirect->retry_after_ms(), 500u);
}

TEST_P(DeviceTest, HelloTimesOut) {
  HelloOptions o;
  o.timeout = 200ms;
  auto reply = hello("silent", o);
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error(), make_error_code(errc::timeout));
}

TEST_P(DeviceTest, AnotherFrameFirstIsAProtocolError) {
  // The echo server sends the Hello itself back instead of a Welcome.
  auto reply = hello("demo");
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error(), make_error_code(errc::protocol_error));
}

TEST_P(DeviceTest, HelloCarriesEveryField) {
  HelloOptions o;
  o.platform = v1::IOS;
  o.app_version = "9.9";
  o.resume_ticket = "ticket";
  o.protocol_version = 3;
  auto reply = run(ioc_, device_->hello("welcome", "dev-9", "token-x", 41, {"t1", "t2"}, o));
  ASSERT_TRUE(reply) << reply.error().message();
  ASSERT_TRUE(reply->welcome);
  v1::Hello seen;  // the test server hands the Hello back in the ticket
  ASSERT_TRUE(seen.ParseFromString(reply->welcome->resume_ticket()));
  EXPECT_EQ(seen.protocol_version(), 3u);
  EXPECT_EQ(seen.app_id(), "welcome");
  EXPECT_EQ(seen.device_id(), "dev-9");
  EXPECT_EQ(seen.token(), "token-x");
  EXPECT_EQ(seen.platform(), v1::IOS);
  EXPECT_EQ(seen.app_version(), "9.9");
  EXPECT_EQ(seen.last_seq(), 41u);
  ASSERT_EQ(seen.topics_size(), 2);
  EXPECT_EQ(seen.topics(1), "t2");
  EXPECT_EQ(seen.resume_ticket(), "ticket");
}

TEST_P(DeviceTest, TypedFramesGoOutAsTheProtocolSays) {
  ASSERT_TRUE(hello("welcome"));
  ASSERT_TRUE(run(ioc_, device_->ping(1234)));
  ASSERT_TRUE(run(ioc_, device_->ack({"m1", "m2"}, 9)));
  ASSERT_TRUE(run(ioc_, device_->upstream("req-1", "chat", "payload")));
  ASSERT_TRUE(run(ioc_, device_->subscribe({"a", "b"}, {"c"})));
  ASSERT_TRUE(run(ioc_, device_->bye("done")));

  auto f = run(ioc_, device_->recv(5s));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->ping().client_time_ms(), 1234u);
  f = run(ioc_, device_->recv(5s));
  ASSERT_TRUE(f);
  ASSERT_EQ(f->ack().message_ids_size(), 2);
  EXPECT_EQ(f->ack().message_ids(1), "m2");
  EXPECT_EQ(f->ack().last_seq(), 9u);
  f = run(ioc_, device_->recv(5s));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->upstream().request_id(), "req-1");
  EXPECT_EQ(f->upstream().channel(), "chat");
  EXPECT_EQ(f->upstream().payload(), "payload");
  f = run(ioc_, device_->recv(5s));
  ASSERT_TRUE(f);
  ASSERT_EQ(f->subscribe().add_size(), 2);
  EXPECT_EQ(f->subscribe().remove(0), "c");
  f = run(ioc_, device_->recv(5s));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->bye().reason(), "done");
}

TEST_P(DeviceTest, PingWithoutTimeUsesTheClock) {
  const auto before = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
  ASSERT_TRUE(run(ioc_, device_->ping()));
  auto f = run(ioc_, device_->recv(5s));
  ASSERT_TRUE(f);
  EXPECT_GE(f->ping().client_time_ms(), before);
  EXPECT_LT(f->ping().client_time_ms(), before + 60'000);
}

TEST_P(DeviceTest, RecvUntilKeepsOtherFramesInOrder) {
  ASSERT_TRUE(run(ioc_, device_->ping(1)));
  ASSERT_TRUE(run(ioc_, device_->ping(2)));
  ASSERT_TRUE(run(ioc_, device_->upstream("r", "chat", "x")));
  ASSERT_TRUE(run(ioc_, device_->ping(3)));
  auto up = run(ioc_, device_->recv_until(v1::Frame::kUpstream, 5s));
  ASSERT_TRUE(up) << up.error().message();
  EXPECT_EQ(up->upstream().request_id(), "r");
  EXPECT_EQ(device_->pending(), 2u);
  for (uint64_t want : {1u, 2u, 3u}) {
    auto f = run(ioc_, device_->recv(5s));
    ASSERT_TRUE(f);
    EXPECT_EQ(f->ping().client_time_ms(), want);
  }
  EXPECT_EQ(device_->pending(), 0u);
  auto none = run(ioc_, device_->recv_until(v1::Frame::kPong, 150ms));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), make_error_code(errc::timeout));
}

TEST_P(DeviceTest, RecvUntilStopsAtAnError) {
  ASSERT_TRUE(run(ioc_, device_->ping(1)));
  v1::Frame hello;
  hello.mutable_hello()->set_app_id("refuse");
  ASSERT_TRUE(run(ioc_, device_->link().send(hello)));
  auto f = run(ioc_, device_->recv_until(v1::Frame::kPush, 5s));
  ASSERT_TRUE(f) << f.error().message();
  ASSERT_TRUE(f->has_error());
  EXPECT_EQ(f->error().code(), v1::AUTH_FAILED);
  EXPECT_EQ(device_->pending(), 1u);
}

INSTANTIATE_TEST_SUITE_P(AllTransports, DeviceTest,
                         ::testing::Values(Transport::kTcp, Transport::kTls, Transport::kWs,
                                           Transport::kWss),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace pushgw::client
