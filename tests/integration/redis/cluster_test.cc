// Cluster client against a real 3-master Redis Cluster: discovery from one
// seed, per-node pipelines, MOVED and ASK during a live slot migration,
// scripts on every node.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <set>

#include "co_test.h"
#include "common/redis/client.h"
#include "common/redis/slot.h"
#include "testsupport/redis_server.h"

namespace pushgw::redis {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::run_co;

class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new testsupport::RedisCluster(3); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void TearDown() override {
    client_.reset();
    test::settle(io_);
  }
  Client* connect(const std::string& url) {
    auto cfg = ClientConfig::parse(url);
    EXPECT_TRUE(cfg);
    auto c = make_client(io_.get_executor(), *cfg);
    EXPECT_TRUE(c);
    client_ = std::move(*c);
    return client_.get();
  }
  /// A hash tag ("<prefix><n>") whose slot is owned by node `owner`.
  static std::string tag_on(std::size_t owner, const std::string& prefix) {
    for (int i = 0; i < 1000; ++i) {
      auto t = prefix + std::to_string(i);
      if (cluster_->owner_of(key_slot(t)) == owner) return t;
    }
    throw std::runtime_error("no tag found for node " + std::to_string(owner));
  }

  static testsupport::RedisCluster* cluster_;
  asio::io_context io_;
  std::unique_ptr<Client> client_;
};

testsupport::RedisCluster* ClusterTest::cluster_ = nullptr;

asio::awaitable<void> spread_keys(Client* c, std::string prefix) {
  CO_ASSERT_TRUE(co_await c->connect());
  std::vector<Command> sets;
  for (int i = 0; i < 300; ++i) {
    sets.push_back(Command{"SET", prefix + std::to_string(i), "v" + std::to_string(i)});
  }
  auto r = co_await c->exec_pipeline(std::move(sets));
  for (auto& x : r) CO_ASSERT_TRUE(x && x->str() == "OK");
  std::vector<Command> gets;
  for (int i = 299; i >= 0; --i) gets.push_back(Command{"GET", prefix + std::to_string(i)});
  auto g = co_await c->exec_pipeline(std::move(gets));
  for (int i = 0; i < 300; ++i) {
    CO_ASSERT_TRUE(g[static_cast<std::size_t>(i)]);
    EXPECT_EQ(g[static_cast<std::size_t>(i)]->str(), "v" + std::to_string(299 - i));
  }
  Command ping{"PING"};
  auto p = co_await c->exec(std::move(ping));
  EXPECT_TRUE(p && p->str() == "PONG");
}

TEST_F(ClusterTest, OneSeedDiscoversAllNodesAndPipelinesAcrossThem) {
  auto* c = connect(cluster_->url_with_one_seed(1));
  run_co(io_, spread_keys(c, "spread:"));
  // Keys really live on their owners (the client did not just talk to the seed).
  std::set<std::size_t> owners;
  for (int i = 0; i < 300; ++i) {
    auto k = "spread:" + std::to_string(i);
    auto owner = cluster_->owner_of(key_slot(k));
    owners.insert(owner);
    if (i % 37 == 0) {
      EXPECT_EQ(cluster_->node(owner).command({"GET", k}), "v" + std::to_string(i));
    }
  }
  EXPECT_EQ(owners.size(), 3u);
  EXPECT_EQ(c->stats().moved, 0u);
}

// exec_buffer() on a cluster: decoded and routed per key like exec_pipeline().
asio::awaitable<void> buffer_across_nodes(Client* c) {
  CommandBuffer sets;
  for (int i = 0; i < 300; ++i) {
    sets.begin(3).arg("SET").arg_concat({"buf:", std::to_string(i)}).arg("v" + std::to_string(i));
  }
  auto r = co_await c->exec_buffer(std::move(sets));
  CO_ASSERT_EQ(r.size(), 300u);
  for (auto& x : r) CO_ASSERT_TRUE(x && x->str() == "OK");
  CommandBuffer gets;
  for (int i = 299; i >= 0; --i) gets.begin(2).arg("GET").arg("buf:" + std::to_string(i));
  auto g = co_await c->exec_buffer(std::move(gets));
  CO_ASSERT_EQ(g.size(), 300u);
  for (int i = 0; i < 300; ++i) {
    CO_ASSERT_TRUE(g[static_cast<std::size_t>(i)]);
    EXPECT_EQ(g[static_cast<std::size_t>(i)]->str(), "v" + std::to_string(299 - i));
  }
}

TEST_F(ClusterTest, EncodedBuffersAreRoutedPerKey) {
  auto* c = connect(cluster_->url_with_one_seed(0));
  run_co(io_, buffer_across_nodes(c));
  std::set<std::size_t> owners;
  for (int i = 0; i < 300; ++i) owners.insert(cluster_->owner_of(key_slot("buf:" + std::to_string(i))));
  EXPECT_EQ(owners.size(), 3u);
}

asio::awaitable<void> set_key(Client* c, std::string k, std::string v) {
  Command set{"SET", k, v};
  auto r = co_await c->exec(std::move(set));
  CO_ASSERT_TRUE(r);
  EXPECT_EQ(r->str(), "OK") << r->to_string();
}

asio::awaitable<void> get_key(Client* c, std::string k, std::string expected) {
  Command get{"GET", k};
  auto r = co_await c->exec(std::move(get));
  CO_ASSERT_TRUE(r);
  EXPECT_EQ(*r, Reply::bulk(expected)) << r->to_string();
}

asio::awaitable<void> pipelined_gets(Client* c, std::vector<std::string> keys,
                                     std::vector<std::string> expected) {
  std::vector<Command> cmds;
  for (auto& k : keys) cmds.push_back(Command{"GET", k});
  auto r = co_await c->exec_pipeline(std::move(cmds));
  for (std::size_t i = 0; i < keys.size(); ++i) {
    CO_ASSERT_TRUE(r[i]);
    EXPECT_EQ(*r[i], Reply::bulk(expected[i])) << keys[i];
  }
}

TEST_F(ClusterTest, FollowsAskDuringMigrationAndMovedAfterIt) {
  auto* c = connect(cluster_->url());
  const std::string tag = tag_on(0, "mig");
  const std::string old_key = "{" + tag + "}old";  // same tag -> same slot
  const std::uint16_t slot = key_slot(old_key);
  const std::size_t src = cluster_->owner_of(slot);
  const std::size_t dst = (src + 1) % 3;
  run_co(io_, set_key(c, old_key, "before"));

  auto& source = cluster_->node(src);
  auto& target = cluster_->node(dst);
  auto slot_s = std::to_string(slot);
  ASSERT_EQ(target.command({"CLUSTER", "SETSLOT", slot_s, "IMPORTING", cluster_->node_id(src)}),
            "OK");
  ASSERT_EQ(source.command({"CLUSTER", "SETSLOT", slot_s, "MIGRATING", cluster_->node_id(dst)}),
            "OK");

  // A key of that slot that does not exist on the source yet: the source
  // answers ASK, the client must send ASKING + the command to the target.
  const std::string new_key = "{" + tag + "}new";
  ASSERT_EQ(key_slot(new_key), slot);
  run_co(io_, set_key(c, new_key, "asked"));
  EXPECT_GE(c->stats().ask, 1u);
  // The new key was written on the target (the source has none in that slot).
  EXPECT_EQ(target.command({"CLUSTER", "COUNTKEYSINSLOT", slot_s}), "1");
  // The old key still lives on the source and is served there.
  run_co(io_, get_key(c, old_key, "before"));

  // Finish the migration: move the key, then assign the slot everywhere.
  auto migrate = source.command(
      {"MIGRATE", "127.0.0.1", std::to_string(target.port()), "", "0", "5000", "KEYS", old_key});
  ASSERT_EQ(migrate, "OK");
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(
        cluster_->node(i).command({"CLUSTER", "SETSLOT", slot_s, "NODE", cluster_->node_id(dst)}),
        "OK");
  }
  // The client's map still points at the source: it gets MOVED and follows it.
  const auto moved_before = c->stats().moved;
  run_co(io_, get_key(c, old_key, "before"));
  run_co(io_, pipelined_gets(c, {new_key, old_key}, {"asked", "before"}));
  EXPECT_GE(c->stats().moved, moved_before + 1);
  EXPECT_EQ(target.command({"CLUSTER", "COUNTKEYSINSLOT", slot_s}), "2");
  cluster_->wait_consistent();
}

asio::awaitable<void> scripts_everywhere(Client* c) {
  Script s("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  std::vector<Command> cmds;
  for (int i = 0; i < 30; ++i) {
    auto cmd = Command::evalsha(s, 1);
    cmd.arg("script:" + std::to_string(i)).arg(i);
    cmds.push_back(std::move(cmd));
  }
  auto r = co_await c->exec_pipeline(cmds);
  for (int i = 0; i < 30; ++i) {
    CO_ASSERT_TRUE(r[static_cast<std::size_t>(i)]);
    EXPECT_EQ(r[static_cast<std::size_t>(i)]->integer(), i)
        << r[static_cast<std::size_t>(i)]->to_string();
  }
  auto again = co_await c->exec_pipeline(std::move(cmds));
  for (int i = 0; i < 30; ++i) {
    CO_ASSERT_TRUE(again[static_cast<std::size_t>(i)]);
    EXPECT_EQ(again[static_cast<std::size_t>(i)]->integer(), 2 * i);
  }
}

TEST_F(ClusterTest, ScriptsAreLoadedPerNodeOnNoscript) {
  for (std::size_t i = 0; i < 3; ++i) cluster_->node(i).command({"SCRIPT", "FLUSH"});
  auto* c = connect(cluster_->url());
  run_co(io_, scripts_everywhere(c));
  // One SCRIPT LOAD per node (the 30 keys span all three nodes).
  EXPECT_EQ(c->stats().noscript, 3u);
}

asio::awaitable<void> cross_slot(Client* c) {
  Command mget{"MGET", "a", "b"};
  auto r = co_await c->exec(std::move(mget));
  CO_ASSERT_TRUE(r);
  EXPECT_TRUE(r->error_is("CROSSSLOT")) << r->to_string();
}

TEST_F(ClusterTest, CrossSlotCommandsReturnTheServerError) {
  auto* c = connect(cluster_->url());
  run_co(io_, cross_slot(c));
}

}  // namespace
}  // namespace pushgw::redis
