// RedisStatusStore against a scripted fake redis::Client: what it sends and
// how it reads replies, with an injected clock. No network.
#include "status_store/redis_status_store.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <optional>

namespace pushgw::status_store {
namespace {

namespace asio = boost::asio;
using redis::Command;
using redis::Reply;
using namespace std::chrono_literals;

class FakeClient final : public redis::Client {
 public:
  explicit FakeClient(asio::any_io_executor ex) : ex_(std::move(ex)) {}

  std::function<result<Reply>(const Command&)> respond = [](const Command&) {
    return result<Reply>(Reply::nil());
  };
  std::vector<std::vector<std::string>> sent;

  asio::awaitable<result<void>> connect() override { co_return result<void>{}; }
  asio::awaitable<result<Reply>> exec(Command cmd) override { co_return answer(cmd); }
  asio::awaitable<std::vector<result<Reply>>> exec_pipeline(std::vector<Command> cmds) override {
    std::vector<result<Reply>> out;
    for (const auto& c : cmds) out.push_back(answer(c));
    co_return out;
  }
  redis::ClientStats stats() const override { return {}; }
  asio::any_io_executor executor() const override { return ex_; }
  void close() override {}

 private:
  result<Reply> answer(const Command& c) {
    std::vector<std::string> args;
    for (std::size_t i = 0; i < c.size(); ++i) args.emplace_back(c[i]);
    sent.push_back(args);
    return respond(c);
  }
  asio::any_io_executor ex_;
};

class StoreUnitTest : public ::testing::Test {
 protected:
  StoreUnitTest()
      : fake_(std::make_shared<FakeClient>(io_.get_executor())),
        clock_(1'700'000'000'000ULL),
        store_(fake_, RedisStatusStoreOptions{}, clock_) {}

  template <class T>
  T run(asio::awaitable<T> aw) {
    std::optional<T> out;
    asio::co_spawn(io_, std::move(aw), [&](std::exception_ptr e, T v) {
      if (e) std::rethrow_exception(e);
      out.emplace(std::move(v));
    });
    io_.restart();
    io_.run();
    return std::move(*out);
  }

  static DeviceRegistration reg() {
    return DeviceRegistration{"app", "dev", "node-1", "sess", "ios", "alice", 1'699'999'999'000ULL};
  }

  asio::io_context io_;
  std::shared_ptr<FakeClient> fake_;
  ManualClock clock_;
  RedisStatusStore store_;
};

TEST_F(StoreUnitTest, RegisterSendsOneScriptOnTheDeviceSlotWithTheInjectedClock) {
  fake_->respond = [](const Command& c) -> result<Reply> {
    if (c[0] == "EVALSHA" && c[3] == "pgw:d:{app:dev}") {
      return Reply::array({Reply::integer(7), Reply::integer(6), Reply::bulk("node-0"),
                           Reply::bulk("old-sess"), Reply::bulk("bob")});
    }
    return Reply::integer(1);
  };
  clock_.set_ms(1'700'000'000'500ULL);
  auto r = run(store_.register_device(reg(), 30s));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->epoch, 7u);
  ASSERT_TRUE(r->previous);
  EXPECT_EQ(r->previous->node_id, "node-0");
  EXPECT_EQ(r->previous->session_id, "old-sess");
  EXPECT_EQ(r->previous->epoch, 6u);
  EXPECT_EQ(r->previous->user_id, "bob");
  ASSERT_FALSE(fake_->sent.empty());
  const auto& script = fake_->sent.front();
  // EVALSHA sha numkeys device epoch seq ... then the arguments.
  EXPECT_EQ(script[3], "pgw:d:{app:dev}");
  EXPECT_EQ(script[4], "pgw:e:{app:dev}");
  EXPECT_EQ(script[5], "pgw:q:{app:dev}");
  EXPECT_NE(std::find(script.begin(), script.end(), "1700000000500"), script.end());
  EXPECT_NE(std::find(script.begin(), script.end(), "30000"), script.end());
  // The index follow-ups: alice gains the device, bob (the previous user) loses it.
  bool added_alice = false, removed_bob = false;
  for (const auto& c : fake_->sent) {
    if (c.size() > 3 && c[3] == "pgw:u:{app:alice}") added_alice = true;
    if (c.size() > 3 && c[3] == "pgw:u:{app:bob}") removed_bob = true;
  }
  EXPECT_TRUE(added_alice);
  EXPECT_TRUE(removed_bob);
}

TEST_F(StoreUnitTest, StaleFenceAndStaleUnregisterAreErrors) {
  fake_->respond = [](const Command&) -> result<Reply> {
    return Reply::array({Reply::integer(-1), Reply::integer(9)});
  };
  auto r = run(store_.reregister_device(reg(), 3, 30s));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::stale_epoch));
  auto u = run(store_.unregister_device("app", "dev", 3));
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error(), make_error_code(errc::stale_epoch));
}

TEST_F(StoreUnitTest, LookupDecodesRecordsAndTreatsMissingOrMalformedAsOffline) {
  fake_->respond = [](const Command& c) -> result<Reply> {
    if (c[1] == "pgw:d:{app:a}") {
      return Reply::bulk("1\n12\nnode-3\nsess-9\nandroid\nu7\n1700000000000\n1700000000999");
    }
    if (c[1] == "pgw:d:{app:b}") return Reply::nil();
    return Reply::bulk("garbage");
  };
  auto r = run(store_.lookup("app", {"a", "b", "c"}));
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->size(), 3u);
  ASSERT_TRUE((*r)[0]);
  EXPECT_EQ((*r)[0]->epoch, 12u);
  EXPECT_EQ((*r)[0]->node_id, "node-3");
  EXPECT_EQ((*r)[0]->session_id, "sess-9");
  EXPECT_EQ((*r)[0]->platform, "android");
  EXPECT_EQ((*r)[0]->user_id, "u7");
  EXPECT_EQ((*r)[0]->connected_at_ms, 1'700'000'000'000ULL);
  EXPECT_EQ((*r)[0]->last_seen_ms, 1'700'000'000'999ULL);
  EXPECT_FALSE((*r)[1]);
  EXPECT_FALSE((*r)[2]);
  EXPECT_EQ(fake_->sent.size(), 3u);  // one GET per device, one pipeline
}

TEST_F(StoreUnitTest, ServerAndTransportErrorsBecomeErrorValues) {
  fake_->respond = [](const Command&) -> result<Reply> {
    return Reply::error("LOADING Redis is loading the dataset in memory");
  };
  auto a = run(store_.lookup("app", {"x"}));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error(), make_error_code(errc::unavailable));
  fake_->respond = [](const Command&) -> result<Reply> {
    return Reply::error("WRONGTYPE Operation against a key holding the wrong kind of value");
  };
  auto b = run(store_.next_seq("app", "x"));
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error(), make_error_code(errc::protocol_error));
  fake_->respond = [](const Command&) -> result<Reply> { return errc::timeout; };
  auto c = run(store_.register_device(reg(), 30s));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), make_error_code(errc::timeout));
  auto d = run(store_.list_nodes());
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error(), make_error_code(errc::timeout));
}

TEST_F(StoreUnitTest, RefreshUsesTheClockAndMapsStates) {
  fake_->respond = [](const Command& c) -> result<Reply> {
    if (c[0] != "EVALSHA") return Reply::integer(1);
    if (c[3] == "pgw:d:{app:a}") return Reply::integer(1);
    if (c[3] == "pgw:d:{app:b}") return Reply::integer(0);
    if (c[3] == "pgw:d:{app:c}") return Reply::integer(-1);
    return Reply::integer(1);
  };
  clock_.set_ms(1'700'000'123'456ULL);
  auto r = run(store_.refresh_leases(
      "node-1",
      {LeaseRef{"app", "a", 1, {}}, LeaseRef{"app", "b", 2, {}}, LeaseRef{"app", "c", 3, {}}},
      10s));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(
      *r, (std::vector<LeaseState>{LeaseState::refreshed, LeaseState::missing, LeaseState::stale}));
  const auto& first = fake_->sent.front();
  EXPECT_NE(std::find(first.begin(), first.end(), "1700000123456"), first.end());
  EXPECT_NE(std::find(first.begin(), first.end(), "node-1"), first.end());
}

}  // namespace
}  // namespace pushgw::status_store
