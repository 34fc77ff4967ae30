// Downstream: delivery records from pushgw.deliver.<node> to the right link,
// topic and broadcast fan-out, expiry, acks on the bus, slow consumers,
// the marketing lane and the replay hold.
#include <map>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "conn_node/frame_codec.h"
#include "node_fixture.h"

namespace pushgw::conn_node::testing {
namespace {

namespace asio = boost::asio;

class DeliveryTest : public NodeFixture {};

TEST_F(DeliveryTest, UnicastReachesOnlyItsDevice) {
  Node& node = start_node("n1");
  // Readiness: the node's delivery topic gets assigned to it after start.
  EXPECT_TRUE(eventually([&] { return node.stats().delivery_partitions > 0; }, 20s));
  auto a = online(node, ListenerKind::kTcp, "dev-a");
  auto b = online(node, ListenerKind::kWs, "dev-b");

  deliver("n1", push_record("dev-b", "m-1", 1, "hello b"), "demo/dev-b");
  v1::Frame f = recv(*b, 10s);
  ASSERT_TRUE(f.has_push()) << f.DebugString();
  EXPECT_EQ(f.push().message_id(), "m-1");
  EXPECT_EQ(f.push().seq(), 1u);
  EXPECT_EQ(f.push().payload(), "hello b");

  // Expired: never sent. Unknown device: dropped (the offline store keeps it).
  auto expired = push_record("dev-a", "m-old", 2, "late");
  expired.mutable_push()->set_created_ms(1000);
  expired.mutable_push()->set_expires_ms(2000);
  deliver("n1", expired, "demo/dev-a");
  deliver("n1", push_record("dev-nobody", "m-x", 1, "?"), "demo/dev-nobody");
  deliver("n1", push_record("dev-a", "m-2", 3, "hello a"), "demo/dev-a");
  f = recv(*a, 10s);
  ASSERT_TRUE(f.has_push()) << f.DebugString();
  EXPECT_EQ(f.push().message_id(), "m-2");  // m-old was skipped
  EXPECT_TRUE(silent(*b, 300ms));
  EXPECT_TRUE(eventually([&] {
    return metric(node, "pushgw_conn_deliveries_total{result=\"expired\"}") == 1.0 &&
           metric(node, "pushgw_conn_deliveries_total{result=\"no_link\"}") == 1.0;
  }));

  // Online-only messages (expires_ms == created_ms) are not "expired".
  auto ttl0 = push_record("dev-a", "m-ttl0", 0, "now");
  ttl0.mutable_push()->set_created_ms(5000);
  ttl0.mutable_push()->set_expires_ms(5000);
  deliver("n1", ttl0, "demo/dev-a");
  f = recv(*a, 10s);
  EXPECT_EQ(f.push().message_id(), "m-ttl0");

  // A newer schema version is skipped and counted, never a crash.
  auto future = push_record("dev-a", "m-v2", 4, "?");
  future.set_schema_version(2);
  deliver("n1", future, "demo/dev-a");
  deliver("n1", push_record("dev-a", "m-3", 5, "after"), "demo/dev-a");
  f = recv(*a, 10s);
  EXPECT_EQ(f.push().message_id(), "m-3");
  EXPECT_EQ(metric(node, "pushgw_bus_records_rejected_total{reason=\"schema_version\"}"), 1.0);
}

TEST_F(DeliveryTest, TopicAndBroadcastFanOutAndTopicCounts) {
  Node& node = start_node("n1");
  auto a = online(node, ListenerKind::kTcp, "dev-a", {"news"});
  auto b = online(node, ListenerKind::kWss, "dev-b");
  auto c = online(node, ListenerKind::kTls, "dev-c");

  v1::Frame sub;
  sub.mutable_subscribe()->add_add("news");
  sub.mutable_subscribe()->add_add("bad topic!");  // not a topic name: ignored
  send(*b, sub);
  const v1::Frame ack = recv_kind(*b, v1::Frame::kSubscribeAck);
  ASSERT_EQ(ack.subscribe_ack().topics_size(), 1);
  EXPECT_EQ(ack.subscribe_ack().topics(0), "news");
  EXPECT_EQ(topic_count("news", "n1"), 2);

  bus::v1::DeliveryRecord topic;
  topic.set_schema_version(1);
  topic.set_app_id(kApp);
  topic.set_topic("news");
  topic.mutable_push()->set_message_id("t-1");
  topic.mutable_push()->set_topic("news");
  topic.mutable_push()->set_payload("headline");
  deliver("n1", topic, "news");
  for (auto* d : {a.get(), b.get()}) {
    const v1::Frame f = recv_kind(*d, v1::Frame::kPush, 10s);
    EXPECT_EQ(f.push().message_id(), "t-1");
    EXPECT_EQ(f.push().payload(), "headline");
  }
  EXPECT_TRUE(silent(*c, 300ms));

  bus::v1::DeliveryRecord all;
  all.set_schema_version(1);
  all.set_app_id(kApp);
  all.set_broadcast(true);
  all.mutable_push()->set_message_id("b-1");
  deliver("n1", all, "b-1");
  for (auto* d : {a.get(), b.get(), c.get()}) {
    EXPECT_EQ(recv_kind(*d, v1::Frame::kPush, 10s).push().message_id(), "b-1");
  }
  EXPECT_EQ(metric(node, "pushgw_conn_frames_out_total{type=\"push\"}"), 5.0);

  // Counts follow unsubscribe and close.
  v1::Frame unsub;
  unsub.mutable_subscribe()->add_remove("news");
  send(*b, unsub);
  EXPECT_EQ(recv_kind(*b, v1::Frame::kSubscribeAck).subscribe_ack().topics_size(), 0);
  EXPECT_EQ(topic_count("news", "n1"), 1);
  run(ioc_, [](client::Device* d) -> boost::asio::awaitable<int> {
    co_await d->close();
    co_return 0;
  }(a.get()));
  EXPECT_TRUE(eventually([&] { return topic_count("news", "n1") == 0; }));
}

TEST_F(DeliveryTest, AckBecomesAckEventWithSeq) {
  Node& node = start_node("n1");
  auto d = online(node, ListenerKind::kTls, "dev-ack");
  deliver("n1", push_record("dev-ack", "m-7", 7, "x", /*ack_required=*/true), "demo/dev-ack");
  const v1::Frame f = recv(*d, 10s);
  ASSERT_TRUE(f.push().ack_required());
  v1::Frame ack;
  ack.mutable_ack()->add_message_ids("m-7");
  ack.mutable_ack()->add_message_ids("m-unknown");
  ack.mutable_ack()->set_last_seq(7);
  send(*d, ack);
  auto recs = read_topic("pushgw.acks", 1, 10s);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].key, "demo/dev-ack");
  bus::v1::AckEvent ev;
  ASSERT_TRUE(ev.ParseFromString(recs[0].value));
  EXPECT_EQ(ev.schema_version(), 1u);
  EXPECT_EQ(ev.app_id(), kApp);
  EXPECT_EQ(ev.device_id(), "dev-ack");
  EXPECT_EQ(ev.node_id(), "n1");
  EXPECT_EQ(ev.last_seq(), 7u);
  ASSERT_EQ(ev.acked_size(), 2);
  EXPECT_EQ(ev.acked(0).message_id(), "m-7");
  EXPECT_EQ(ev.acked(0).seq(), 7u);
  EXPECT_EQ(ev.acked(1).message_id(), "m-unknown");
  EXPECT_EQ(ev.acked(1).seq(), 0u);

  // The message's counters (GET /v1/messages/{id}) count the write and the ack.
  std::map<std::string, int64_t> counters;
  EXPECT_TRUE(eventually(
      [&] {
        auto c = run(ioc_, store_->get_counters("m-7"));
        if (c) counters = *c;
        return counters["delivered"] == 1 && counters["acked"] == 1;
      },
      10s))
      << "delivered " << counters["delivered"] << ", acked " << counters["acked"];
}

/// A device client that reads its Welcome and then nothing at all, with a
/// tiny receive buffer so the node's writes back up quickly.
class StuckClient {
 public:
  StuckClient(uint16_t port, const std::string& device, const std::string& token)
      : socket_(ioc_) {
    socket_.open(asio::ip::tcp::v4());
    socket_.set_option(asio::socket_base::receive_buffer_size(4096));
    socket_.connect({asio::ip::make_address("127.0.0.1"), port});
    v1::Frame hello;
    auto* h = hello.mutable_hello();
    h->set_protocol_version(1);
    h->set_app_id(kApp);
    h->set_device_id(device);
    h->set_token(token);
    asio::write(socket_, asio::buffer(encode_framed(hello)));
    unsigned char prefix[4];
    asio::read(socket_, asio::buffer(prefix));
    std::string body(read_prefix(prefix), '\0');
    asio::read(socket_, asio::buffer(body));
    v1::Frame welcome;
    if (!welcome.ParseFromString(body) || !welcome.has_welcome()) {
      throw std::runtime_error("no Welcome");
    }
  }

 private:
  asio::io_context ioc_;
  asio::ip::tcp::socket socket_;
};

TEST_F(DeliveryTest, SlowConsumerIsClosedWhileOthersKeepReceiving) {
  Node& node = start_node("n1", [](NodeConfig& c) {
    c.limits.send_queue_bytes = 256 * 1024;
    c.limits.send_queue_frames = 64;
  });
  StuckClient stuck(node.port(ListenerKind::kTcp), "dev-stuck", token("dev-stuck"));
  auto good = online(node, ListenerKind::kTcp, "dev-good");
  EXPECT_EQ(registered_node("dev-stuck"), "n1");

  // 100 x 32 KiB: the Kafka mock keeps about 5 MB per partition.
  constexpr int kPushes = 100;
  std::vector<bus::v1::DeliveryRecord> recs;
  for (int i = 0; i < kPushes; ++i) {
    bus::v1::DeliveryRecord r;
    r.set_schema_version(1);
    r.set_app_id(kApp);
    r.set_broadcast(true);
    r.mutable_push()->set_message_id("bulk-" + std::to_string(i));
    r.mutable_push()->set_payload(std::string(32 * 1024, static_cast<char>('a' + i % 26)));
    recs.push_back(std::move(r));
  }
  deliver_many("n1", recs);
  for (int i = 0; i < kPushes; ++i) {
    const v1::Frame f = recv(*good, 10s);
    ASSERT_TRUE(f.has_push()) << i << ": " << f.ShortDebugString().substr(0, 200);
    ASSERT_EQ(f.push().message_id(), "bulk-" + std::to_string(i));
  }
  EXPECT_GE(metric(node, "pushgw_conn_queue_overflows_total{lane=\"normal\"}"), 1.0);
  EXPECT_EQ(metric(node, "pushgw_conn_errors_sent_total{code=\"SLOW_CONSUMER\"}"), 1.0);
  EXPECT_TRUE(eventually([&] { return registered_node("dev-stuck").empty(); }, 2s));
  EXPECT_EQ(registered_node("dev-good"), "n1");
  EXPECT_TRUE(eventually([&] { return node.stats().sessions_total == 1; }));
}

TEST_F(DeliveryTest, NormalOvertakesMarketingBacklogUnderTheRateCap) {
  Node& node = start_node("n1", [](NodeConfig& c) {
    c.threads = 1;
    c.limits.marketing_rate = 20;  // frames per second for the whole node
  });
  auto d = online(node, ListenerKind::kTcp, "dev-m");
  std::vector<bus::v1::DeliveryRecord> recs;
  for (int i = 0; i < 30; ++i) {
    auto r = push_record("dev-m", "mk-" + std::to_string(i), 0, "promo");
    r.mutable_push()->set_traffic_class(v1::MARKETING);
    recs.push_back(std::move(r));
  }
  for (int i = 0; i < 3; ++i) {
    recs.push_back(push_record("dev-m", "n-" + std::to_string(i), static_cast<uint64_t>(i + 1),
                               "order update"));
  }
  const auto start = std::chrono::steady_clock::now();
  deliver_many("n1", recs);
  std::vector<std::string> order;
  for (int i = 0; i < 33; ++i) order.push_back(recv(*d, 10s).push().message_id());
  const auto took = std::chrono::steady_clock::now() - start;
  // The three normal messages arrive before most of the marketing backlog.
  size_t last_normal = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i].rfind("n-", 0) == 0) last_normal = i;
  }
  EXPECT_LT(last_normal, 10u);
  // 30 marketing frames at 20/s (burst 2): at least ~1.3 s.
  EXPECT_GE(took, 1200ms);
}

TEST_F(DeliveryTest, LivePushesWaitForTheReplayOfTheirConnection) {
  Node& node = start_node("n1", [](NodeConfig& c) { c.replay_wait = 1500ms; });
  await_delivery_ready(node);  // the probe's own hold may have timed out meanwhile
  const std::string timeouts = "pushgw_conn_replay_hold_total{event=\"timeout\"}";
  const double timeouts_before = metric(node, timeouts);
  auto d = online(node, ListenerKind::kTcp, "dev-r");
  const uint64_t epoch = registered_epoch("dev-r");
  deliver("n1", push_record("dev-r", "live-5", 5, "five"), "demo/dev-r");
  deliver("n1", push_record("dev-r", "live-3", 3, "three"), "demo/dev-r");
  auto replayed = push_record("dev-r", "stored-2", 2, "two");
  replayed.set_replay(true);
  deliver("n1", replayed, "demo/dev-r");
  // The replayed message goes out at once; live ones are held.
  EXPECT_EQ(recv(*d, 5s).push().message_id(), "stored-2");
  EXPECT_TRUE(silent(*d, 200ms));
  bus::v1::DeliveryRecord done;
  done.set_schema_version(1);
  done.set_app_id(kApp);
  done.set_device_id("dev-r");
  done.mutable_replay_complete()->set_epoch(epoch);
  done.mutable_replay_complete()->set_highest_seq(3);
  done.mutable_replay_complete()->set_count(2);
  deliver("n1", done, "demo/dev-r");
  // seq 3 was covered by the replay; seq 5 follows.
  EXPECT_EQ(recv(*d, 5s).push().message_id(), "live-5");
  EXPECT_TRUE(silent(*d, 200ms));

  // No replay answer: the held messages go out in seq order after replay_wait.
  auto e = online(node, ListenerKind::kWs, "dev-q");
  const auto start = std::chrono::steady_clock::now();
  deliver("n1", push_record("dev-q", "q-9", 9, "nine"), "demo/dev-q");
  deliver("n1", push_record("dev-q", "q-8", 8, "eight"), "demo/dev-q");
  EXPECT_EQ(recv(*e, 5s).push().message_id(), "q-8");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1000ms);
  EXPECT_EQ(recv(*e, 5s).push().message_id(), "q-9");
  EXPECT_EQ(metric(node, timeouts), timeouts_before + 1.0);
  EXPECT_EQ(metric(node, "pushgw_conn_replay_hold_total{event=\"replay_complete\"}"), 1.0);

  // A late replay: pushes the store also keeps (ack_required) are not sent
  // live ahead of it (the device's cumulative ack would skip older stored
  // ones); the replay brings them in order, and live pushes flow after it.
  const std::string deferred = "pushgw_conn_replay_hold_total{event=\"deferred_to_replay\"}";
  const double deferred_before = metric(node, deferred);
  auto g = online(node, ListenerKind::kTcp, "dev-s");
  const uint64_t epoch_s = registered_epoch("dev-s");
  deliver("n1", push_record("dev-s", "s-7", 7, "seven", /*ack_required=*/true), "demo/dev-s");
  deliver("n1", push_record("dev-s", "s-t0", 0, "ttl 0"), "demo/dev-s");
  EXPECT_EQ(recv(*g, 5s).push().message_id(), "s-t0");  // not stored: sent when the hold ends
  EXPECT_TRUE(silent(*g, 500ms));
  deliver("n1", push_record("dev-s", "s-8", 8, "eight", true), "demo/dev-s");
  EXPECT_TRUE(silent(*g, 500ms)) << "still no replay: s-8 waits for it too";
  for (uint64_t seq : {6, 7, 8}) {
    auto r = push_record("dev-s", "s-" + std::to_string(seq), seq, "stored", true);
    r.set_replay(true);
    deliver("n1", r, "demo/dev-s");
  }
  EXPECT_EQ(recv(*g, 5s).push().message_id(), "s-6");
  EXPECT_EQ(recv(*g, 5s).push().message_id(), "s-7");
  EXPECT_EQ(recv(*g, 5s).push().message_id(), "s-8");
  bus::v1::DeliveryRecord done_s;
  done_s.set_schema_version(1);
  done_s.set_app_id(kApp);
  done_s.set_device_id("dev-s");
  done_s.mutable_replay_complete()->set_epoch(epoch_s);
  done_s.mutable_replay_complete()->set_highest_seq(8);
  done_s.mutable_replay_complete()->set_count(3);
  deliver("n1", done_s, "demo/dev-s");
  deliver("n1", push_record("dev-s", "s-9", 9, "nine", true), "demo/dev-s");
  EXPECT_EQ(recv(*g, 5s).push().message_id(), "s-9");
  EXPECT_EQ(metric(node, deferred), deferred_before + 2.0);
}

// A live push that must follow an older message the router sent to the
// store only (after_seq): the replay of this connection did not have it, so
// the live one waits for the late forward instead of overtaking it.
TEST_F(DeliveryTest, LivePushesWaitForTheOlderMessageTheyFollow) {
  Node& node = start_node("n1", [](NodeConfig& c) { c.replay_wait = 1500ms; });
  await_delivery_ready(node);
  const std::string held = "pushgw_conn_order_hold_total{event=\"held\"}";
  const std::string timeouts = "pushgw_conn_order_hold_total{event=\"timeout\"}";
  const double held_before = metric(node, held);
  const double timeouts_before = metric(node, timeouts);
  auto d = online(node, ListenerKind::kTcp, "dev-o");
  const uint64_t epoch = registered_epoch("dev-o");
  auto replay_done = [&](const std::string& device, uint64_t ep, uint64_t highest) {
    bus::v1::DeliveryRecord done;
    done.set_schema_version(1);
    done.set_app_id(kApp);
    done.set_device_id(device);
    done.mutable_replay_complete()->set_epoch(ep);
    done.mutable_replay_complete()->set_highest_seq(highest);
    deliver("n1", done, "demo/" + device);
  };
  // The replay ran before seq 2 reached the store: nothing replayed.
  replay_done("dev-o", epoch, 0);
  auto live3 = push_record("dev-o", "o-3", 3, "three", true);
  live3.set_after_seq(2);
  deliver("n1", live3, "demo/dev-o");
  auto live4 = push_record("dev-o", "o-4", 4, "four", true);
  live4.set_after_seq(2);
  deliver("n1", live4, "demo/dev-o");
  EXPECT_TRUE(silent(*d, 300ms)) << "o-3 overtook the message it follows";
  auto late = push_record("dev-o", "o-2", 2, "two", true);
  late.set_replay(true);  // the offline router's late forward
  deliver("n1", late, "demo/dev-o");
  EXPECT_EQ(recv(*d, 5s).push().message_id(), "o-2");
  EXPECT_EQ(recv(*d, 5s).push().message_id(), "o-3");
  EXPECT_EQ(recv(*d, 5s).push().message_id(), "o-4");
  // Already had: no wait.
  auto live5 = push_record("dev-o", "o-5", 5, "five", true);
  live5.set_after_seq(2);
  deliver("n1", live5, "demo/dev-o");
  EXPECT_EQ(recv(*d, 5s).push().message_id(), "o-5");
  EXPECT_EQ(metric(node, held), held_before + 2.0);

  // The older message never comes (expired meanwhile): the wait is bounded.
  auto e = online(node, ListenerKind::kWs, "dev-p");
  replay_done("dev-p", registered_epoch("dev-p"), 0);
  const auto start = std::chrono::steady_clock::now();
  auto live7 = push_record("dev-p", "p-7", 7, "seven", true);
  live7.set_after_seq(6);
  deliver("n1", live7, "demo/dev-p");
  EXPECT_EQ(recv(*e, 5s).push().message_id(), "p-7");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1000ms);
  EXPECT_EQ(metric(node, timeouts), timeouts_before + 1.0);
}

// A device reconnects while records meant for its previous connection are
// still on the way (the offline router read its stores before the
// DISCONNECTED and forwarded them to the old epoch): those are dropped, the
// new connection's own replay brings them. A replayed message this
// connection already had (unacked) is not sent twice.
TEST_F(DeliveryTest, ReplaysOfAnotherConnectionAndRepeatsAreNotSentTwice) {
  Node& node = start_node("n1");
  await_delivery_ready(node);
  const std::string stale = "pushgw_conn_deliveries_total{result=\"stale_epoch\"}";
  const std::string dup = "pushgw_conn_deliveries_total{result=\"duplicate\"}";
  const double stale_before = metric(node, stale);
  const double dup_before = metric(node, dup);
  uint64_t old_epoch = 0;
  {
    auto old = online(node, ListenerKind::kTcp, "dev-e");
    old_epoch = registered_epoch("dev-e");
    v1::Frame bye;
    bye.mutable_bye()->set_reason("reconnecting");
    send(*old, bye);
    ASSERT_TRUE(closed_by_server(*old));
  }
  ASSERT_TRUE(eventually([&] { return registered_node("dev-e").empty(); }));
  auto d = online(node, ListenerKind::kWs, "dev-e");
  const uint64_t epoch = registered_epoch("dev-e");
  ASSERT_GT(epoch, old_epoch);

  auto forward = push_record("dev-e", "e-2", 2, "for the old link", true);
  forward.set_replay(true);
  forward.set_epoch(old_epoch);
  deliver("n1", forward, "demo/dev-e");
  auto newer = push_record("dev-e", "e-9", 9, "for a newer link", true);
  newer.set_replay(true);
  newer.set_epoch(epoch + 1);
  deliver("n1", newer, "demo/dev-e");
  // This connection's replay: e-2 once, then e-3; e-2 again (a late
  // forward the replay also had) is dropped.
  for (const char* id : {"e-2", "e-3", "e-2"}) {
    auto r = push_record("dev-e", id, id[2] == '2' ? 2 : 3, "stored", true);
    r.set_replay(true);
    r.set_epoch(epoch);
    deliver("n1", r, "demo/dev-e");
  }
  auto unstamped = push_record("dev-e", "e-4", 4, "no epoch", true);
  unstamped.set_replay(true);  // epoch 0: older producers, delivered to the device's link
  deliver("n1", unstamped, "demo/dev-e");
  EXPECT_EQ(recv(*d, 5s).push().message_id(), "e-2");
  EXPECT_EQ(recv(*d, 5s).push().message_id(), "e-3");
  EXPECT_EQ(recv(*d, 5s).push().message_id(), "e-4");
  EXPECT_TRUE(silent(*d, 300ms));
  EXPECT_EQ(metric(node, stale), stale_before + 2.0);
  EXPECT_EQ(metric(node, dup), dup_before + 1.0);
}

}  // namespace
}  // namespace pushgw::conn_node::testing
