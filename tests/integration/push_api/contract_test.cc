// Contract tests: the push API of push-api.md over real HTTP, against a
// running push-api with a real redis-server and the Kafka mock cluster.
// Records are read back from the brokers, not from the code under test.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "api_fixture.h"
#include "common/auth/crypto.h"

namespace pushgw::push_api::testing {
namespace {

namespace json = boost::json;

std::string str(const json::value& v, std::string_view key) {
  const auto* o = v.if_object();
  if (o == nullptr || !o->contains(key) || !o->at(key).is_string()) return "<missing>";
  return std::string(o->at(key).as_string());
}

int64_t num(const json::value& v, std::string_view key) {
  const auto* o = v.if_object();
  if (o == nullptr || !o->contains(key)) return -1;
  const auto& x = o->at(key);
  if (x.is_int64()) return x.as_int64();
  if (x.is_uint64()) return static_cast<int64_t>(x.as_uint64());
  return -1;
}

using PushApi = PushApiTest;

TEST_F(PushApi, DevicePushIsOneRecordPerDeviceAckedBeforeThe202) {
  const auto r =
      push(R"({"to":{"device_ids":["d1","d2","d1"]},"payload":"hello","collapse_key":"order-42"})");
  ASSERT_EQ(r.status, 202) << r.body;
  const auto body = r.json();
  const std::string id = str(body, "message_id");
  EXPECT_EQ(id.size(), 28u);
  EXPECT_EQ(num(body, "targets"), 2);
  ASSERT_EQ(body.as_object().size(), 2u) << r.body;

  // The 202 came after the delivery reports: the brokers hold both records now.
  EXPECT_EQ(produced("pushgw.push.normal"), 2);
  auto recs = records("pushgw.push.normal", 2);
  ASSERT_EQ(recs.size(), 2u);
  std::set<std::string> keys;
  for (const auto& rec : recs) {
    keys.insert(rec.key);
    const auto p = decode(rec);
    EXPECT_EQ(p.schema_version(), 1u);
    EXPECT_EQ(p.message_id(), id);
    EXPECT_EQ(p.app_id(), "demo");
    EXPECT_EQ(rec.key, "demo/" + p.device_id());
    EXPECT_EQ(p.payload(), "hello");
    EXPECT_EQ(p.traffic_class(), v1::NORMAL);
    EXPECT_EQ(p.ttl_s(), 86400u);
    EXPECT_EQ(p.collapse_key(), "order-42");
    EXPECT_TRUE(p.topic().empty());
    EXPECT_FALSE(p.broadcast());
    EXPECT_GT(p.created_ms(), 1'600'000'000'000ULL);
    EXPECT_EQ(p.expires_ms(), p.created_ms() + 86'400'000ULL);
    // The counters hash was created first, with at least ttl + 1 h: the
    // record says until when, so routers need not set its TTL again.
    EXPECT_GE(p.counters_expire_ms() + 1000, p.created_ms() + 90'000'000ULL);
    EXPECT_LE(p.counters_expire_ms(), p.created_ms() + 90'000'000ULL);
    EXPECT_EQ(p.targets(), 2u) << "the message's device count, for the routers' counters";
  }
  EXPECT_EQ(keys, (std::set<std::string>{"demo/d1", "demo/d2"}));
  EXPECT_EQ(produced("pushgw.push.marketing"), 0);
  EXPECT_EQ(produced("pushgw.fanout.normal"), 0);
}

TEST_F(PushApi, Base64PayloadMarketingClassAndTtlZero) {
  const std::string raw("\x00\x01\xff binary", 10);
  const auto r = push(R"({"to":{"device_ids":["d1"]},"payload_b64":")" + auth::base64_encode(raw) +
                      R"(","class":"marketing","ttl_s":0})");
  ASSERT_EQ(r.status, 202) << r.body;
  auto recs = records("pushgw.push.marketing", 1);
  ASSERT_EQ(recs.size(), 1u);
  const auto p = decode(recs[0]);
  EXPECT_EQ(p.payload(), raw);
  EXPECT_EQ(p.traffic_class(), v1::MARKETING);
  EXPECT_EQ(p.ttl_s(), 0u);
  EXPECT_EQ(p.expires_ms(), p.created_ms());
  EXPECT_EQ(produced("pushgw.push.normal"), 0);
}

TEST_F(PushApi, UserPushReachesKnownDevicesWithTtlAndOnlineOnesWithout) {
  online("demo", "phone", "alice");
  const auto tablet = online("demo", "tablet", "alice");
  online("demo", "laptop", "bob");
  online("other", "phone2", "alice");  // another app's alice
  ASSERT_TRUE(store(store_->unregister_device("demo", "tablet", tablet.epoch)));

  auto r = push(R"({"to":{"user_ids":["alice"]},"payload":"x","ttl_s":600})");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(num(r.json(), "targets"), 2);
  auto recs = records("pushgw.push.normal", 2);
  ASSERT_EQ(recs.size(), 2u);
  std::set<std::string> keys;
  for (const auto& rec : recs) {
    keys.insert(rec.key);
    EXPECT_EQ(decode(rec).user_id(), "alice");
  }
  EXPECT_EQ(keys, (std::set<std::string>{"demo/phone", "demo/tablet"}));

  // ttl 0 = online only: the offline tablet is not a target.
  r = push(R"({"to":{"user_ids":["alice","bob","nobody"]},"payload":"x","ttl_s":0})");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(num(r.json(), "targets"), 2);
  recs = records("pushgw.push.normal", 4);
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[2].key, "demo/phone");
  EXPECT_EQ(recs[3].key, "demo/laptop");
  EXPECT_EQ(decode(recs[3]).user_id(), "bob");

  // A user without devices: accepted, nothing to send.
  r = push(R"({"to":{"user_ids":["nobody"]},"payload":"x"})");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(num(r.json(), "targets"), 0);
  EXPECT_EQ(produced("pushgw.push.normal"), 4);
}

TEST_F(PushApi, TopicAndBroadcastAreOneFanoutRecordKeyedByMessageId) {
  ASSERT_TRUE(store(store_->topic_add("demo", "news", "n1", 3)));
  ASSERT_TRUE(store(store_->topic_add("demo", "news", "n2", 2)));
  ASSERT_TRUE(store(store_->topic_add("other", "news", "n1", 7)));
  online("demo", "a");
  online("demo", "b");
  online("other", "c");

  auto r = push(R"({"to":{"topic":"news"},"payload":"t"})");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(num(r.json(), "targets"), 5);
  const std::string topic_id = str(r.json(), "message_id");
  r = push(R"({"to":{"broadcast":true},"payload":"b","class":"marketing"})");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(num(r.json(), "targets"), 2);
  const std::string broadcast_id = str(r.json(), "message_id");

  auto recs = records("pushgw.fanout.normal", 1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].key, topic_id);
  auto p = decode(recs[0]);
  EXPECT_EQ(p.topic(), "news");
  EXPECT_FALSE(p.broadcast());
  EXPECT_TRUE(p.device_id().empty());
  EXPECT_EQ(p.targets(), 0u) << "fanned out by the routers: not known here";
  recs = records("pushgw.fanout.marketing", 1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].key, broadcast_id);
  p = decode(recs[0]);
  EXPECT_TRUE(p.broadcast());
  EXPECT_EQ(p.app_id(), "demo");
  EXPECT_EQ(produced("pushgw.push.normal"), 0);
}

TEST_F(PushApi, InvalidBodiesAre400WithTheErrorBody) {
  const std::vector<std::string> bad = {
      "{not json",
      "[]",
      R"({"to":{"device_ids":["d1"]}})",                                     // neither payload
      R"({"to":{"device_ids":["d1"]},"payload":"a","payload_b64":"YQ=="})",  // both
      R"({"to":{"device_ids":[]},"payload":"a"})",                           // empty list
      R"({"to":{"device_ids":["bad id"]},"payload":"a"})",                   // bad id
      R"({"to":{"device_ids":"d1"},"payload":"a"})",                         // wrong type
      R"({"to":{"device_ids":[1]},"payload":"a"})",
      R"({"to":{"user_ids":[]},"payload":"a"})",
      R"({"to":{"topic":"no spaces"},"payload":"a"})",
      R"({"to":{"broadcast":false},"payload":"a"})",
      R"({"to":{"device_ids":["d1"],"topic":"t"},"payload":"a"})",  // two targets
      R"({"to":{},"payload":"a"})",
      R"({"payload":"a"})",
      R"({"to":{"device_ids":["d1"]},"payload":7})",
      R"({"to":{"device_ids":["d1"]},"payload_b64":"***"})",
      R"({"to":{"device_ids":["d1"]},"payload":"a","class":"bulk"})",
      R"({"to":{"device_ids":["d1"]},"payload":"a","ttl_s":-1})",
      R"({"to":{"device_ids":["d1"]},"payload":"a","ttl_s":2592001})",
      R"({"to":{"device_ids":["d1"]},"payload":"a","ttl_s":"60"})",
      R"({"to":{"device_ids":["d1"]},"payload":"a","unknown":1})",
      R"({"to":{"device_ids":["d1"]},"payload":"a","x":[[[[[[[[[[[[1]]]]]]]]]]]]})",
      "",
  };
  for (const auto& body : bad) {
    const auto r = push(body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    EXPECT_EQ(r.error_code(), "invalid_argument") << body << " -> " << r.body;
  }
  std::string ids = R"({"to":{"device_ids":[)";
  for (int i = 0; i < 1001; ++i) ids += (i ? ",\"d" : "\"d") + std::to_string(i) + "\"";
  auto r = push(ids + R"(]},"payload":"a"})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.error_code(), "invalid_argument");
  std::string users = R"({"to":{"user_ids":[)";
  for (int i = 0; i < 101; ++i) users += (i ? ",\"u" : "\"u") + std::to_string(i) + "\"";
  r = push(users + R"(]},"payload":"a"})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(produced("pushgw.push.normal"), 0);

  // The limits themselves pass.
  ids = R"({"to":{"device_ids":[)";
  for (int i = 0; i < 1000; ++i) ids += (i ? ",\"d" : "\"d") + std::to_string(i) + "\"";
  r = push(ids + R"(]},"payload":"a"})");
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(num(r.json(), "targets"), 1000);
  EXPECT_EQ(produced("pushgw.push.normal"), 1000);
}

TEST_F(PushApi, OversizedPayloadIs413) {
  auto r = push(R"({"to":{"device_ids":["d1"]},"payload":")" + std::string(4097, 'x') + "\"}");
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_EQ(r.error_code(), "payload_too_large");
  r = push(R"({"to":{"device_ids":["d1"]},"payload_b64":")" +
           auth::base64_encode(std::string(4097, 'x')) + "\"}");
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_EQ(r.error_code(), "payload_too_large");
  // Exactly the limit is fine.
  r = push(R"({"to":{"device_ids":["d1"]},"payload_b64":")" +
           auth::base64_encode(std::string(4096, 'x')) + "\"}");
  EXPECT_EQ(r.status, 202) << r.body;

  // Beyond the hard body limit: refused before the body is read, connection closed.
  Connection c(port_);
  ASSERT_TRUE(c.connected());
  const std::string big(cfg_.limits.max_body_bytes + 1, ' ');
  ASSERT_TRUE(c.send(build_request("POST", "/v1/push", big, as("demo"))));
  const auto big_r = c.read();
  EXPECT_EQ(big_r.status, 413);
  EXPECT_EQ(big_r.error_code(), "payload_too_large");
  EXPECT_EQ(produced("pushgw.push.normal"), 1);
}

TEST_F(PushApi, SigningFailuresAre401) {
  const std::string body = R"({"to":{"device_ids":["d1"]},"payload":"a"})";
  auto expect_401 = [&](const HttpResult& r, const char* what) {
    EXPECT_EQ(r.status, 401) << what << ": " << r.body;
    EXPECT_EQ(r.error_code(), "unauthenticated") << what;
  };
  Signing s = as("demo");
  s.timestamp = unix_now() - 301;
  expect_401(request("POST", "/v1/push", body, s), "stale timestamp");
  s.timestamp = unix_now() + 301;
  expect_401(request("POST", "/v1/push", body, s), "future timestamp");
  s = as("demo");
  s.signed_body = R"({"to":{"device_ids":["d2"]},"payload":"a"})";
  expect_401(request("POST", "/v1/push", body, s), "tampered body");
  s = as("demo");
  s.signed_target = "/v1/devices/d1";
  expect_401(request("GET", "/v1/devices/d2", "", s), "tampered path");
  s = as("demo");
  s.signed_target = "/v1/stats?x=1";
  expect_401(request("GET", "/v1/stats?x=2", "", s), "tampered query");
  expect_401(request("POST", "/v1/push", body, signer("nope", "demo-api-secret")), "unknown app");
  expect_401(request("POST", "/v1/push", body, signer("demo", "other-api-secret")),
             "another app's secret");
  s = as("demo");
  s.omit_signature = true;
  expect_401(request("POST", "/v1/push", body, s), "missing signature");
  expect_401(request("POST", "/v1/push", body, std::nullopt), "no headers");
  expect_401(request("GET", "/v1/stats", "", std::nullopt), "unsigned stats");
  expect_401(request("GET", "/v1/devices/d1", "", std::nullopt), "unsigned device");
  expect_401(request("GET", "/v1/messages/m1", "", std::nullopt), "unsigned message");
  expect_401(request("GET", "/v1/users/u/devices", "", std::nullopt), "unsigned user");
  expect_401(request("POST", "/v1/push", body, std::nullopt,
                     {"X-App-Id: demo", "X-Timestamp: soon", "X-Signature: 00"}),
             "non-numeric timestamp");
  EXPECT_EQ(produced("pushgw.push.normal"), 0);

  // Within the window (both directions) is fine.
  s = as("demo");
  s.timestamp = unix_now() - 250;
  EXPECT_EQ(request("POST", "/v1/push", body, s).status, 202);
  s.timestamp = unix_now() + 250;
  EXPECT_EQ(request("POST", "/v1/push", body, s).status, 202);
}

TEST_F(PushApi, UnknownPathIs404AndWrongMethod405) {
  auto r = get("/v1/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.error_code(), "not_found");
  r = request("GET", "/v2/push", "", std::nullopt);
  EXPECT_EQ(r.status, 404);
  r = get("/v1/push");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.error_code(), "method_not_allowed");
  EXPECT_EQ(r.headers["allow"], "POST");
  r = request("DELETE", "/v1/devices/d1", "", as("demo"));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "GET");
  r = request("POST", "/v1/dispatch?app_id=demo&device_id=d", "{}", std::nullopt);
  EXPECT_EQ(r.status, 405);
}

TEST_F(PushApi, DeviceAndUserStatusAreAppScoped) {
  online("demo", "d1", "alice", "node-a");
  online("demo", "d2", "alice", "node-b");
  online("other", "d9", "alice");

  auto r = get("/v1/devices/d1");
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = r.json();
  EXPECT_EQ(str(v, "device_id"), "d1");
  EXPECT_TRUE(v.at("online").as_bool());
  EXPECT_EQ(str(v, "node_id"), "node-a");
  EXPECT_EQ(str(v, "platform"), "android");
  EXPECT_EQ(str(v, "user_id"), "alice");
  EXPECT_EQ(num(v, "connected_at_ms"), 1'700'000'000'000LL);
  EXPECT_GT(num(v, "last_seen_ms"), 0);

  // The same id seen by another app: not visible.
  r = get("/v1/devices/d1", "other");
  ASSERT_EQ(r.status, 200) << r.body;
  v = r.json();
  EXPECT_FALSE(v.at("online").as_bool());
  EXPECT_FALSE(v.as_object().contains("node_id"));

  r = get("/v1/devices/never-seen");
  ASSERT_EQ(r.status, 200);
  EXPECT_FALSE(r.json().at("online").as_bool());
  r = get("/v1/devices/bad%20id");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.error_code(), "invalid_argument");

  r = get("/v1/users/alice/devices");
  ASSERT_EQ(r.status, 200) << r.body;
  v = r.json();
  EXPECT_EQ(str(v, "user_id"), "alice");
  const auto& devices = v.at("devices").as_array();
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(str(devices[0], "device_id"), "d1");
  EXPECT_EQ(str(devices[1], "node_id"), "node-b");
  EXPECT_TRUE(devices[1].at("online").as_bool());

  r = get("/v1/users/alice/devices", "other");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.json().at("devices").as_array().size(), 1u);
  EXPECT_EQ(str(r.json().at("devices").as_array()[0], "device_id"), "d9");
  r = get("/v1/users/nobody/devices");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.json().at("devices").as_array().empty());
  // User ids may hold characters that need escaping in a path.
  online("demo", "d5", "mail@example.com");
  r = get("/v1/users/mail%40example.com/devices");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(str(r.json(), "user_id"), "mail@example.com");
  EXPECT_EQ(r.json().at("devices").as_array().size(), 1u);
}

TEST_F(PushApi, MessageCountersAreVisibleToTheirAppOnly) {
  auto r = push(R"({"to":{"device_ids":["a","b","c"]},"payload":"x","class":"marketing"})");
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id = str(r.json(), "message_id");
  // Another component reports progress.
  std::vector<std::pair<std::string, int64_t>> deltas{{"delivered", 2}, {"acked", 1}};
  ASSERT_TRUE(store(store_->incr_counters(id, deltas, 60s)));

  r = get("/v1/messages/" + id);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto v = r.json();
  EXPECT_EQ(str(v, "message_id"), id);
  EXPECT_EQ(str(v, "class"), "marketing");
  EXPECT_EQ(num(v, "targets"), 3);
  EXPECT_EQ(num(v, "delivered"), 2);
  EXPECT_EQ(num(v, "acked"), 1);
  EXPECT_EQ(num(v, "stored"), 0);
  EXPECT_EQ(num(v, "expired"), 0);
  EXPECT_EQ(v.as_object().size(), 7u) << r.body;

  r = get("/v1/messages/" + id, "other");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(r.error_code(), "not_found");
  r = get("/v1/messages/0123456789abcdef");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.error_code(), "not_found");

  // The counters live at least 24 h.
  const auto ttl = std::stoll(redis_.command({"PTTL", "pgw:m:{" + id + "}"}));
  EXPECT_GE(ttl, 86'400'000LL);
}

TEST_F(PushApi, StatsListsNodesAndTheAppsOnlineDevices) {
  status_store::NodeInfo n1;
  n1.node_id = "node-1";
  n1.endpoints = {"10.0.0.1:7000", "10.0.0.1:7443", "", ""};
  n1.connections = 12;
  ASSERT_TRUE(store(store_->upsert_node(n1, 30s)));
  status_store::NodeInfo n2 = n1;
  n2.node_id = "node-2";
  n2.draining = true;
  ASSERT_TRUE(store(store_->upsert_node(n2, 30s)));
  online("demo", "a");
  online("demo", "b");
  online("other", "c");

  auto r = get("/v1/stats");
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = r.json();
  EXPECT_EQ(num(v, "online_devices"), 2);
  const auto& nodes = v.at("nodes").as_array();
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(str(nodes[0], "node_id"), "node-1");
  EXPECT_EQ(num(nodes[0], "connections"), 12);
  EXPECT_FALSE(nodes[0].at("draining").as_bool());
  EXPECT_EQ(str(nodes[0].at("endpoints"), "tls"), "10.0.0.1:7443");
  EXPECT_TRUE(nodes[1].at("draining").as_bool());
  r = get("/v1/stats", "other");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(num(r.json(), "online_devices"), 1);
}

TEST_F(PushApi, DispatchListsLiveNodesLeastLoadedFirstUnsigned) {
  auto node = [&](std::string id, uint64_t conns, bool draining) {
    status_store::NodeInfo n;
    n.node_id = id;
    n.endpoints = {id + ":7000", id + ":7443", id + ":7080", id + ":7444"};
    n.connections = conns;
    n.draining = draining;
    EXPECT_TRUE(store(store_->upsert_node(n, 30s)));
  };
  node("busy", 500, false);
  node("idle", 10, false);
  node("leaving", 0, true);
  node("idle2", 10, false);

  auto r = request("GET", "/v1/dispatch?app_id=demo&device_id=dev-1", "", std::nullopt);
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = r.json();
  EXPECT_EQ(num(v, "ttl_s"), 300);
  const auto& eps = v.at("endpoints").as_array();
  ASSERT_EQ(eps.size(), 3u) << r.body;
  std::set<std::string> first_two{str(eps[0], "node_id"), str(eps[1], "node_id")};
  EXPECT_EQ(first_two, (std::set<std::string>{"idle", "idle2"}));
  EXPECT_EQ(str(eps[2], "node_id"), "busy");
  EXPECT_EQ(str(eps[2], "tcp"), "busy:7000");
  EXPECT_EQ(str(eps[2], "wss"), "busy:7444");

  // Equal load: devices spread over both idle nodes.
  std::map<std::string, int> firsts;
  for (int i = 0; i < 40; ++i) {
    r = request("GET", "/v1/dispatch?app_id=demo&device_id=dev-" + std::to_string(i), "",
                std::nullopt);
    ASSERT_EQ(r.status, 200);
    ++firsts[str(r.json().at("endpoints").as_array()[0], "node_id")];
  }
  EXPECT_GE(firsts["idle"], 8);
  EXPECT_GE(firsts["idle2"], 8);

  r = request("GET", "/v1/dispatch?app_id=demo", "", std::nullopt);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.error_code(), "invalid_argument");
  r = request("GET", "/v1/dispatch?app_id=nope&device_id=d", "", std::nullopt);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.error_code(), "not_found");
}

TEST_F(PushApi, IdempotencyKeyReturnsTheSameAnswerAndProducesOnce) {
  const std::string body =
      R"({"to":{"device_ids":["d1"]},"payload":"once","idempotency_key":"k-123"})";
  const auto first = push(body);
  ASSERT_EQ(first.status, 202) << first.body;
  const auto second = push(body);
  ASSERT_EQ(second.status, 202) << second.body;
  EXPECT_EQ(second.body, first.body);
  EXPECT_EQ(produced("pushgw.push.normal"), 1);

  // Keys are per app: the same key from another app is another push.
  const auto other = push(body, "other");
  ASSERT_EQ(other.status, 202);
  EXPECT_NE(str(other.json(), "message_id"), str(first.json(), "message_id"));
  EXPECT_EQ(produced("pushgw.push.normal"), 2);

  // Concurrent duplicates: one push, one answer for all.
  const std::string racing =
      R"({"to":{"device_ids":["d1","d2"]},"payload":"race","idempotency_key":"k-race"})";
  std::vector<std::thread> threads;
  std::vector<HttpResult> results(6);
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = push(racing); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(r.body, results[0].body);
  }
  EXPECT_EQ(produced("pushgw.push.normal"), 4);
  auto recs = records("pushgw.push.normal", 4);
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(decode(recs[0]).message_id(), str(first.json(), "message_id"));
  EXPECT_EQ(decode(recs[2]).message_id(), str(results[0].json(), "message_id"));
}

TEST_F(PushApi, QuotaExhaustionIs429WithRetryAfterWhileTheOtherClassPasses) {
  const std::string marketing = R"({"to":{"device_ids":["d1"]},"payload":"m","class":"marketing"})";
  const std::string normal = R"({"to":{"device_ids":["d1"]},"payload":"n"})";
  EXPECT_EQ(push(marketing, "limited").status, 202);
  EXPECT_EQ(push(marketing, "limited").status, 202);
  const auto refused = push(marketing, "limited");
  ASSERT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(refused.error_code(), "rate_limited");
  ASSERT_TRUE(refused.headers.count("retry-after"));
  EXPECT_GE(std::stoi(refused.headers.at("retry-after")), 1);
  EXPECT_EQ(produced("pushgw.push.marketing"), 2);

  for (int i = 0; i < 5; ++i) EXPECT_EQ(push(normal, "limited").status, 202);
  // Another app's marketing budget is its own.
  EXPECT_EQ(push(marketing, "demo").status, 202);
  EXPECT_EQ(push(marketing, "limited").status, 429);
}

TEST_F(PushApi, BrokersDownIs503AndNothingIsProduced) {
  // Warm up: the producer knows the cluster.
  ASSERT_EQ(push(R"({"to":{"device_ids":["d0"]},"payload":"w"})").status, 202);
  kafka_.set_broker_down(1);
  const auto start = std::chrono::steady_clock::now();
  const auto r = push(R"({"to":{"device_ids":["d1","d2"]},"payload":"lost",
                          "idempotency_key":"k-down"})");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.error_code(), "unavailable");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 6s);
  const auto ready = request("GET", "/readyz", "", std::nullopt);
  EXPECT_EQ(ready.status, 503) << ready.body;

  kafka_.set_broker_up(1);
  EXPECT_EQ(produced("pushgw.push.normal"), 1);
  ASSERT_TRUE(wait_ready());
  // The key was released: the retry is accepted, under the same message id.
  const auto retry = push(R"({"to":{"device_ids":["d1","d2"]},"payload":"lost",
                              "idempotency_key":"k-down"})");
  ASSERT_EQ(retry.status, 202) << retry.body;
  EXPECT_EQ(produced("pushgw.push.normal"), 3);
  auto recs = records("pushgw.push.normal", 3);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(decode(recs[1]).message_id(), str(retry.json(), "message_id"));
}

TEST_F(PushApi, HealthReadinessAndMetricsOnTheApiPort) {
  auto r = request("GET", "/healthz", "", std::nullopt);
  EXPECT_EQ(r.status, 200);
  r = request("GET", "/readyz", "", std::nullopt);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.json().at("ready").as_bool());
  ASSERT_EQ(push(R"({"to":{"device_ids":["d1"]},"payload":"m"})").status, 202);
  r = request("GET", "/metrics", "", std::nullopt);
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(R"(pushgw_push_api_requests_total{code="202",endpoint="push"} 1)"),
            std::string::npos)
      << r.body.substr(0, 2000);
  EXPECT_NE(r.body.find(R"(pushgw_push_api_pushes_accepted_total{class="normal"} 1)"),
            std::string::npos);
  EXPECT_NE(r.body.find("pushgw_push_api_request_duration_seconds_bucket"), std::string::npos);

  redis_.kill();
  r = request("GET", "/readyz", "", std::nullopt);
  EXPECT_EQ(r.status, 503) << r.body;
  r = get("/v1/devices/d1");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.error_code(), "unavailable");
  r = push(R"({"to":{"device_ids":["d1"]},"payload":"m"})");
  EXPECT_EQ(r.status, 503) << r.body;
}

TEST_F(PushApi, KeepAliveExpectContinueAndHeaderLimits) {
  Connection c(port_);
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send(build_request("GET", "/v1/devices/d1", "", as("demo"))));
    EXPECT_EQ(c.read().status, 200);
  }
  // Expect: 100-continue gets its interim answer before the body is sent.
  const std::string body = R"({"to":{"device_ids":["d1"]},"payload":"e"})";
  std::string req = build_request("POST", "/v1/push", body, as("demo"), {"Expect: 100-continue"});
  ASSERT_TRUE(c.send(req.substr(0, req.size() - body.size())));
  EXPECT_EQ(c.read().status, 100);
  ASSERT_TRUE(c.send(body));
  EXPECT_EQ(c.read().status, 202);

  std::vector<std::string> many;
  for (int i = 0; i < 80; ++i) many.push_back("X-Filler-" + std::to_string(i) + ": 1");
  auto r = request("GET", "/v1/devices/d1", "", as("demo"), many);
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.error_code(), "invalid_argument");
  r = request("GET", "/v1/devices/d1", "", as("demo"), {"X-Big: " + std::string(9000, 'a')});
  EXPECT_EQ(r.status, 431);
}

TEST_F(PushApi, ResponsesFollowTheRequestsHttpVersionAndConnectionHeader) {
  // HTTP/1.0 without keep-alive: a 1.0 answer, then the server closes.
  {
    Connection c(port_, 3s);
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send("GET /healthz HTTP/1.0\r\n\r\n"));
    EXPECT_EQ(c.peek_status_line(), "HTTP/1.0 200 OK");
    const auto r = c.read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "ok\n");
    EXPECT_EQ(r.headers.at("server"), "pushgw-push-api");
    EXPECT_EQ(r.headers.count("connection"), 0u);
    EXPECT_TRUE(c.closed_by_peer());
  }
  // HTTP/1.0 asking for keep-alive gets it, and says so.
  {
    Connection c(port_, 3s);
    ASSERT_TRUE(c.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r = c.read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["connection"], "keep-alive");
    ASSERT_TRUE(c.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    EXPECT_EQ(c.read().status, 200);
  }
  // HTTP/1.1 with Connection: close: answered with Connection: close, then closed.
  {
    Connection c(port_, 3s);
    const std::string body = R"({"to":{"device_ids":["d1"]},"payload":"v"})";
    ASSERT_TRUE(c.send(build_request("POST", "/v1/push", body, as("demo"), {"Connection: close"})));
    EXPECT_EQ(c.peek_status_line(), "HTTP/1.1 202 Accepted");
    auto r = c.read();
    EXPECT_EQ(r.status, 202);
    EXPECT_EQ(r.headers["connection"], "close");
    EXPECT_EQ(r.headers["content-type"], "application/json");
    EXPECT_EQ(r.headers["content-length"], std::to_string(r.body.size()));
    const auto v = boost::json::parse(r.body).as_object();
    EXPECT_EQ(v.at("targets").as_int64(), 1);
    EXPECT_FALSE(v.at("message_id").as_string().empty());
    EXPECT_TRUE(c.closed_by_peer());
  }
}

TEST_F(PushApi, GarbageNeverBreaksTheServer) {
  const std::vector<std::string> junk = {
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n",
      "GET\r\n\r\n",
      "POST /v1/push HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
      "POST /v1/push HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      std::string(100, '\0') + "\r\n\r\n",
  };
  for (const auto& j : junk) {
    Connection c(port_, 3s);
    ASSERT_TRUE(c.connected());
    c.send(j);
    const auto r = c.read();
    if (r.status != 0) {
      EXPECT_EQ(r.status, 400) << r.body;
    }
  }
  // Invalid UTF-8 and NUL bytes inside JSON strings.
  auto r = push(std::string(R"({"to":{"device_ids":["d1"]},"payload":")") + "\xff\xfe" + "\"}");
  EXPECT_EQ(r.status, 400);
  r = push(std::string(R"({"to":{"device_ids":["d)") + std::string(1, '\0') +
           R"("]},"payload":"a"})");
  EXPECT_EQ(r.status, 400);
  // Still serving.
  EXPECT_EQ(push(R"({"to":{"device_ids":["d1"]},"payload":"ok"})").status, 202);
}

}  // namespace
}  // namespace pushgw::push_api::testing
