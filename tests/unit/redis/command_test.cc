#include "common/redis/command.h"

#include <gtest/gtest.h>

#include "common/redis/config.h"
#include "common/redis/slot.h"

namespace pushgw::redis {
namespace {

TEST(Slot, Crc16MatchesXmodemCheckValue) { EXPECT_EQ(crc16("123456789"), 0x31C3); }

TEST(Slot, KnownSlotsFromRedis) {
  // Values from CLUSTER KEYSLOT on redis-server 7.
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("bar"), 5061);
  EXPECT_EQ(key_slot("hello"), 866);
  EXPECT_EQ(key_slot("{user1000}.following"), 3443);
  EXPECT_EQ(key_slot("pgw:d:{app1:dev1}"), 8242);
  EXPECT_EQ(key_slot(""), 0);
}

TEST(Slot, HashTagRule) {
  EXPECT_EQ(hash_tag("{user1000}.following"), "user1000");
  EXPECT_EQ(hash_tag("foo{bar}{zap}"), "bar");
  EXPECT_EQ(hash_tag("foo{{bar}}zap"), "{bar");
  EXPECT_EQ(hash_tag("foo{}{bar}"), "foo{}{bar}");  // empty tag: whole key
  EXPECT_EQ(hash_tag("foo{bar"), "foo{bar");        // unterminated: whole key
  EXPECT_EQ(hash_tag("plain"), "plain");
  EXPECT_EQ(key_slot("a{x}b"), key_slot("c{x}d"));
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
  EXPECT_EQ(key_slot("{x}"), key_slot("x"));
}

TEST(CommandTest, ArgumentsAndRendering) {
  Command c{"HSET", "k"};
  c.arg("f").arg(42);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0], "HSET");
  EXPECT_EQ(c[3], "42");
  EXPECT_EQ(c.to_string(), "HSET k f 42");
  EXPECT_TRUE(Command{}.empty());
}

TEST(CommandTest, RoutingKey) {
  EXPECT_EQ(Command({"GET", "k"}).key(), "k");
  EXPECT_EQ(Command({"get", "k"}).key(), "k");
  EXPECT_EQ(Command({"HMGET", "h", "a", "b"}).key(), "h");
  EXPECT_FALSE(Command({"PING"}).key());
  EXPECT_FALSE(Command({"cluster", "slots"}).key());
  EXPECT_FALSE(Command({"SCRIPT", "LOAD", "return 1"}).key());
  EXPECT_EQ(Command({"EVAL", "return 1", "2", "k1", "k2", "a"}).key(), "k1");
  EXPECT_FALSE(Command({"EVAL", "return 1", "0", "a"}).key());
  EXPECT_FALSE(Command({"GET"}).key());
}

TEST(CommandTest, EvalshaAndScriptLoad) {
  Script s("return 1");
  EXPECT_EQ(s.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  auto c = Command::evalsha(s, 1);
  c.arg("key").arg("arg");
  EXPECT_EQ(c.to_string(), "EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 1 key arg");
  EXPECT_EQ(c.key(), "key");
  ASSERT_TRUE(c.script());
  EXPECT_EQ(*c.script(), s);
  EXPECT_EQ(s.load_command().to_string(), "SCRIPT LOAD return 1");
  EXPECT_FALSE(s.load_command().key());
  EXPECT_FALSE(Command({"GET", "x"}).script());
}

TEST(Config, ParseEndpoint) {
  auto a = parse_endpoint("redis://127.0.0.1:6380");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 6380);
  auto b = parse_endpoint("example.org");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->port, 6379);
  auto c = parse_endpoint("[::1]:7000");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->to_string(), "[::1]:7000");
  for (auto bad : {"", "redis://", "h:0", "h:70000", "h:x", "user@h:1", "h:1/db", ":1", "a:b:c"}) {
    EXPECT_FALSE(parse_endpoint(bad)) << bad;
  }
}

TEST(Config, ParseClientUri) {
  auto s = ClientConfig::parse("redis://localhost:7001");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->mode, ClientConfig::Mode::standalone);
  ASSERT_EQ(s->nodes.size(), 1u);
  EXPECT_EQ(s->nodes[0].port, 7001);
  auto c = ClientConfig::parse("redis-cluster://a:1,b:2,c:3");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->mode, ClientConfig::Mode::cluster);
  ASSERT_EQ(c->nodes.size(), 3u);
  EXPECT_EQ(c->nodes[2], (Endpoint{"c", 3}));
  EXPECT_FALSE(ClientConfig::parse("http://a:1"));
  EXPECT_FALSE(ClientConfig::parse("redis-cluster://"));
  EXPECT_FALSE(ClientConfig::parse("redis-cluster://a:1,,b:2"));
}

}  // namespace
}  // namespace pushgw::redis
