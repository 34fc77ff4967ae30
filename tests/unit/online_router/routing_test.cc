// The online router's routing rules, without I/O.
#include "online_router/routing.h"

#include <gtest/gtest.h>

#include <random>

namespace pushgw::online_router {
namespace {

using bus::v1::DeliveryRecord;
using bus::v1::PushRequest;
using namespace std::chrono_literals;

constexpr uint64_t kNow = 1'700'000'000'000ULL;

PushRequest request(uint32_t ttl_s = 60) {
  PushRequest r;
  r.set_schema_version(1);
  r.set_message_id("m1");
  r.set_app_id("app");
  r.set_device_id("dev");
  r.set_payload(std::string("\x00\x01 bin", 6));
  r.set_ttl_s(ttl_s);
  r.set_created_ms(kNow - 1000);
  r.set_expires_ms(kNow - 1000 + uint64_t{ttl_s} * 1000);
  r.set_collapse_key("ck");
  return r;
}

TEST(Topics, Names) {
  EXPECT_EQ(push_topic(TrafficClass::kNormal), "pushgw.push.normal");
  EXPECT_EQ(push_topic(TrafficClass::kMarketing), "pushgw.push.marketing");
  EXPECT_EQ(fanout_topic(TrafficClass::kNormal), "pushgw.fanout.normal");
  EXPECT_EQ(fanout_topic(TrafficClass::kMarketing), "pushgw.fanout.marketing");
  EXPECT_EQ(deliver_topic("node-7"), "pushgw.deliver.node-7");
  EXPECT_EQ(kOfflineTopic, "pushgw.offline");
  EXPECT_EQ(device_key("a", "d/1"), "a/d/1");
}

TEST(Topics, ValidNodeTopic) {
  EXPECT_TRUE(valid_node_topic("node-1.eu_west"));
  EXPECT_FALSE(valid_node_topic(""));
  EXPECT_FALSE(valid_node_topic("node 1"));
  EXPECT_FALSE(valid_node_topic("node/1"));
  EXPECT_FALSE(valid_node_topic("nöde"));
  EXPECT_TRUE(valid_node_topic(std::string(249 - 15, 'n')));
  EXPECT_FALSE(valid_node_topic(std::string(249 - 14, 'n')));
}

// decode_request with an arena that outlives the test's requests.
std::variant<Decoded, BadReason> decode(const std::string& value) {
  static google::protobuf::Arena arena;
  return decode_request(value, arena);
}

TEST(Decode, AcceptsEachTargetKind) {
  auto r = request();
  auto d = decode(r.SerializeAsString());
  ASSERT_TRUE(std::holds_alternative<Decoded>(d));
  EXPECT_EQ(std::get<Decoded>(d).kind, TargetKind::kDevice);
  EXPECT_EQ(std::get<Decoded>(d).request->payload(), r.payload());

  r.clear_device_id();
  r.set_topic("news");
  d = decode(r.SerializeAsString());
  ASSERT_TRUE(std::holds_alternative<Decoded>(d));
  EXPECT_EQ(std::get<Decoded>(d).kind, TargetKind::kTopic);

  r.clear_topic();
  r.set_broadcast(true);
  d = decode(r.SerializeAsString());
  ASSERT_TRUE(std::holds_alternative<Decoded>(d));
  EXPECT_EQ(std::get<Decoded>(d).kind, TargetKind::kBroadcast);

  r.set_schema_version(0);  // older writers: accepted
  EXPECT_TRUE(std::holds_alternative<Decoded>(decode(r.SerializeAsString())));
}

BadReason bad(const std::variant<Decoded, BadReason>& d) {
  EXPECT_TRUE(std::holds_alternative<BadReason>(d));
  return std::holds_alternative<BadReason>(d) ? std::get<BadReason>(d) : BadReason::kInvalid;
}

TEST(Decode, RejectsBadRecords) {
  EXPECT_EQ(bad(decode(std::string("\xff\xff\xff\x07", 4))), BadReason::kUndecodable);
  auto r = request();
  r.set_schema_version(2);
  EXPECT_EQ(bad(decode(r.SerializeAsString())), BadReason::kSchemaVersion);

  auto no_target = request();
  no_target.clear_device_id();
  EXPECT_EQ(bad(decode(no_target.SerializeAsString())), BadReason::kInvalid);
  auto two = request();
  two.set_broadcast(true);
  EXPECT_EQ(bad(decode(two.SerializeAsString())), BadReason::kInvalid);
  auto no_id = request();
  no_id.clear_message_id();
  EXPECT_EQ(bad(decode(no_id.SerializeAsString())), BadReason::kInvalid);
  auto bad_app = request();
  bad_app.set_app_id("a:b");
  EXPECT_EQ(bad(decode(bad_app.SerializeAsString())), BadReason::kInvalid);
  auto bad_dev = request();
  bad_dev.set_device_id(std::string("d\n", 2));
  EXPECT_EQ(bad(decode(bad_dev.SerializeAsString())), BadReason::kInvalid);
  auto long_topic = request();
  long_topic.clear_device_id();
  long_topic.set_topic(std::string(300, 't'));
  EXPECT_EQ(bad(decode(long_topic.SerializeAsString())), BadReason::kInvalid);

  EXPECT_EQ(bad_reason_name(BadReason::kUndecodable), "undecodable");
  EXPECT_EQ(bad_reason_name(BadReason::kSchemaVersion), "schema_version");
  EXPECT_EQ(bad_reason_name(BadReason::kInvalid), "invalid");
}

TEST(Expiry, TtlZeroNeverExpiresBeforeRouting) {
  auto r = request(0);
  EXPECT_EQ(expires_at_ms(r), r.created_ms());
  EXPECT_FALSE(is_expired(r, kNow + 3'600'000));
  auto t = request(10);
  EXPECT_FALSE(is_expired(t, t.expires_ms()));
  EXPECT_TRUE(is_expired(t, t.expires_ms() + 1));
  t.clear_expires_ms();  // derived from created + ttl
  EXPECT_EQ(expires_at_ms(t), t.created_ms() + 10'000);
  EXPECT_TRUE(is_expired(t, t.created_ms() + 10'001));
}

TEST(PlanUnicast, Matrix) {
  const auto ttl = request(60);
  const auto zero = request(0);
  auto p = plan_unicast(ttl, true, true, kNow);
  EXPECT_TRUE(p.live && p.store && !p.expired && !p.unknown_node && p.needs_seq());
  p = plan_unicast(ttl, false, false, kNow);
  EXPECT_TRUE(!p.live && p.store && !p.expired && !p.unknown_node && p.needs_seq());
  p = plan_unicast(ttl, true, false, kNow);  // node dead since lookup
  EXPECT_TRUE(!p.live && p.store && !p.expired && p.unknown_node);
  p = plan_unicast(zero, true, true, kNow);
  EXPECT_TRUE(p.live && !p.store && !p.expired && p.needs_seq());
  p = plan_unicast(zero, false, false, kNow);
  EXPECT_TRUE(!p.live && !p.store && p.expired && !p.needs_seq());
  p = plan_unicast(zero, true, false, kNow);
  EXPECT_TRUE(!p.live && !p.store && p.expired && p.unknown_node);
  p = plan_unicast(ttl, true, true, ttl.expires_ms() + 1);
  EXPECT_TRUE(!p.live && !p.store && p.expired && !p.needs_seq());
}

TEST(Records, PushFrame) {
  const auto r = request(60);
  auto p = make_push(r, 42, TrafficClass::kMarketing);
  EXPECT_EQ(p.message_id(), "m1");
  EXPECT_EQ(p.seq(), 42u);
  EXPECT_EQ(p.payload(), r.payload());
  EXPECT_EQ(p.traffic_class(), pushgw::v1::MARKETING);
  EXPECT_EQ(p.collapse_key(), "ck");
  EXPECT_EQ(p.created_ms(), r.created_ms());
  EXPECT_EQ(p.expires_ms(), r.expires_ms());
  EXPECT_TRUE(p.ack_required());
  EXPECT_TRUE(p.topic().empty());
  EXPECT_FALSE(make_push(request(0), 1, TrafficClass::kNormal).ack_required());
  EXPECT_EQ(make_push(request(0), 1, TrafficClass::kNormal).traffic_class(), pushgw::v1::NORMAL);
}

TEST(Records, UnicastLiveAndStored) {
  const auto r = request(60);
  auto recs = unicast_records(r, 7, std::string_view("n1"), 99, true, TrafficClass::kNormal);
  ASSERT_TRUE(recs.deliver && recs.offline);
  EXPECT_EQ(recs.deliver->topic, "pushgw.deliver.n1");
  EXPECT_EQ(recs.deliver->key, "app/dev");
  EXPECT_EQ(recs.offline->topic, "pushgw.offline");
  EXPECT_EQ(recs.offline->key, "app/dev");
  DeliveryRecord live, stored;
  ASSERT_TRUE(live.ParseFromString(recs.deliver->value));
  ASSERT_TRUE(stored.ParseFromString(recs.offline->value));
  EXPECT_EQ(live.schema_version(), kSchemaVersion);
  EXPECT_EQ(live.node_id(), "n1");
  EXPECT_EQ(live.epoch(), 99u);
  EXPECT_EQ(live.app_id(), "app");
  EXPECT_EQ(live.device_id(), "dev");
  EXPECT_EQ(live.push().seq(), 7u);
  EXPECT_FALSE(live.replay());
  EXPECT_TRUE(stored.node_id().empty());
  EXPECT_EQ(stored.epoch(), 99u);
  EXPECT_EQ(stored.push().SerializeAsString(), live.push().SerializeAsString());

  auto only_stored = unicast_records(r, 8, std::nullopt, 0, true, TrafficClass::kNormal);
  EXPECT_FALSE(only_stored.deliver);
  EXPECT_TRUE(only_stored.offline);
  auto only_live =
      unicast_records(request(0), 9, std::string_view("n2"), 1, false, TrafficClass::kNormal);
  EXPECT_TRUE(only_live.deliver);
  EXPECT_FALSE(only_live.offline);
  auto none = unicast_records(r, 10, std::nullopt, 0, false, TrafficClass::kNormal);
  EXPECT_FALSE(none.deliver || none.offline);
}

TEST(Records, AfterSeqRidesOnTheLiveRecordOnly) {
  const auto r = request(60);
  auto recs = unicast_records(r, 7, std::string_view("n1"), 99, true, TrafficClass::kNormal, 5);
  ASSERT_TRUE(recs.deliver && recs.offline);
  DeliveryRecord live, stored;
  ASSERT_TRUE(live.ParseFromString(recs.deliver->value));
  ASSERT_TRUE(stored.ParseFromString(recs.offline->value));
  EXPECT_EQ(live.after_seq(), 5u);
  EXPECT_EQ(stored.after_seq(), 0u);
}

// The live record is the offline one's bytes with node_id and after_seq
// appended: it must parse to exactly what protobuf itself would build,
// including multi-byte lengths and varints.
TEST(Records, LiveRecordParsesAsTheCanonicalMessage) {
  const auto r = request(60);
  const std::string long_node(200, 'n');  // length needs two varint bytes
  for (uint64_t after : {uint64_t{0}, uint64_t{1}, uint64_t{300}, UINT64_MAX}) {
    for (const std::string& node : {std::string("n1"), long_node}) {
      auto recs = unicast_records(r, 7, std::string_view(node), 99, true, TrafficClass::kNormal,
                                  after);
      ASSERT_TRUE(recs.deliver && recs.offline);
      DeliveryRecord expected;
      ASSERT_TRUE(expected.ParseFromString(recs.offline->value));
      expected.set_node_id(node);
      expected.set_after_seq(after);
      DeliveryRecord live;
      ASSERT_TRUE(live.ParseFromString(recs.deliver->value));
      EXPECT_EQ(live.SerializeAsString(), expected.SerializeAsString())
          << "after_seq " << after << ", node of " << node.size() << " bytes";
      EXPECT_EQ(live.after_seq(), after);
      EXPECT_EQ(live.node_id(), node);
    }
  }
}

// The records are encoded by hand: byte for byte what libprotobuf writes for
// the DeliveryRecord built from make_push(), over random requests (lengths
// that need multi-byte varints, zero and huge numbers, both classes).
TEST(Records, EncodingIsByteIdenticalToLibprotobuf) {
  std::mt19937_64 rng(11);
  auto text = [&rng](std::size_t max) {
    std::string s(rng() % (max + 1), 'a');
    for (auto& ch : s) ch = static_cast<char>('a' + rng() % 26);
    return s;
  };
  auto number = [&rng]() -> uint64_t {
    switch (rng() % 4) {
      case 0: return 0;
      case 1: return rng() % 128;
      case 2: return rng() % 100'000;
      default: return rng();
    }
  };
  for (int round = 0; round < 2000; ++round) {
    PushRequest r;
    r.set_schema_version(1);
    r.set_message_id(text(300));
    r.set_app_id(text(20));
    r.set_device_id(text(200));
    std::string payload(rng() % 3000, '\0');
    for (auto& ch : payload) ch = static_cast<char>(rng());
    r.set_payload(payload);
    if (rng() % 4 == 0) r.set_topic(text(40));
    if (rng() % 2 == 0) r.set_collapse_key(text(40));
    r.set_ttl_s(static_cast<uint32_t>(rng() % 3 == 0 ? 0 : rng() % 100'000));
    r.set_created_ms(number());
    if (rng() % 2 == 0) r.set_expires_ms(number());
    const uint64_t seq = number();
    const uint64_t epoch = number();
    const uint64_t after = number();
    const auto cls = rng() % 2 == 0 ? TrafficClass::kNormal : TrafficClass::kMarketing;
    const std::string node = rng() % 8 == 0 ? text(200) : "node-" + text(3);

    DeliveryRecord ref;
    ref.set_schema_version(kSchemaVersion);
    ref.set_app_id(r.app_id());
    ref.set_device_id(r.device_id());
    *ref.mutable_push() = make_push(r, seq, cls);
    ref.set_epoch(epoch);
    const std::string offline = ref.SerializeAsString();
    ref.set_node_id(node);
    ref.set_after_seq(after);
    const std::string live = ref.SerializeAsString();

    auto recs = unicast_records(r, seq, std::string_view(node), epoch, true, cls, after);
    ASSERT_TRUE(recs.deliver && recs.offline);
    ASSERT_EQ(recs.offline->value, offline) << "round " << round;
    ASSERT_EQ(recs.deliver->value, live) << "round " << round;
    auto only_live = unicast_records(r, seq, std::string_view(node), epoch, false, cls, after);
    ASSERT_TRUE(only_live.deliver);
    ASSERT_EQ(only_live.deliver->value, live) << "round " << round;
  }
}

TEST(OfflineOnlyMemo, LiveMessagesToANewerConnectionFollowTheNewestOfflineOnlyOne) {
  OfflineOnlyMemo memo(100);
  const uint64_t now = 1'000;
  EXPECT_EQ(memo.take_after_seq("app/d", 5, now), 0u) << "nothing routed offline-only";
  memo.routed_offline_only("app/d", 10, /*epoch seen=*/4, /*expires=*/now + 60'000);
  memo.routed_offline_only("app/d", 11, 4, now + 60'000);
  memo.routed_offline_only("app/d", 9, 4, now + 60'000);  // an older seq changes nothing
  EXPECT_EQ(memo.take_after_seq("app/d", 4, now), 0u) << "stored while this connection was seen";
  EXPECT_EQ(memo.take_after_seq("app/other", 5, now), 0u);
  EXPECT_EQ(memo.take_after_seq("app/d", 5, now), 11u);
  EXPECT_EQ(memo.take_after_seq("app/d", 5, now), 0u) << "given once";
  EXPECT_EQ(memo.take_after_seq("app/d", 6, now), 0u) << "a later connection's replay has it";
  EXPECT_EQ(memo.size(), 0u);

  memo.routed_offline_only("app/e", 3, 0, now + 10);
  EXPECT_EQ(memo.take_after_seq("app/e", 1, now + 10), 0u) << "expired: no replay brings it";
  EXPECT_EQ(memo.size(), 0u);
}

TEST(OfflineOnlyMemo, IsBounded) {
  OfflineOnlyMemo memo(10);
  for (int i = 0; i < 25; ++i) {
    memo.routed_offline_only("app/d" + std::to_string(i), 1, 0, UINT64_MAX);
    EXPECT_LE(memo.size(), 10u);
  }
  EXPECT_EQ(memo.take_after_seq("app/d24", 1, 0), 1u) << "the newest are kept";
  EXPECT_EQ(memo.take_after_seq("app/d0", 1, 0), 0u) << "the oldest are forgotten";
}

TEST(Records, FanOut) {
  auto r = request(0);
  r.clear_device_id();
  r.set_topic("news");
  auto rec = fanout_record(r, "n3", TrafficClass::kNormal);
  EXPECT_EQ(rec.topic, "pushgw.deliver.n3");
  EXPECT_EQ(rec.key, "news");
  DeliveryRecord d;
  ASSERT_TRUE(d.ParseFromString(rec.value));
  EXPECT_EQ(d.topic(), "news");
  EXPECT_FALSE(d.broadcast());
  EXPECT_TRUE(d.device_id().empty());
  EXPECT_EQ(d.node_id(), "n3");
  EXPECT_EQ(d.push().seq(), 0u);
  EXPECT_EQ(d.push().topic(), "news");

  r.clear_topic();
  r.set_broadcast(true);
  rec = fanout_record(r, "n1", TrafficClass::kMarketing);
  EXPECT_EQ(rec.key, "m1");
  ASSERT_TRUE(d.ParseFromString(rec.value));
  EXPECT_TRUE(d.broadcast());
  EXPECT_TRUE(d.topic().empty());
  EXPECT_EQ(d.push().traffic_class(), pushgw::v1::MARKETING);
}

TEST(NodeView, Liveness) {
  NodeView v;
  EXPECT_FALSE(v.known());
  EXPECT_EQ(v.check("n1", 0), NodeView::Liveness::kUnknown);
  EXPECT_FALSE(v.fresh(kNow, 5s));
  v.update({"n1", "n2"}, kNow);
  EXPECT_TRUE(v.known());
  EXPECT_TRUE(v.fresh(kNow + 5'000, 5s));
  EXPECT_FALSE(v.fresh(kNow + 5'001, 5s));
  EXPECT_EQ(v.check("n1", kNow + 100'000), NodeView::Liveness::kLive);
  // Unlisted: dead if the device connected well before the list was read...
  EXPECT_EQ(v.check("n3", kNow - NodeView::kClockSlack), NodeView::Liveness::kDead);
  // ...unknown if it connected around or after it (the node may be new).
  EXPECT_EQ(v.check("n3", kNow - NodeView::kClockSlack + 1), NodeView::Liveness::kUnknown);
  EXPECT_EQ(v.check("n3", kNow + 1'000), NodeView::Liveness::kUnknown);
  EXPECT_EQ(v.check("n3", UINT64_MAX), NodeView::Liveness::kUnknown);
  v.update({"n3"}, kNow + 10);
  EXPECT_EQ(v.check("n1", 0), NodeView::Liveness::kDead);
  EXPECT_EQ(v.check("n3", 0), NodeView::Liveness::kLive);
  EXPECT_EQ(v.nodes(), (std::vector<std::string>{"n3"}));
}

TEST(CounterBatch, AggregatesPerMessageInFirstSeenOrder) {
  CounterBatch b;
  EXPECT_TRUE(b.empty());
  b.add("m2", kNow + 10'000, 1, 1, 0);
  b.add("m1", kNow + 500'000'000, 0, 0, 1);
  b.add("m2", kNow + 20'000, 1, 1, 0);
  b.add("m3", 0, 0, 0, 0);
  auto u = b.updates(kNow, 86'400s);
  ASSERT_EQ(u.size(), 2u) << "messages without counts are left out";
  EXPECT_EQ(u[0].message_id, "m2");
  EXPECT_EQ(u[0].deltas,
            (std::vector<std::pair<std::string, int64_t>>{{"routed", 2}, {"stored", 2}}));
  EXPECT_EQ(u[0].ttl, std::chrono::milliseconds(86'400'000)) << "at least the minimum";
  EXPECT_EQ(u[1].message_id, "m1");
  EXPECT_EQ(u[1].deltas, (std::vector<std::pair<std::string, int64_t>>{{"expired", 1}}));
  EXPECT_EQ(u[1].ttl, std::chrono::milliseconds(500'000'000)) << "at least the message's ttl";
  EXPECT_FALSE(u[0].keep_ttl) << "expiry not known: the router sets it";
  EXPECT_FALSE(u[1].keep_ttl);
}

TEST(CounterBatch, SoleTargetRecordsSetTheirValuesOthersAdd) {
  CounterBatch b;
  b.add("sole", kNow + 10'000, 1, 1, 0, 0, true);
  b.add("many", kNow + 10'000, 1, 1, 0, 0, false);
  b.add("twice", kNow + 10'000, 1, 0, 0, 0, true);
  b.add("twice", kNow + 10'000, 1, 0, 0, 0, true);  // a duplicate in one batch
  auto u = b.updates(kNow, 86'400s);
  ASSERT_EQ(u.size(), 3u);
  EXPECT_TRUE(u[0].set) << "a message's only record, routed once: values";
  EXPECT_EQ(u[0].deltas,
            (std::vector<std::pair<std::string, int64_t>>{{"routed", 1}, {"stored", 1}}));
  EXPECT_FALSE(u[1].set) << "one of several targets: increments";
  EXPECT_FALSE(u[2].set) << "seen twice in the batch: increments";
  EXPECT_EQ(u[2].deltas, (std::vector<std::pair<std::string, int64_t>>{{"routed", 2}}));
}

TEST(CounterBatch, KeepsTheTtlOnlyWhenTheKnownExpiryCoversIt) {
  CounterBatch b;
  const uint64_t day = 86'400'000;
  b.add("covered", kNow + 10'000, 1, 1, 0, kNow + day + 3'600'000);
  b.add("short", kNow + 10'000, 1, 0, 0, kNow + day - 1);
  b.add("long-ttl", kNow + 3 * day, 1, 0, 0, kNow + 2 * day);
  b.add("mixed", kNow + 10'000, 1, 0, 0, kNow + 2 * day);
  b.add("mixed", kNow + 10'000, 1, 0, 0, 0);  // one record without the field
  auto u = b.updates(kNow, 86'400s);
  ASSERT_EQ(u.size(), 4u);
  EXPECT_TRUE(u[0].keep_ttl) << "push-api's expiry outlives what the router would set";
  EXPECT_FALSE(u[1].keep_ttl) << "an expiry short of the minimum is extended";
  EXPECT_FALSE(u[2].keep_ttl) << "an expiry short of the message's own is extended";
  EXPECT_FALSE(u[3].keep_ttl) << "any record without a known expiry sets it";
}

}  // namespace
}  // namespace pushgw::online_router
