#include "status_store/redis_keys.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "common/redis/slot.h"

namespace pushgw::status_store {
namespace {

using redis::key_slot;

TEST(RedisKeys, Schema) {
  RedisKeys k;
  EXPECT_EQ(k.device("app", "dev"), "pgw:d:{app:dev}");
  EXPECT_EQ(k.epoch("app", "dev"), "pgw:e:{app:dev}");
  EXPECT_EQ(k.seq("app", "dev"), "pgw:q:{app:dev}");
  EXPECT_EQ(k.user("app", "u1"), "pgw:u:{app:u1}");
  EXPECT_EQ(k.nodes_info(), "pgw:{nodes}:info");
  EXPECT_EQ(k.nodes_expiry(), "pgw:{nodes}:exp");
  EXPECT_EQ(k.topic("app", "news:eu"), "pgw:t:{app:news:eu}");
  EXPECT_EQ(k.node_topics("node-1"), "pgw:nt:{node-1}");
  EXPECT_EQ(k.counters("m-1"), "pgw:m:{m-1}");
  EXPECT_EQ(k.idempotency("app", "req"), "pgw:i:{app:req}");
  EXPECT_EQ(RedisKeys("x").device("a", "b"), "x:d:{a:b}");
}

TEST(RedisKeys, PiecesConcatenateToTheKey) {
  auto join = [](const RedisKeys::KeyPieces& p) {
    std::string s;
    for (auto piece : p) s.append(piece);
    return s;
  };
  for (std::string prefix : {"pgw", "x"}) {
    RedisKeys k(prefix);
    for (std::string id : {"dev", "d", "a:b", "device-with-}-brace"}) {
      EXPECT_EQ(join(k.device_pieces("app", id)), k.device("app", id)) << id;
      EXPECT_EQ(join(k.seq_pieces("app", id)), k.seq("app", id)) << id;
      EXPECT_EQ(join(k.counters_pieces(id)), k.counters(id)) << id;
    }
  }
}

TEST(RedisKeys, KeysOfOneScriptShareASlot) {
  RedisKeys k("pfx");
  for (std::string dev : {"d1", "device-with-}-brace", "{odd}", "x{y}z", "日本"}) {
    const auto slot = key_slot(k.device("app", dev));
    EXPECT_EQ(key_slot(k.epoch("app", dev)), slot) << dev;
    EXPECT_EQ(key_slot(k.seq("app", dev)), slot) << dev;
  }
  EXPECT_EQ(key_slot(k.nodes_info()), key_slot(k.nodes_expiry()));
  // Distinct devices still have distinct keys even when a brace truncates the tag.
  EXPECT_NE(k.device("app", "a}1"), k.device("app", "a}2"));
  // Keys of different devices spread over slots.
  EXPECT_NE(key_slot(k.device("app", "d1")), key_slot(k.device("app", "d2")));
}

TEST(RedisKeys, AppIdsCannotForgeAnotherAppsKeys) {
  // "a:b" + "c" would collide with "a" + "b:c"; app ids with ':' are refused.
  EXPECT_FALSE(validate_app_id("a:b"));
  EXPECT_TRUE(validate_app_id("a"));
  EXPECT_TRUE(validate_id("b:c"));
}

TEST(RedisKeys, Validation) {
  EXPECT_TRUE(validate_app_id("my-app_1.prod"));
  for (std::string bad : {std::string(), std::string("a b"), std::string("a{b"), std::string("a}b"),
                          std::string("a\nb"), std::string(65, 'a')}) {
    EXPECT_FALSE(validate_app_id(bad)) << bad;
  }
  EXPECT_TRUE(validate_node_id("node-1.example:7000"));
  for (std::string bad : {"", "n{1}", "n 1", "n\t1"}) EXPECT_FALSE(validate_node_id(bad)) << bad;
  EXPECT_TRUE(validate_id("device with spaces and {braces}"));
  EXPECT_FALSE(validate_id(""));
  EXPECT_FALSE(validate_id("a\nb"));
  EXPECT_FALSE(validate_id(std::string(257, 'x')));
  EXPECT_TRUE(validate_id(std::string(256, 'x')));
  EXPECT_TRUE(validate_user_id(""));
  EXPECT_FALSE(validate_user_id("u\x01"));
  EXPECT_TRUE(validate_prefix("pgw-test"));
  EXPECT_FALSE(validate_prefix("p{x}"));
  EXPECT_FALSE(validate_prefix(""));
  EXPECT_THROW(RedisKeys("bad{prefix"), std::invalid_argument);
}

}  // namespace
}  // namespace pushgw::status_store
