// Upstream: published to pushgw.upstream.<channel> once per request_id,
// acked only after Kafka acked, refusals keep the link open, Kafka down ->
// accepted=false "unavailable".
#include "node_fixture.h"

namespace pushgw::conn_node::testing {
namespace {

class UpstreamTest : public NodeFixture {
 protected:
  v1::Frame upstream(const std::string& request_id, const std::string& channel,
                     const std::string& payload) {
    v1::Frame f;
    auto* u = f.mutable_upstream();
    u->set_request_id(request_id);
    u->set_channel(channel);
    u->set_payload(payload);
    return f;
  }
  v1::UpstreamAck next_ack(client::Device& d) {
    return recv_kind(d, v1::Frame::kUpstreamAck, 10s).upstream_ack();
  }
};

TEST_F(UpstreamTest, RepeatedRequestIdIsAckedButPublishedOnce) {
  Node& node = start_node("n1");
  auto d = online(node, ListenerKind::kTcp, "dev-up");
  send(*d, upstream("req-1", "chat", "hi"));
  auto a = next_ack(*d);
  EXPECT_EQ(a.request_id(), "req-1");
  EXPECT_TRUE(a.accepted()) << a.reason();

  // Again later (a retry after a lost ack), and twice in flight at once.
  send(*d, upstream("req-1", "chat", "hi"));
  a = next_ack(*d);
  EXPECT_TRUE(a.accepted());
  send(*d, upstream("req-2", "chat", "second"));
  send(*d, upstream("req-2", "chat", "second"));
  for (int i = 0; i < 2; ++i) {
    a = next_ack(*d);
    EXPECT_EQ(a.request_id(), "req-2");
    EXPECT_TRUE(a.accepted());
  }
  // A reconnect of the device does not publish it again either.
  d.reset();
  auto d2 = online(node, ListenerKind::kWs, "dev-up");
  send(*d2, upstream("req-1", "chat", "hi"));
  EXPECT_TRUE(next_ack(*d2).accepted());

  auto recs = read_topic("pushgw.upstream.chat", 3, 2s);
  ASSERT_EQ(recs.size(), 2u);
  bus::v1::UpstreamEvent ev;
  ASSERT_TRUE(ev.ParseFromString(recs[0].value));
  EXPECT_EQ(recs[0].key, "demo/dev-up");
  EXPECT_EQ(ev.request_id(), "req-1");
  EXPECT_EQ(ev.payload(), "hi");
  EXPECT_EQ(ev.channel(), "chat");
  EXPECT_EQ(ev.user_id(), "user-dev-up");
  EXPECT_EQ(ev.node_id(), "n1");
  ASSERT_TRUE(ev.ParseFromString(recs[1].value));
  EXPECT_EQ(ev.request_id(), "req-2");
  EXPECT_EQ(metric(node, "pushgw_conn_upstream_total{result=\"published\"}"), 2.0);
}

TEST_F(UpstreamTest, RefusalsKeepTheLinkOpen) {
  Node& node = start_node("n1", [](NodeConfig& c) { c.limits.max_upstream_bytes = 100; });
  auto d = online(node, ListenerKind::kTls, "dev-r");
  send(*d, upstream("r-1", "unknown", "x"));
  auto a = next_ack(*d);
  EXPECT_FALSE(a.accepted());
  EXPECT_EQ(a.reason(), "unknown_channel");
  send(*d, upstream("r-2", "chat", std::string(101, 'x')));
  a = next_ack(*d);
  EXPECT_FALSE(a.accepted());
  EXPECT_EQ(a.reason(), "payload_too_large");
  send(*d, upstream("", "chat", "x"));
  a = next_ack(*d);
  EXPECT_FALSE(a.accepted());
  EXPECT_EQ(a.reason(), "bad_request_id");
  // Still open and working.
  send(*d, upstream("r-3", "chat", std::string(100, 'x')));
  EXPECT_TRUE(next_ack(*d).accepted());
  EXPECT_EQ(read_topic("pushgw.upstream.chat", 2, 1s).size(), 1u);
}

TEST_F(UpstreamTest, KafkaDownAnswersUnavailable) {
  Node& node = start_node("n1", [](NodeConfig& c) { c.kafka.message_timeout = 500ms; });
  auto d = online(node, ListenerKind::kWss, "dev-k");
  kafka_->set_broker_down(1);
  send(*d, upstream("k-1", "chat", "lost?"));
  auto a = next_ack(*d);
  EXPECT_FALSE(a.accepted());
  EXPECT_EQ(a.reason(), "unavailable");
  kafka_->set_broker_up(1);
  // The same request_id is not marked as done: a retry publishes it.
  bool accepted = false;
  for (int i = 0; i < 10 && !accepted; ++i) {
    send(*d, upstream("k-1", "chat", "lost?"));
    accepted = next_ack(*d).accepted();
  }
  EXPECT_TRUE(accepted);
  auto recs = read_topic("pushgw.upstream.chat", 2, 3s);
  ASSERT_GE(recs.size(), 1u);
  bus::v1::UpstreamEvent ev;
  ASSERT_TRUE(ev.ParseFromString(recs.back().value));
  EXPECT_EQ(ev.request_id(), "k-1");
}

}  // namespace
}  // namespace pushgw::conn_node::testing
