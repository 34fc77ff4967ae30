// RedisStatusStore against real Redis: every test runs on a standalone
// redis-server; the ones instantiated for "Cluster" also run on a 3-master
// Redis Cluster (keys spread over all nodes).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <set>

#include "../redis/co_test.h"
#include "status_store/redis_status_store.h"
#include "testsupport/redis_server.h"

namespace pushgw::status_store {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::run_co;

enum class Mode { standalone, cluster };

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::string mode_name(const ::testing::TestParamInfo<Mode>& info) {
  return info.param == Mode::standalone ? "Standalone" : "Cluster";
}

class StoreTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    std::string url;
    if (GetParam() == Mode::cluster) {
      cluster_ = std::make_unique<testsupport::RedisCluster>(3);
      url = cluster_->url_with_one_seed(0);
    } else {
      server_ = std::make_unique<testsupport::RedisServer>();
      url = server_->url();
    }
    RedisStatusStoreOptions opts;
    opts.key_prefix =
        "t" +
        std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()).substr(0, 20);
    for (auto& ch : opts.key_prefix) {
      if (ch == '/' || ch == '{' || ch == '}') ch = '_';
    }
    auto s = make_redis_status_store(io_.get_executor(), url, opts);
    ASSERT_TRUE(s) << s.error().message();
    store_ = std::move(*s);
    ASSERT_TRUE(run_co(io_, store_->ping()));
  }
  void TearDown() override {
    store_.reset();
    test::settle(io_);
  }

  template <class T>
  T run(asio::awaitable<T> aw, std::chrono::milliseconds timeout = 20s) {
    return run_co(io_, std::move(aw), timeout);
  }

  static DeviceRegistration reg(std::string device, std::string node, std::string user = {}) {
    DeviceRegistration r;
    r.app_id = "app1";
    r.device_id = std::move(device);
    r.node_id = std::move(node);
    r.session_id = "s-" + r.node_id;
    r.platform = "android";
    r.user_id = std::move(user);
    r.connected_at_ms = 1'700'000'000'123ULL;
    return r;
  }

  /// Registers `n` devices "<prefix><i>", 500 at a time; returns their epochs.
  std::vector<std::uint64_t> register_many(const std::string& prefix, int n,
                                           const std::string& node, Lease lease = 60s,
                                           const std::string& user = {}) {
    std::vector<std::uint64_t> epochs(static_cast<std::size_t>(n), 0);
    int done = 0, failed = 0, started = 0;
    std::string first_error;
    auto deadline = Clock::now() + 60s;
    io_.restart();
    while (done < n && Clock::now() < deadline) {
      while (started < n && started - done < 500) {
        const int i = started++;
        asio::co_spawn(io_,
                       store_->register_device(reg(prefix + std::to_string(i), node, user), lease),
                       [&, i](std::exception_ptr e, result<Registered> r) {
                         ++done;
                         if (e || !r) {
                           if (!failed++ && !e) first_error = r.error().message();
                         } else {
                           epochs[static_cast<std::size_t>(i)] = r->epoch;
                         }
                       });
      }
      io_.run_one_for(1s);
    }
    EXPECT_EQ(done, n);
    EXPECT_EQ(failed, 0) << first_error;
    return epochs;
  }

  std::unique_ptr<testsupport::RedisServer> server_;
  std::unique_ptr<testsupport::RedisCluster> cluster_;
  asio::io_context io_;
  std::unique_ptr<RedisStatusStore> store_;
};

using StandaloneStoreTest = StoreTest;

TEST_P(StoreTest, RegisterLookupUnregister) {
  auto r = run(store_->register_device(reg("d1", "node-a", "alice"), 30s));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_GE(r->epoch, 1u);
  EXPECT_FALSE(r->previous);

  auto found = run(store_->lookup("app1", {"d1", "d2"}));
  ASSERT_TRUE(found) << found.error().message();
  ASSERT_EQ(found->size(), 2u);
  ASSERT_TRUE((*found)[0]);
  const auto& st = *(*found)[0];
  EXPECT_EQ(st.node_id, "node-a");
  EXPECT_EQ(st.epoch, r->epoch);
  EXPECT_EQ(st.session_id, "s-node-a");
  EXPECT_EQ(st.platform, "android");
  EXPECT_EQ(st.user_id, "alice");
  EXPECT_EQ(st.connected_at_ms, 1'700'000'000'123ULL);
  EXPECT_GT(st.last_seen_ms, 1'600'000'000'000ULL);
  EXPECT_FALSE((*found)[1]);

  auto other_app = run(store_->lookup("app2", {"d1"}));
  ASSERT_TRUE(other_app);
  EXPECT_FALSE((*other_app)[0]);

  auto un = run(store_->unregister_device("app1", "d1", r->epoch));
  ASSERT_TRUE(un) << un.error().message();
  EXPECT_TRUE(*un);
  auto gone = run(store_->lookup("app1", {"d1"}));
  ASSERT_TRUE(gone);
  EXPECT_FALSE((*gone)[0]);
  auto again = run(store_->unregister_device("app1", "d1", r->epoch));
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  auto users = run(store_->user_devices("app1", "alice"));
  ASSERT_TRUE(users);
  EXPECT_TRUE(users->empty());
}

TEST_P(StoreTest, NewestRegistrationWinsAndStaleNodesAreFenced) {
  auto a = run(store_->register_device(reg("dev", "node-a"), 30s));
  ASSERT_TRUE(a);
  auto b = run(store_->register_device(reg("dev", "node-b"), 30s));
  ASSERT_TRUE(b);
  EXPECT_GT(b->epoch, a->epoch);
  ASSERT_TRUE(b->previous);
  EXPECT_EQ(b->previous->node_id, "node-a");
  EXPECT_EQ(b->previous->session_id, "s-node-a");
  EXPECT_EQ(b->previous->epoch, a->epoch);

  // The old node can neither remove, nor restore, nor extend its registration.
  auto un = run(store_->unregister_device("app1", "dev", a->epoch));
  ASSERT_FALSE(un);
  EXPECT_EQ(un.error(), make_error_code(errc::stale_epoch));
  auto re = run(store_->reregister_device(reg("dev", "node-a"), a->epoch, 30s));
  ASSERT_FALSE(re);
  EXPECT_EQ(re.error(), make_error_code(errc::stale_epoch));
  auto refresh =
      run(store_->refresh_leases("node-a", {LeaseRef{"app1", "dev", a->epoch, {}}}, 30s));
  ASSERT_TRUE(refresh);
  EXPECT_EQ((*refresh)[0], LeaseState::stale);
  auto wrong_node =
      run(store_->refresh_leases("node-a", {LeaseRef{"app1", "dev", b->epoch, {}}}, 30s));
  ASSERT_TRUE(wrong_node);
  EXPECT_EQ((*wrong_node)[0], LeaseState::stale);

  auto now = run(store_->lookup("app1", {"dev"}));
  ASSERT_TRUE(now && (*now)[0]);
  EXPECT_EQ((*now)[0]->node_id, "node-b");
  EXPECT_EQ((*now)[0]->epoch, b->epoch);

  // Once the newer registration is gone, the older epoch is still stale.
  ASSERT_TRUE(run(store_->unregister_device("app1", "dev", b->epoch)));
  auto late = run(store_->reregister_device(reg("dev", "node-a"), a->epoch, 30s));
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error(), make_error_code(errc::stale_epoch));
  auto late_un = run(store_->unregister_device("app1", "dev", a->epoch));
  ASSERT_FALSE(late_un);
  EXPECT_EQ(late_un.error(), make_error_code(errc::stale_epoch));
  // The newest holder may restore its registration under the same epoch.
  auto restored = run(store_->reregister_device(reg("dev", "node-b"), b->epoch, 30s));
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_EQ(restored->epoch, b->epoch);
  auto after = run(store_->lookup("app1", {"dev"}));
  ASSERT_TRUE(after && (*after)[0]);
  EXPECT_EQ((*after)[0]->node_id, "node-b");
  // A fresh registration still gets a larger epoch.
  auto c = run(store_->register_device(reg("dev", "node-c"), 30s));
  ASSERT_TRUE(c);
  EXPECT_GT(c->epoch, b->epoch);
}

TEST_P(StoreTest, ConcurrentRegistrationsGetDistinctEpochsAndTheLastOneWins) {
  constexpr int kNodes = 40;
  std::vector<result<Registered>> results(kNodes, errc::timeout);
  int done = 0;
  for (int i = 0; i < kNodes; ++i) {
    asio::co_spawn(io_, store_->register_device(reg("contended", "node-" + std::to_string(i)), 30s),
                   [&, i](std::exception_ptr, result<Registered> r) {
                     results[static_cast<std::size_t>(i)] = std::move(r);
                     ++done;
                   });
  }
  auto deadline = Clock::now() + 10s;
  while (done < kNodes && Clock::now() < deadline) io_.run_one_for(1s);
  ASSERT_EQ(done, kNodes);
  std::set<std::uint64_t> epochs;
  std::uint64_t max_epoch = 0;
  int winner = -1;
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(results[static_cast<std::size_t>(i)]);
    auto e = results[static_cast<std::size_t>(i)]->epoch;
    epochs.insert(e);
    if (e > max_epoch) {
      max_epoch = e;
      winner = i;
    }
  }
  EXPECT_EQ(epochs.size(), static_cast<std::size_t>(kNodes));
  auto now = run(store_->lookup("app1", {"contended"}));
  ASSERT_TRUE(now && (*now)[0]);
  EXPECT_EQ((*now)[0]->epoch, max_epoch);
  EXPECT_EQ((*now)[0]->node_id, "node-" + std::to_string(winner));
}

TEST_P(StoreTest, LeaseExpiryMakesTheDeviceOfflineAndRefreshKeepsItOnline) {
  auto kept = run(store_->register_device(reg("kept", "node-a"), 800ms));
  auto lapsed = run(store_->register_device(reg("lapsed", "node-a"), 800ms));
  ASSERT_TRUE(kept && lapsed);
  const auto t0 = Clock::now();
  // Refresh only "kept", every 250 ms, until "lapsed" is offline.
  bool lapsed_offline = false;
  while (Clock::now() - t0 < 4s) {
    auto st =
        run(store_->refresh_leases("node-a", {LeaseRef{"app1", "kept", kept->epoch, {}}}, 800ms));
    ASSERT_TRUE(st);
    EXPECT_EQ((*st)[0], LeaseState::refreshed);
    auto found = run(store_->lookup("app1", {"kept", "lapsed"}));
    ASSERT_TRUE(found);
    EXPECT_TRUE((*found)[0]) << "refreshed device went offline";
    if (!(*found)[1]) {
      lapsed_offline = true;
      break;
    }
    io_.restart();
    io_.run_for(250ms);
  }
  ASSERT_TRUE(lapsed_offline);
  EXPECT_GE(Clock::now() - t0, 600ms);
  EXPECT_LT(Clock::now() - t0, 2500ms);

  // The lapsed node learns its registration is missing and restores it.
  auto st =
      run(store_->refresh_leases("node-a", {LeaseRef{"app1", "lapsed", lapsed->epoch, {}}}, 5s));
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)[0], LeaseState::missing);
  auto back = run(store_->reregister_device(reg("lapsed", "node-a"), lapsed->epoch, 5s));
  ASSERT_TRUE(back) << back.error().message();
  auto found = run(store_->lookup("app1", {"lapsed"}));
  ASSERT_TRUE(found && (*found)[0]);
  EXPECT_EQ((*found)[0]->epoch, lapsed->epoch);
}

TEST_P(StoreTest, BatchLookupOfTenThousandDevices) {
  constexpr int kDevices = 10000;
  auto epochs = register_many("bulk-", kDevices, "node-z");
  std::vector<std::string> ids;
  for (int i = 0; i < kDevices; ++i) ids.push_back("bulk-" + std::to_string(i));
  for (int i = 0; i < 50; ++i) ids.push_back("unknown-" + std::to_string(i));
  const auto requests_before = store_->client().stats().requests;
  const auto t0 = Clock::now();
  auto found = run(store_->lookup("app1", ids));
  const auto took = Clock::now() - t0;
  EXPECT_LE(store_->client().stats().requests - requests_before,
            GetParam() == Mode::cluster ? 3u : 1u);
  ASSERT_TRUE(found) << found.error().message();
  ASSERT_EQ(found->size(), ids.size());
  for (int i = 0; i < kDevices; ++i) {
    const auto& s = (*found)[static_cast<std::size_t>(i)];
    ASSERT_TRUE(s) << ids[static_cast<std::size_t>(i)];
    ASSERT_EQ(s->node_id, "node-z");
    ASSERT_EQ(s->epoch, epochs[static_cast<std::size_t>(i)]) << ids[static_cast<std::size_t>(i)];
  }
  for (std::size_t i = kDevices; i < ids.size(); ++i) EXPECT_FALSE((*found)[i]);
  // Generous bound (debug + sanitizers); the benchmark measures the real rate.
  EXPECT_LT(took, 3s);

  // Refreshing all of them is one batch too; each entry is epoch-checked.
  std::vector<LeaseRef> leases;
  for (int i = 0; i < kDevices; ++i) {
    leases.push_back(LeaseRef{
        "app1", ids[static_cast<std::size_t>(i)], epochs[static_cast<std::size_t>(i)], {}});
  }
  leases[7].epoch += 1000;  // not ours
  // Warm-up: the first use of the script on a node costs a SCRIPT LOAD round
  // trip (30 devices cover every cluster node).
  ASSERT_TRUE(run(store_->refresh_leases(
      "node-z", std::vector<LeaseRef>(leases.begin() + 10, leases.begin() + 40), 60s)));
  const auto before = store_->client().stats().requests;
  auto states = run(store_->refresh_leases("node-z", leases, 60s));
  ASSERT_TRUE(states);
  // One pipelined request per Redis node, not one per device.
  EXPECT_LE(store_->client().stats().requests - before, GetParam() == Mode::cluster ? 3u : 1u);
  for (int i = 0; i < kDevices; ++i) {
    ASSERT_EQ((*states)[static_cast<std::size_t>(i)],
              i == 7 ? LeaseState::stale : LeaseState::refreshed)
        << i;
  }
}

TEST_P(StoreTest, UserDevicesFollowRegistrations) {
  auto d1 = run(store_->register_device(reg("phone", "n1", "alice"), 30s));
  auto d2 = run(store_->register_device(reg("tablet", "n2", "alice"), 30s));
  auto d3 = run(store_->register_device(reg("laptop", "n1", "bob"), 30s));
  ASSERT_TRUE(d1 && d2 && d3);
  auto alice = run(store_->user_devices("app1", "alice"));
  ASSERT_TRUE(alice) << alice.error().message();
  EXPECT_EQ(*alice, (std::vector<std::string>{"phone", "tablet"}));

  ASSERT_TRUE(run(store_->unregister_device("app1", "phone", d1->epoch)));
  alice = run(store_->user_devices("app1", "alice"));
  ASSERT_TRUE(alice);
  EXPECT_EQ(*alice, (std::vector<std::string>{"tablet"}));

  // The tablet is now logged in as bob: it moves from alice to bob.
  auto moved = run(store_->register_device(reg("tablet", "n3", "bob"), 30s));
  ASSERT_TRUE(moved);
  alice = run(store_->user_devices("app1", "alice"));
  ASSERT_TRUE(alice);
  EXPECT_TRUE(alice->empty());
  auto bob = run(store_->user_devices("app1", "bob"));
  ASSERT_TRUE(bob);
  EXPECT_EQ(*bob, (std::vector<std::string>{"laptop", "tablet"}));

  // A device whose lease lapsed drops out of its user's list.
  ASSERT_TRUE(run(store_->register_device(reg("watch", "n1", "carol"), 300ms)));
  auto carol = run(store_->user_devices("app1", "carol"));
  ASSERT_TRUE(carol);
  EXPECT_EQ(*carol, (std::vector<std::string>{"watch"}));
  auto deadline = Clock::now() + 3s;
  while (Clock::now() < deadline) {
    carol = run(store_->user_devices("app1", "carol"));
    ASSERT_TRUE(carol);
    if (carol->empty()) break;
    io_.restart();
    io_.run_for(100ms);
  }
  EXPECT_TRUE(carol->empty());
}

TEST_P(StoreTest, TopicSubscriberCountsPerNode) {
  auto add = [&](const std::string& topic, const std::string& node, std::int64_t d) {
    auto r = run(store_->topic_add("app1", topic, node, d));
    EXPECT_TRUE(r) << r.error().message();
    return r ? *r : -1;
  };
  EXPECT_EQ(add("news", "n1", 3), 3);
  EXPECT_EQ(add("news", "n2", 1), 1);
  EXPECT_EQ(add("news", "n1", -1), 2);
  EXPECT_EQ(add("sport", "n1", 5), 5);
  EXPECT_EQ(add("sport", "n3", 1), 1);
  auto news = run(store_->topic_nodes("app1", "news"));
  ASSERT_TRUE(news);
  EXPECT_EQ(*news, (std::map<std::string, std::int64_t>{{"n1", 2}, {"n2", 1}}));
  EXPECT_EQ(add("news", "n2", -1), 0);  // count reaching 0 removes the node
  EXPECT_EQ(add("news", "n4", -1), 0);  // never below zero, never listed
  news = run(store_->topic_nodes("app1", "news"));
  ASSERT_TRUE(news);
  EXPECT_EQ(*news, (std::map<std::string, std::int64_t>{{"n1", 2}}));

  // A dead node's entries go away in one call.
  auto cleared = run(store_->clear_node_topics("n1"));
  ASSERT_TRUE(cleared) << cleared.error().message();
  EXPECT_EQ(*cleared, 2u);
  news = run(store_->topic_nodes("app1", "news"));
  auto sport = run(store_->topic_nodes("app1", "sport"));
  ASSERT_TRUE(news && sport);
  EXPECT_TRUE(news->empty());
  EXPECT_EQ(*sport, (std::map<std::string, std::int64_t>{{"n3", 1}}));
  auto none = run(store_->clear_node_topics("n1"));
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0u);
  auto empty = run(store_->topic_nodes("app1", "nobody"));
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST_P(StoreTest, SeqCountersAndIdempotency) {
  // A new counter starts at the time-based seed (so a counter lost with
  // Redis restarts above every seq it handed out), then counts by one.
  const std::uint64_t floor = counter_seed(wall_ms() - 1000);
  auto first_seq = run(store_->next_seq("app1", "seqdev"));
  ASSERT_TRUE(first_seq);
  EXPECT_GT(*first_seq, floor);
  EXPECT_LE(*first_seq, counter_seed(wall_ms() + 1000) + 1);
  for (std::uint64_t k = 1; k <= 2; ++k) {
    auto s = run(store_->next_seq("app1", "seqdev"));
    ASSERT_TRUE(s);
    EXPECT_EQ(*s, *first_seq + k);
  }
  std::vector<DeviceRef> many;
  for (int i = 0; i < 200; ++i) many.push_back(DeviceRef{"app1", "sq" + std::to_string(i)});
  std::vector<std::uint64_t> base;
  for (std::uint64_t round = 0; round < 2; ++round) {
    auto seqs = run(store_->next_seqs(many));
    ASSERT_TRUE(seqs);
    ASSERT_EQ(seqs->size(), many.size());
    if (round == 0) base = *seqs;
    for (std::size_t i = 0; i < seqs->size(); ++i) {
      EXPECT_GT((*seqs)[i], floor);
      EXPECT_EQ((*seqs)[i], base[i] + round);
    }
  }
  // Several seqs of one new device in one pipeline stay in order, all above
  // the seed (not 2, 3, ... after a seeded first one).
  std::vector<DeviceRef> repeated(5, DeviceRef{"app1", "burst"});
  repeated.insert(repeated.begin() + 2, DeviceRef{"app1", "other-burst"});
  auto burst = run(store_->next_seqs(repeated));
  ASSERT_TRUE(burst);
  ASSERT_EQ(burst->size(), repeated.size());
  std::vector<std::uint64_t> of_burst;
  for (std::size_t i = 0; i < repeated.size(); ++i) {
    EXPECT_GT((*burst)[i], floor) << i;
    if (repeated[i].device_id == "burst") of_burst.push_back((*burst)[i]);
  }
  for (std::size_t i = 1; i < of_burst.size(); ++i) EXPECT_EQ(of_burst[i], of_burst[i - 1] + 1);
  // resolve(): status and seq in one pipeline, the seq taken only when asked.
  auto resolved = run(store_->resolve({{"app1", "burst", true}, {"app1", "nobody-here", false}}));
  ASSERT_TRUE(resolved) << resolved.error().message();
  ASSERT_EQ(resolved->size(), 2u);
  EXPECT_FALSE((*resolved)[0].route.has_value());
  EXPECT_EQ((*resolved)[0].seq, of_burst.back() + 1);
  EXPECT_EQ((*resolved)[1].seq, 0u);
  // An online device: its node, epoch and connect time, as lookup() says;
  // a malformed record reads as offline.
  auto online = run(store_->register_device(reg("resolved-dev", "node-r"), 30s));
  ASSERT_TRUE(online) << online.error().message();
  ASSERT_TRUE(run(store_->client().exec(
      redis::Command{"SET", store_->keys().device("app1", "garbled"), "1\nx\nnode"})));
  resolved = run(store_->resolve(
      {{"app1", "resolved-dev", true}, {"app1", "garbled", false}, {"app1", "resolved-dev", false}}));
  ASSERT_TRUE(resolved) << resolved.error().message();
  ASSERT_EQ(resolved->size(), 3u);
  auto looked = run(store_->lookup("app1", {"resolved-dev"}));
  ASSERT_TRUE(looked && looked->size() == 1 && (*looked)[0]);
  ASSERT_TRUE((*resolved)[0].route.has_value());
  EXPECT_EQ((*resolved)[0].route->node_id, "node-r");
  EXPECT_EQ((*resolved)[0].route->epoch, online->epoch);
  EXPECT_EQ((*resolved)[0].route->connected_at_ms, (*looked)[0]->connected_at_ms);
  EXPECT_GT((*resolved)[0].seq, 0u);
  EXPECT_FALSE((*resolved)[1].route.has_value());
  ASSERT_TRUE((*resolved)[2].route.has_value());
  EXPECT_EQ((*resolved)[2].route->node_id, "node-r");
  EXPECT_EQ((*resolved)[2].seq, 0u);
  // The default implementation (lookup() + next_seqs(), for test doubles)
  // gives the same routes.
  auto by_default = run(store_->StatusStore::resolve(
      {{"app1", "resolved-dev", false}, {"app1", "garbled", false}, {"app1", "nobody-here", false}}));
  ASSERT_TRUE(by_default) << by_default.error().message();
  ASSERT_EQ(by_default->size(), 3u);
  ASSERT_TRUE((*by_default)[0].route.has_value());
  EXPECT_EQ((*by_default)[0].route->node_id, "node-r");
  EXPECT_EQ((*by_default)[0].route->epoch, online->epoch);
  EXPECT_EQ((*by_default)[0].route->connected_at_ms, (*looked)[0]->connected_at_ms);
  EXPECT_FALSE((*by_default)[1].route.has_value());
  EXPECT_FALSE((*by_default)[2].route.has_value());

  auto c1 = run(store_->incr_counters("msg-1", {{"targets", 10}, {"routed", 3}}, 60s));
  ASSERT_TRUE(c1) << c1.error().message();
  EXPECT_EQ(*c1, (std::map<std::string, std::int64_t>{{"routed", 3}, {"targets", 10}}));
  // The ttl is set on a new hash and only ever extended.
  auto pttl = [&](const std::string& id) {
    auto r = run(store_->client().exec(redis::Command{"PTTL", store_->keys().counters(id)}));
    return r && r->to_int() ? *r->to_int() : -3;
  };
  EXPECT_GT(pttl("msg-1"), 50'000);
  EXPECT_LE(pttl("msg-1"), 60'000);
  ASSERT_TRUE(run(store_->incr_counters("msg-ttl", {{"targets", 1}}, 3'600s)));
  ASSERT_TRUE(run(store_->incr_counters("msg-ttl", {{"acked", 1}}, 10s)));
  EXPECT_GT(pttl("msg-ttl"), 3'000'000) << "a shorter ttl never shortens it";
  ASSERT_TRUE(run(store_->incr_counters("msg-ttl", {{"acked", 1}}, 7'200s)));
  EXPECT_GT(pttl("msg-ttl"), 7'000'000) << "a longer one extends it";
  auto c2 = run(store_->incr_counters("msg-1", {{"routed", 2}, {"delivered", 1}}, 60s));
  ASSERT_TRUE(c2);
  EXPECT_EQ((*c2)["routed"], 5);
  auto all = run(store_->get_counters("msg-1"));
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, (std::map<std::string, std::int64_t>{
                      {"delivered", 1}, {"routed", 5}, {"targets", 10}}));
  auto none = run(store_->get_counters("msg-unknown"));
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());

  // start_counters(): sets (not adds) the fields, ttl as incr_counters().
  ASSERT_TRUE(run(store_->start_counters("msg-s", {{"targets", 4}, {"app:a1", 1}}, 600s)));
  ASSERT_TRUE(run(store_->incr_counters("msg-s", {{"routed", 2}}, 60s)));
  ASSERT_TRUE(run(store_->start_counters("msg-s", {{"targets", 4}, {"app:a1", 1}}, 10s)));
  auto started = run(store_->get_counters("msg-s"));
  ASSERT_TRUE(started);
  EXPECT_EQ(*started, (std::map<std::string, std::int64_t>{
                          {"app:a1", 1}, {"routed", 2}, {"targets", 4}}));
  EXPECT_GT(pttl("msg-s"), 500'000) << "a shorter ttl never shortens it";
  ASSERT_TRUE(run(store_->start_counters("msg-s", {{"targets", 4}}, 7'200s)));
  EXPECT_GT(pttl("msg-s"), 7'000'000) << "a longer one extends it";
  EXPECT_EQ(run(store_->start_counters("bad\nid", {{"targets", 1}}, 60s)).error(),
            make_error_code(errc::invalid_argument));
  EXPECT_EQ(run(store_->start_counters("msg-s", {}, 60s)).error(),
            make_error_code(errc::invalid_argument));

  auto first = run(store_->put_idempotency("app1", "req-1", "msg-1", 60s));
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_FALSE(*first);
  auto second = run(store_->put_idempotency("app1", "req-1", "msg-2", 60s));
  ASSERT_TRUE(second);
  ASSERT_TRUE(*second);
  EXPECT_EQ(**second, "msg-1");
  auto other_app = run(store_->put_idempotency("app2", "req-1", "msg-3", 60s));
  ASSERT_TRUE(other_app);
  EXPECT_FALSE(*other_app);
}

TEST_P(StoreTest, NodeRegistryWithLeases) {
  NodeInfo n1{"node-1",       {"10.0.0.1:7000", "10.0.0.1:7443", "", "wss://n1/ws"}, 1200, false, 0,
              "10.0.0.1:9200"};
  NodeInfo n2{"node-2", {"10.0.0.2:7000", "", "", ""}, 5, true, 0, ""};
  ASSERT_TRUE(run(store_->upsert_node(n1, 30s)));
  ASSERT_TRUE(run(store_->upsert_node(n2, 500ms)));
  auto nodes = run(store_->list_nodes());
  ASSERT_TRUE(nodes) << nodes.error().message();
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_EQ((*nodes)[0].node_id, "node-1");
  EXPECT_EQ((*nodes)[0].endpoints, n1.endpoints);
  EXPECT_EQ((*nodes)[0].connections, 1200u);
  EXPECT_FALSE((*nodes)[0].draining);
  EXPECT_EQ((*nodes)[0].admin, "10.0.0.1:9200");
  EXPECT_EQ((*nodes)[1].admin, "") << "the admin address is optional";
  EXPECT_GT((*nodes)[0].lease_expires_ms, (*nodes)[1].lease_expires_ms);
  EXPECT_EQ((*nodes)[1].node_id, "node-2");
  EXPECT_TRUE((*nodes)[1].draining);

  // node-2 is not refreshed: it drops out once its lease runs out.
  auto deadline = Clock::now() + 3s;
  while (Clock::now() < deadline) {
    nodes = run(store_->list_nodes());
    ASSERT_TRUE(nodes);
    if (nodes->size() == 1) break;
    io_.restart();
    io_.run_for(100ms);
  }
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].node_id, "node-1");

  n1.draining = true;
  n1.connections = 7;
  ASSERT_TRUE(run(store_->upsert_node(n1, 30s)));
  nodes = run(store_->list_nodes());
  ASSERT_TRUE(nodes && nodes->size() == 1);
  EXPECT_TRUE((*nodes)[0].draining);
  EXPECT_EQ((*nodes)[0].connections, 7u);
  auto removed = run(store_->remove_node("node-1"));
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  removed = run(store_->remove_node("node-1"));
  ASSERT_TRUE(removed);
  EXPECT_FALSE(*removed);
  nodes = run(store_->list_nodes());
  ASSERT_TRUE(nodes);
  EXPECT_TRUE(nodes->empty());
}

TEST_P(StoreTest, BadInputIsRejectedWithoutTouchingRedis) {
  const auto commands_before = store_->client().stats().commands;
  auto bad_app = reg("d", "n");
  bad_app.app_id = "a:b";
  auto r1 = run(store_->register_device(bad_app, 10s));
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error(), make_error_code(errc::invalid_argument));
  auto r2 = run(store_->register_device(reg("d", "n"), 0ms));
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error(), make_error_code(errc::invalid_argument));
  auto r3 = run(store_->lookup("app1", {"ok", ""}));
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.error(), make_error_code(errc::invalid_argument));
  auto r4 = run(store_->topic_add("app1", "t", "node{x}", 1));
  ASSERT_FALSE(r4);
  EXPECT_EQ(r4.error(), make_error_code(errc::invalid_argument));
  auto r5 = run(store_->reregister_device(reg("d", "n"), 0, 10s));
  ASSERT_FALSE(r5);
  EXPECT_EQ(r5.error(), make_error_code(errc::invalid_argument));
  NodeInfo bad_node{"n", {"a\nb", "", "", ""}, 0, false, 0, ""};
  auto r6 = run(store_->upsert_node(bad_node, 10s));
  ASSERT_FALSE(r6);
  EXPECT_EQ(r6.error(), make_error_code(errc::invalid_argument));
  EXPECT_EQ(store_->client().stats().commands, commands_before);
}

TEST_P(StandaloneStoreTest, UserIndexHealsOnLeaseRefresh) {
  auto d = run(store_->register_device(reg("phone", "n1", "dave"), 30s));
  ASSERT_TRUE(d);
  // Lose the index entry (e.g. the follow-up write failed).
  server_->command({"DEL", store_->keys().user("app1", "dave")});
  auto dave = run(store_->user_devices("app1", "dave"));
  ASSERT_TRUE(dave);
  EXPECT_TRUE(dave->empty());
  auto st = run(store_->refresh_leases("n1", {LeaseRef{"app1", "phone", d->epoch, "dave"}}, 30s));
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)[0], LeaseState::refreshed);
  dave = run(store_->user_devices("app1", "dave"));
  ASSERT_TRUE(dave);
  EXPECT_EQ(*dave, (std::vector<std::string>{"phone"}));
  // A stale refresh never re-adds an entry over a newer one.
  auto d2 = run(store_->register_device(reg("phone", "n2", "dave"), 30s));
  ASSERT_TRUE(d2);
  ASSERT_TRUE(
      run(store_->refresh_leases("n1", {LeaseRef{"app1", "phone", d->epoch, "dave"}}, 30s)));
  EXPECT_EQ(server_->command({"HGET", store_->keys().user("app1", "dave"), "phone"}),
            std::to_string(d2->epoch));
}

TEST_P(StandaloneStoreTest, RedisKilledMidTestErrorsThenRecovers) {
  auto d = run(store_->register_device(reg("dev", "n1"), 30s));
  ASSERT_TRUE(d);
  server_->kill();
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    auto r = run(store_->lookup("app1", {"dev"}), 5s);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error() == make_error_code(errc::unavailable) ||
                r.error() == make_error_code(errc::timeout))
        << r.error().message();
    EXPECT_LT(Clock::now() - t0, 2500ms);
    auto w = run(store_->register_device(reg("dev", "n2"), 30s), 5s);
    ASSERT_FALSE(w);
    auto n = run(store_->list_nodes(), 5s);
    ASSERT_FALSE(n);
  }
  server_->restart();  // no persistence: the data is gone, the service is back
  const auto t0 = Clock::now();
  result<Registered> back = errc::unavailable;
  while (Clock::now() - t0 < 5s) {
    back = run(store_->register_device(reg("dev", "n2"), 30s), 5s);
    if (back) break;
    io_.restart();
    io_.run_for(50ms);
  }
  ASSERT_TRUE(back) << back.error().message();
  auto found = run(store_->lookup("app1", {"dev"}));
  ASSERT_TRUE(found && (*found)[0]);
  EXPECT_EQ((*found)[0]->node_id, "n2");
}

INSTANTIATE_TEST_SUITE_P(Standalone, StoreTest, ::testing::Values(Mode::standalone), mode_name);
INSTANTIATE_TEST_SUITE_P(Cluster, StoreTest, ::testing::Values(Mode::cluster), mode_name);
INSTANTIATE_TEST_SUITE_P(Standalone, StandaloneStoreTest, ::testing::Values(Mode::standalone),
                         mode_name);

}  // namespace
}  // namespace pushgw::status_store
