// The online router in-process against a real redis-server and the Kafka mock
// cluster: routing outcomes, seq order, fan-out, class isolation, bad records,
// dead nodes and produce retries.
#include <set>

#include "common/bus/mock_cluster.h"
#include "online_router/routing.h"
#include "router_fixture.h"

namespace pushgw::online_router::testing {
namespace {

using bus::v1::DeliveryRecord;

class RouterTest : public RouterFixture {};

// A new seq counter starts at the time-based seed (status_store::counter_seed):
// every seq is above the seed of an hour ago, and a device's first one is
// seed + 1 (seeds are multiples of 1000).
uint64_t seq_floor() { return status_store::counter_seed(now_ms() - 3'600'000); }
bool first_seq(uint64_t seq) { return seq > seq_floor() && seq % 1000 == 1; }

std::string node_topic(const std::string& n) { return deliver_topic(n); }
const std::string kOffline(kOfflineTopic);

TEST_F(RouterTest, OnlineDeviceGetsRecordsOnItsNodeWithIncreasingSeq) {
  upsert_node("n1");
  const uint64_t epoch = register_device("d1", "n1");
  std::vector<bus::v1::PushRequest> rs;
  for (int i = 0; i < 250; ++i) {
    auto r = unicast("m" + std::to_string(i), "d1", 3600);
    if (i == 0) r.set_collapse_key("ck");
    rs.push_back(r);
  }
  push_all(rs);
  auto router = start_router(config());
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 250; }))
      << router->stats().completed;

  auto live = deliveries(node_topic("n1"), kDeliverPartitions);
  ASSERT_EQ(live.size(), 250u);
  for (std::size_t i = 0; i < live.size(); ++i) {
    const auto& d = live[i];
    EXPECT_EQ(d.schema_version(), 1u);
    EXPECT_EQ(d.app_id(), kApp);
    EXPECT_EQ(d.device_id(), "d1");
    EXPECT_EQ(d.node_id(), "n1");
    EXPECT_EQ(d.epoch(), epoch);
    EXPECT_TRUE(d.topic().empty());
    EXPECT_FALSE(d.broadcast());
    EXPECT_EQ(d.push().message_id(), "m" + std::to_string(i));
    EXPECT_EQ(d.push().seq(), live[0].push().seq() + i) << "seq must follow the input order";
    EXPECT_TRUE(d.push().ack_required());
    EXPECT_EQ(d.push().traffic_class(), pushgw::v1::NORMAL);
    EXPECT_EQ(d.push().payload(), "payload of m" + std::to_string(i));
    EXPECT_EQ(d.push().expires_ms(), rs[i].expires_ms());
    EXPECT_EQ(d.push().created_ms(), rs[i].created_ms());
  }
  EXPECT_TRUE(first_seq(live[0].push().seq())) << live[0].push().seq();
  EXPECT_EQ(live[0].push().collapse_key(), "ck");

  // ttl > 0: the offline store gets a copy of each, same seq, no node.
  auto stored = deliveries(kOffline, kOfflinePartitions);
  ASSERT_EQ(stored.size(), 250u);
  for (std::size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(stored[i].push().seq(), live[i].push().seq());
    EXPECT_EQ(stored[i].device_id(), "d1");
    EXPECT_TRUE(stored[i].node_id().empty());
  }
  const auto s = router->stats();
  EXPECT_EQ(s.online, 250u);
  EXPECT_EQ(s.stored, 250u);
  EXPECT_EQ(s.expired, 0u);
  EXPECT_TRUE(wait_for([&] { return counters("m7").size() == 2; }));
  EXPECT_EQ(counters("m7"), (std::map<std::string, int64_t>{{"routed", 1}, {"stored", 1}}));
  router->stop();
  EXPECT_FALSE(router->ready());
}

TEST_F(RouterTest, OfflineDeviceWithTtlGoesToTheOfflineStoreOnly) {
  upsert_node("n1");
  register_device("other", "n1");
  push(unicast("m1", "d-offline", 600));
  push(unicast("m2", "d-offline", 600));
  auto router = start_router(config());
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 2; }));
  auto stored = deliveries(kOffline, kOfflinePartitions);
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].device_id(), "d-offline");
  EXPECT_TRUE(first_seq(stored[0].push().seq())) << stored[0].push().seq();
  EXPECT_EQ(stored[1].push().seq(), stored[0].push().seq() + 1);
  EXPECT_EQ(stored[0].epoch(), 0u);
  for (const auto& n : kNodes) EXPECT_EQ(count(node_topic(n), kDeliverPartitions), 0) << n;
  EXPECT_EQ(router->stats().online, 0u);
  EXPECT_EQ(router->stats().stored, 2u);
  EXPECT_TRUE(wait_for([&] { return !counters("m2").empty(); }));
  EXPECT_EQ(counters("m2"), (std::map<std::string, int64_t>{{"stored", 1}}));
}

TEST_F(RouterTest, TtlZeroToOfflineDeviceAndExpiredRequestsAreDroppedAsExpired) {
  upsert_node("n1");
  register_device("d1", "n1");
  push(unicast("m-ttl0", "d-offline", 0));
  auto old = unicast("m-old", "d1", 60);
  old.set_created_ms(now_ms() - 120'000);
  old.set_expires_ms(now_ms() - 60'000);
  push(old);
  push(unicast("m-live0", "d1", 0));  // ttl 0, online: live only
  auto router = start_router(config());
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 3; }));
  EXPECT_EQ(count(kOffline, kOfflinePartitions), 0);
  auto live = deliveries(node_topic("n1"), kDeliverPartitions);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].push().message_id(), "m-live0");
  EXPECT_FALSE(live[0].push().ack_required());
  EXPECT_TRUE(first_seq(live[0].push().seq()))
      << live[0].push().seq() << ": dropped messages take no seq";
  EXPECT_EQ(router->stats().expired, 2u);
  EXPECT_TRUE(wait_for([&] { return !counters("m-ttl0").empty() && !counters("m-old").empty(); }));
  EXPECT_EQ(counters("m-ttl0"), (std::map<std::string, int64_t>{{"expired", 1}}));
  EXPECT_EQ(counters("m-old"), (std::map<std::string, int64_t>{{"expired", 1}}));
}

TEST_F(RouterTest, UserTargetReachesAllTheUsersDevices) {
  upsert_node("n1");
  upsert_node("n2");
  register_device("phone", "n1", "u1");
  register_device("tablet", "n2", "u1");
  // push-api expands the user into one request per device, same message id.
  std::vector<bus::v1::PushRequest> rs;
  for (const char* d : {"phone", "tablet", "laptop-offline"}) {
    auto r = unicast("mu", d, 300);
    r.set_user_id("u1");
    rs.push_back(r);
  }
  push_all(rs);
  auto router = start_router(config());
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 3; }));
  auto n1 = deliveries(node_topic("n1"), kDeliverPartitions);
  auto n2 = deliveries(node_topic("n2"), kDeliverPartitions);
  ASSERT_EQ(n1.size(), 1u);
  ASSERT_EQ(n2.size(), 1u);
  EXPECT_EQ(n1[0].device_id(), "phone");
  EXPECT_EQ(n2[0].device_id(), "tablet");
  std::set<std::string> stored;
  for (const auto& d : deliveries(kOffline, kOfflinePartitions)) stored.insert(d.device_id());
  EXPECT_EQ(stored, (std::set<std::string>{"phone", "tablet", "laptop-offline"}));
  EXPECT_TRUE(wait_for([&] { return counters("mu")["stored"] == 3; }));
  EXPECT_EQ(counters("mu"), (std::map<std::string, int64_t>{{"routed", 2}, {"stored", 3}}));
}

TEST_F(RouterTest, TopicReachesOnlyLiveNodesWithSubscribers) {
  upsert_node("n1");
  upsert_node("n3");
  topic_add("news", "n1", 2);
  topic_add("news", "n2", 1);  // n2 is not live (never registered, or its lease ran out)
  topic_add("news", "n3", 1);
  topic_add("sport", "n1", 1);
  push(to_topic("mt", "news", 600));
  auto router = start_router(config());
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 1; }));
  for (const auto& n : {std::string("n1"), std::string("n3")}) {
    auto recs = deliveries(node_topic(n), kDeliverPartitions);
    ASSERT_EQ(recs.size(), 1u) << n;
    EXPECT_EQ(recs[0].topic(), "news");
    EXPECT_EQ(recs[0].node_id(), n);
    EXPECT_TRUE(recs[0].device_id().empty());
    EXPECT_FALSE(recs[0].broadcast());
    EXPECT_EQ(recs[0].push().seq(), 0u);
    EXPECT_EQ(recs[0].push().topic(), "news");
    EXPECT_EQ(recs[0].push().message_id(), "mt");
  }
  EXPECT_EQ(count(node_topic("n2"), kDeliverPartitions), 0);
  EXPECT_EQ(count(kOffline, kOfflinePartitions), 0) << "topic messages are never stored";
  EXPECT_EQ(router->stats().fanned_out, 2u);
  EXPECT_TRUE(wait_for([&] { return !counters("mt").empty(); }));
  EXPECT_EQ(counters("mt"), (std::map<std::string, int64_t>{{"routed", 2}}));
}

TEST_F(RouterTest, BroadcastReachesEveryLiveNode) {
  upsert_node("n1");
  upsert_node("n2");
  push(broadcast("mb", 0));
  auto router = start_router(config());
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 1; }));
  for (const auto& n : {std::string("n1"), std::string("n2")}) {
    auto recs = deliveries(node_topic(n), kDeliverPartitions);
    ASSERT_EQ(recs.size(), 1u) << n;
    EXPECT_TRUE(recs[0].broadcast());
    EXPECT_TRUE(recs[0].topic().empty());
    EXPECT_EQ(recs[0].push().seq(), 0u);
    EXPECT_EQ(recs[0].push().message_id(), "mb");
  }
  EXPECT_EQ(count(node_topic("n3"), kDeliverPartitions), 0) << "n3 is not live";
  EXPECT_EQ(router->stats().fanned_out, 2u);
}

TEST_F(RouterTest, MarketingRequestsAreNeverConsumedByTheNormalGroup) {
  upsert_node("n1");
  register_device("d1", "n1");
  std::vector<bus::v1::PushRequest> normal, marketing;
  for (int i = 0; i < 30; ++i) normal.push_back(unicast("n" + std::to_string(i), "d1", 60));
  for (int i = 0; i < 20; ++i) marketing.push_back(unicast("k" + std::to_string(i), "d1", 60));
  marketing.push_back(to_topic("k-topic", "promo", 60));
  topic_add("promo", "n1", 1);
  push_all(normal, TrafficClass::kNormal);
  push_all(marketing, TrafficClass::kMarketing);

  auto normal_router = start_router(config(TrafficClass::kNormal));
  ASSERT_TRUE(wait_for([&] { return normal_router->stats().completed == 30; }));
  // Only the normal class so far.
  auto live = deliveries(node_topic("n1"), kDeliverPartitions);
  ASSERT_EQ(live.size(), 30u);
  for (const auto& d : live) EXPECT_EQ(d.push().traffic_class(), pushgw::v1::NORMAL);

  auto marketing_router = start_router(config(TrafficClass::kMarketing));
  ASSERT_TRUE(wait_for([&] { return marketing_router->stats().completed == 21; }));
  EXPECT_EQ(normal_router->stats().consumed, 30u);
  EXPECT_EQ(marketing_router->stats().consumed, 21u);
  live = deliveries(node_topic("n1"), kDeliverPartitions);
  ASSERT_EQ(live.size(), 51u);
  int marketing_seen = 0;
  for (const auto& d : live) {
    const bool m = d.push().message_id()[0] == 'k';
    EXPECT_EQ(d.push().traffic_class(), m ? pushgw::v1::MARKETING : pushgw::v1::NORMAL);
    marketing_seen += m ? 1 : 0;
  }
  EXPECT_EQ(marketing_seen, 21);
  // One seq space per device across classes: 51 distinct unicast seqs minus the topic one.
  std::set<uint64_t> seqs;
  for (const auto& d : live) {
    if (d.topic().empty()) seqs.insert(d.push().seq());
  }
  EXPECT_EQ(seqs.size(), 50u);
  normal_router->stop();
  marketing_router->stop();
  // The normal group never committed anything on the marketing topics.
  auto committed = kafka_->committed("online-router.normal", push_topic(TrafficClass::kMarketing),
                                     kPushPartitions);
  for (const auto& [p, off] : committed) EXPECT_LT(off, 0) << "partition " << p;
  auto mcommitted = kafka_->committed("online-router.marketing",
                                      push_topic(TrafficClass::kMarketing), kPushPartitions);
  int64_t total = 0;
  for (const auto& [p, off] : mcommitted) total += std::max<int64_t>(off, 0);
  EXPECT_EQ(total, 20);
}

TEST_F(RouterTest, BadRecordsAreCountedAndSkipped) {
  upsert_node("n1");
  register_device("d1", "n1");
  const auto topic = push_topic(TrafficClass::kNormal);
  produce_raw(topic, "app1/d1", std::string("\xff\xff\xff\x07garbage", 11));
  auto future = unicast("m-future", "d1", 60);
  future.set_schema_version(2);
  produce_raw(topic, "app1/d1", future.SerializeAsString());
  auto no_target = unicast("m-none", "", 60);
  produce_raw(topic, "app1/d1", no_target.SerializeAsString());
  auto two_targets = unicast("m-two", "d1", 60);
  two_targets.set_topic("t");
  produce_raw(topic, "app1/d1", two_targets.SerializeAsString());
  push(unicast("m-good", "d1", 60));
  auto router = start_router(config());
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 5; }));
  const auto s = router->stats();
  EXPECT_EQ(s.bad_records, 4u);
  auto live = deliveries(node_topic("n1"), kDeliverPartitions);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].push().message_id(), "m-good");
  EXPECT_TRUE(first_seq(live[0].push().seq())) << live[0].push().seq();
  router->stop();
  // Bad records are processed too: the committed offsets reach the end.
  auto committed = kafka_->committed("online-router.normal", topic, kPushPartitions);
  int64_t total = 0;
  for (const auto& [p, off] : committed) total += std::max<int64_t>(off, 0);
  EXPECT_EQ(total, 5);
}

TEST_F(RouterTest, DeviceOnADeadNodeStillReachesTheOfflineStore) {
  upsert_node("n1");
  // "ghost" registered its device a minute ago and has since died: its node
  // lease is gone but the device's lease has not run out yet.
  register_device("d1", "ghost", {}, now_ms() - 60'000);
  register_device("d2", "n2", {}, now_ms() - 60'000);  // n2: topic exists, node not live
  push(unicast("m1", "d1", 60));
  push(unicast("m2", "d1", 0));
  push(unicast("m3", "d2", 60));
  auto router = start_router(config());
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 3; }));
  auto stored = deliveries(kOffline, kOfflinePartitions);
  std::set<std::string> ids;
  for (const auto& d : stored) ids.insert(d.push().message_id());
  EXPECT_EQ(ids, (std::set<std::string>{"m1", "m3"}));
  EXPECT_EQ(count(node_topic("n2"), kDeliverPartitions), 0);
  const auto s = router->stats();
  EXPECT_EQ(s.unknown_node, 3u);
  EXPECT_EQ(s.online, 0u);
  EXPECT_EQ(s.stored, 2u);
  EXPECT_EQ(s.expired, 1u) << "ttl 0 to a dead node is dropped";
}

TEST_F(RouterTest, NodeThatRegisteredAfterTheListWasReadIsLive) {
  upsert_node("n1");
  register_device("d1", "n1");
  push(unicast("m1", "d1", 60));
  auto router = start_router(config());
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 1; }));
  // A new node and a device on it, within nodes.max_age of the cached list.
  upsert_node("n2");
  register_device("d2", "n2");
  push(unicast("m2", "d2", 60));
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 2; }));
  EXPECT_EQ(count(node_topic("n2"), kDeliverPartitions), 1);
  EXPECT_EQ(router->stats().unknown_node, 0u);
}

TEST_F(RouterTest, ProduceFailuresAreRetriedUntilDelivered) {
  upsert_node("n1");
  register_device("d1", "n1");
  std::vector<bus::v1::PushRequest> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(unicast("m" + std::to_string(i), "d1", 60));
  push_all(rs);
  // Every produce request fails for a while; librdkafka gives up after the
  // (short) message timeout and the router retries with backoff.
  constexpr int kNotEnoughReplicas = 19;
  kafka_->cluster().push_request_errors(bus::ApiKey::kProduce,
                                        std::vector<int>(60, kNotEnoughReplicas));
  auto cfg = config();
  cfg.kafka.message_timeout = 300ms;
  cfg.kafka.properties.push_back("retry.backoff.ms=20");
  auto router = start_router(cfg);
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 20; }, 20s))
      << "completed " << router->stats().completed << ", retries "
      << router->stats().produce_retries;
  EXPECT_GT(router->stats().produce_retries, 0u);
  std::set<std::string> ids;
  for (const auto& d : deliveries(node_topic("n1"), kDeliverPartitions)) {
    ids.insert(d.push().message_id());
  }
  EXPECT_EQ(ids.size(), 20u);
  std::set<std::string> stored;
  for (const auto& d : deliveries(kOffline, kOfflinePartitions)) {
    stored.insert(d.push().message_id());
  }
  EXPECT_EQ(stored.size(), 20u);
}

TEST_F(RouterTest, StatusStoreOutagePausesRoutingWithoutLosingRecords) {
  upsert_node("n1");
  register_device("d1", "n1");
  auto router = start_router(config());
  ASSERT_TRUE(wait_for([&] { return router->ready(); }));
  redis_->kill();
  std::vector<bus::v1::PushRequest> rs;
  for (int i = 0; i < 10; ++i) rs.push_back(unicast("m" + std::to_string(i), "d1", 60));
  push_all(rs);
  ASSERT_TRUE(wait_for([&] { return router->stats().store_retries > 0; }));
  EXPECT_FALSE(router->ready());
  EXPECT_EQ(router->stats().completed, 0u);
  redis_->restart();
  // The restarted server is empty: the device is offline now, so the
  // messages go to the offline store.
  ASSERT_TRUE(wait_for([&] { return router->stats().completed == 10; }, 20s));
  EXPECT_TRUE(wait_for([&] { return router->ready(); }));
  EXPECT_EQ(count(kOffline, kOfflinePartitions), 10);
}

}  // namespace
}  // namespace pushgw::online_router::testing
