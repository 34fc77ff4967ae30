// Parsing and validation of POST /v1/push bodies and URL pieces: pure, no I/O.
#include "push_api/push_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/auth/crypto.h"

namespace pushgw::push_api {
namespace {

using ::testing::HasSubstr;

const BodyLimits kLimits{};

PushBody ok(std::string_view body, const BodyLimits& limits = kLimits) {
  auto r = parse_push_body(body, limits);
  if (auto* e = std::get_if<ApiError>(&r)) {
    ADD_FAILURE() << body << " -> " << e->status << " " << e->message;
    return {};
  }
  return std::get<PushBody>(std::move(r));
}

ApiError err(std::string_view body, const BodyLimits& limits = kLimits) {
  auto r = parse_push_body(body, limits);
  if (auto* e = std::get_if<ApiError>(&r)) return *e;
  ADD_FAILURE() << body << " was accepted";
  return {};
}

TEST(PushBody, DeviceTargetWithDefaults) {
  const auto b = ok(R"({"to":{"device_ids":["d1","d2","d1"]},"payload":"hi"})");
  EXPECT_EQ(b.target.kind, TargetKind::kDevices);
  EXPECT_EQ(b.target.ids, (std::vector<std::string>{"d1", "d2"}));  // deduplicated, in order
  EXPECT_EQ(b.payload, "hi");
  EXPECT_EQ(b.traffic_class, TrafficClass::kNormal);
  EXPECT_EQ(b.ttl_s, 86400u);
  EXPECT_TRUE(b.collapse_key.empty());
  EXPECT_TRUE(b.idempotency_key.empty());
}

TEST(PushBody, EveryFieldAndTargetKind) {
  auto b = ok(R"({"to":{"user_ids":["alice","bob@example.com"]},"payload_b64":"AAEC",
                  "class":"marketing","ttl_s":0,"collapse_key":"c","idempotency_key":"k-1"})");
  EXPECT_EQ(b.target.kind, TargetKind::kUsers);
  EXPECT_EQ(b.target.ids.size(), 2u);
  EXPECT_EQ(b.payload, std::string("\x00\x01\x02", 3));
  EXPECT_EQ(b.traffic_class, TrafficClass::kMarketing);
  EXPECT_EQ(b.ttl_s, 0u);
  EXPECT_EQ(b.collapse_key, "c");
  EXPECT_EQ(b.idempotency_key, "k-1");

  b = ok(R"({"to":{"topic":"news.eu"},"payload":"","ttl_s":2592000})");
  EXPECT_EQ(b.target.kind, TargetKind::kTopic);
  EXPECT_EQ(b.target.topic, "news.eu");
  EXPECT_EQ(b.ttl_s, 2592000u);
  EXPECT_TRUE(b.payload.empty());

  b = ok(R"({"to":{"broadcast":true},"payload":"x","ttl_s":60.0,"class":null})");
  EXPECT_EQ(b.target.kind, TargetKind::kBroadcast);
  EXPECT_EQ(b.ttl_s, 60u);
}

TEST(PushBody, MalformedInputIsInvalidArgumentWithAReason) {
  struct Case {
    const char* body;
    const char* reason;
  };
  const Case cases[] = {
      {"", "not valid JSON"},
      {"{\"to\":", "not valid JSON"},
      {"[1]", "must be a JSON object"},
      {"\"x\"", "must be a JSON object"},
      {R"({"payload":"a"})", "to is required"},
      {R"({"to":{"device_ids":["d"]}})", "exactly one of payload"},
      {R"({"to":{"device_ids":["d"]},"payload":"a","payload_b64":"YQ=="})", "exactly one"},
      {R"({"to":{"device_ids":["d"]},"payload":null,"payload_b64":null})", "exactly one"},
      {R"({"to":{"device_ids":[]},"payload":"a"})", "must not be empty"},
      {R"({"to":{"device_ids":"d"},"payload":"a"})", "must be an array"},
      {R"({"to":{"device_ids":[true]},"payload":"a"})", "to.device_ids[0] must be a string"},
      {R"({"to":{"device_ids":["ok","no/slash"]},"payload":"a"})", "to.device_ids[1]"},
      {R"({"to":{"user_ids":["a\u0001b"]},"payload":"a"})", "to.user_ids[0]"},
      {R"({"to":{"topic":""},"payload":"a"})", "not a valid topic"},
      {R"({"to":{"topic":5},"payload":"a"})", "to.topic must be a string"},
      {R"({"to":{"broadcast":false},"payload":"a"})", "must be true"},
      {R"({"to":{"broadcast":"yes"},"payload":"a"})", "to.broadcast must be true"},
      {R"({"to":{"everyone":true},"payload":"a"})", "unknown target"},
      {R"({"to":{"topic":"a","broadcast":true},"payload":"a"})", "exactly one of device_ids"},
      {R"({"to":[],"payload":"a"})", "to must be an object"},
      {R"({"to":{"topic":"t"},"payload":1})", "payload must be a string"},
      {R"({"to":{"topic":"t"},"payload_b64":"a"})", "not valid base64"},
      {R"({"to":{"topic":"t"},"payload_b64":"YQ==="})", "not valid base64"},
      {R"({"to":{"topic":"t"},"payload":"a","class":"vip"})", "is not \"normal\""},
      {R"({"to":{"topic":"t"},"payload":"a","class":1})", "class must be"},
      {R"({"to":{"topic":"t"},"payload":"a","ttl_s":-5})", "outside 0..2592000"},
      {R"({"to":{"topic":"t"},"payload":"a","ttl_s":2592001})", "outside"},
      {R"({"to":{"topic":"t"},"payload":"a","ttl_s":1.5})", "ttl_s must be an integer"},
      {R"({"to":{"topic":"t"},"payload":"a","ttl_s":1e300})", "ttl_s must be an integer"},
      {R"({"to":{"topic":"t"},"payload":"a","ttl_s":18446744073709551615})", "outside"},
      {R"({"to":{"topic":"t"},"payload":"a","ttl_s":true})", "ttl_s must be an integer"},
      {R"({"to":{"topic":"t"},"payload":"a","collapse_key":""})", "collapse_key must be"},
      {R"({"to":{"topic":"t"},"payload":"a","idempotency_key":7})", "idempotency_key must be"},
      {R"({"to":{"topic":"t"},"payload":"a","extra":1})", "unknown field 'extra'"},
      {R"({"to":{"topic":"t"},"payload":"a","x":[[[[[[[[[]]]]]]]]]})", "nested deeper"},
  };
  for (const auto& c : cases) {
    const auto e = err(c.body);
    EXPECT_EQ(e.status, 400u) << c.body;
    EXPECT_EQ(e.code, "invalid_argument") << c.body;
    EXPECT_THAT(e.message, HasSubstr(c.reason)) << c.body;
  }
}

TEST(PushBody, InvalidUtf8IsRefused) {
  const std::string body = std::string(R"({"to":{"topic":"t"},"payload":")") + "\xc3\x28" + "\"}";
  EXPECT_EQ(err(body).status, 400u);
}

TEST(PushBody, TargetListLimits) {
  BodyLimits small = kLimits;
  small.max_device_ids = 3;
  small.max_user_ids = 2;
  EXPECT_EQ(ok(R"({"to":{"device_ids":["a","b","c"]},"payload":""})", small).target.ids.size(), 3u);
  auto e = err(R"({"to":{"device_ids":["a","b","c","d"]},"payload":""})", small);
  EXPECT_EQ(e.status, 400u);
  EXPECT_THAT(e.message, HasSubstr("at most 3"));
  e = err(R"({"to":{"user_ids":["a","b","c"]},"payload":""})", small);
  EXPECT_THAT(e.message, HasSubstr("at most 2"));
  // 128-byte ids are the longest allowed.
  EXPECT_EQ(ok(R"({"to":{"device_ids":[")" + std::string(128, 'x') + R"("]},"payload":""})")
                .target.ids[0]
                .size(),
            128u);
  EXPECT_EQ(
      err(R"({"to":{"device_ids":[")" + std::string(129, 'x') + R"("]},"payload":""})").status,
      400u);
}

TEST(PushBody, PayloadLimitIsAfterDecodingAnd413) {
  BodyLimits l = kLimits;
  l.max_payload_bytes = 10;
  EXPECT_EQ(ok(R"({"to":{"topic":"t"},"payload":"0123456789"})", l).payload.size(), 10u);
  auto e = err(R"({"to":{"topic":"t"},"payload":"0123456789a"})", l);
  EXPECT_EQ(e.status, 413u);
  EXPECT_EQ(e.code, "payload_too_large");
  // 10 bytes need 16 base64 characters: at the limit after decoding.
  const std::string ten = auth::base64_encode("0123456789");
  EXPECT_EQ(ten.size(), 16u);
  EXPECT_EQ(ok(R"({"to":{"topic":"t"},"payload_b64":")" + ten + "\"}", l).payload, "0123456789");
  e = err(R"({"to":{"topic":"t"},"payload_b64":")" + auth::base64_encode("0123456789a") + "\"}", l);
  EXPECT_EQ(e.status, 413u);
  e = err(R"({"to":{"topic":"t"},"payload_b64":")" + std::string(4000, 'A') + "\"}", l);
  EXPECT_EQ(e.status, 413u);
}

TEST(PushBody, DepthLimitIsConfigurable) {
  BodyLimits l = kLimits;
  l.max_json_depth = 3;
  EXPECT_EQ(ok(R"({"to":{"device_ids":["d"]},"payload":"a"})", l).target.ids.size(), 1u);
  l.max_json_depth = 2;
  EXPECT_THAT(err(R"({"to":{"device_ids":["d"]},"payload":"a"})", l).message,
              HasSubstr("nested deeper"));
}

TEST(Ids, Rules) {
  EXPECT_TRUE(valid_device_id("a-Z_0.9:x"));
  EXPECT_FALSE(valid_device_id(""));
  EXPECT_FALSE(valid_device_id("a b"));
  EXPECT_FALSE(valid_device_id("a/b"));
  EXPECT_FALSE(valid_device_id(std::string(129, 'a')));
  EXPECT_TRUE(valid_user_id("user@example.com"));
  EXPECT_TRUE(valid_user_id("名前"));
  EXPECT_FALSE(valid_user_id(""));
  EXPECT_FALSE(valid_user_id("a\nb"));
  EXPECT_FALSE(valid_user_id(std::string(257, 'a')));
  EXPECT_TRUE(valid_message_id("0123456789abcdef0123456789ab"));
  EXPECT_FALSE(valid_message_id("../x"));
  EXPECT_TRUE(valid_key(std::string(256, 'k')));
  EXPECT_FALSE(valid_key(std::string(257, 'k')));
}

TEST(Url, PathSegmentsAndQueryParameters) {
  EXPECT_EQ(decode_path_segment("mail%40example.com"), "mail@example.com");
  EXPECT_EQ(decode_path_segment("a%2Fb"), "a/b");
  EXPECT_EQ(decode_path_segment("plain"), "plain");
  EXPECT_EQ(decode_path_segment("bad%4"), std::nullopt);
  EXPECT_EQ(decode_path_segment("bad%"), std::nullopt);
  EXPECT_EQ(decode_path_segment("bad%zz"), std::nullopt);
  EXPECT_EQ(query_param("app_id=demo&device_id=d%3A1", "device_id"), "d:1");
  EXPECT_EQ(query_param("app_id=demo&device_id=d", "app_id"), "demo");
  EXPECT_EQ(query_param("a=x+y", "a"), "x y");
  EXPECT_EQ(query_param("a=", "a"), "");
  EXPECT_EQ(query_param("a", "a"), "");
  EXPECT_EQ(query_param("b=1", "a"), std::nullopt);
  EXPECT_EQ(query_param("", "a"), std::nullopt);
  EXPECT_EQ(query_param("a=%zz", "a"), std::nullopt);
}

TEST(ErrorBody, SpecShapeAndEscaping) {
  EXPECT_EQ(error_body("invalid_argument", "bad \"x\"\n"),
            R"({"error":{"code":"invalid_argument","message":"bad \"x\"\n"}})");
  const auto r = error_response(payload_too_large("big"));
  EXPECT_EQ(r.status, 413u);
  EXPECT_EQ(r.content_type, "application/json");
}

}  // namespace
}  // namespace pushgw::push_api
