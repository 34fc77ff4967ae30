// Standalone client against a real redis-server: commands, pipelining from
// many coroutines, scripts, timeouts, server death and recovery.
#include "common/redis/client.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <thread>

#include "co_test.h"
#include "common/redis/connection.h"
#include "testsupport/ports.h"
#include "testsupport/redis_server.h"

namespace pushgw::redis {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::run_co;
using Clock = std::chrono::steady_clock;

std::unique_ptr<Client> make(asio::io_context& io, const std::string& url,
                             ConnectionOptions opts = {}, prometheus::Registry* reg = nullptr) {
  auto cfg = ClientConfig::parse(url);
  EXPECT_TRUE(cfg);
  cfg->connection = opts;
  auto c = make_client(io.get_executor(), *cfg, reg);
  EXPECT_TRUE(c);
  return std::move(*c);
}

class ClientTest : public ::testing::Test {
 protected:
  void TearDown() override {
    client_.reset();
    test::settle(io_);
  }
  testsupport::RedisServer server_;
  asio::io_context io_;
  std::unique_ptr<Client> client_;
};

asio::awaitable<void> basic_commands(Client* c) {
  EXPECT_TRUE(co_await c->connect());
  Command set_cmd{"SET", "greeting", "hello"};
  auto set = co_await c->exec(std::move(set_cmd));
  EXPECT_TRUE(set && set->is_string() && set->str() == "OK");
  Command get_cmd{"GET", "greeting"};
  auto get = co_await c->exec(std::move(get_cmd));
  EXPECT_TRUE(get && *get == Reply::bulk("hello"));
  Command missing_cmd{"GET", "missing"};
  auto missing = co_await c->exec(std::move(missing_cmd));
  EXPECT_TRUE(missing && missing->is_nil());
  Command bad_cmd{"INCR", "greeting"};
  auto bad = co_await c->exec(std::move(bad_cmd));
  CO_ASSERT_TRUE(bad);  // an error *reply* is a value, not a transport failure
  EXPECT_TRUE(bad->is_error());
  EXPECT_TRUE(bad->error_is("ERR")) << bad->to_string();
  Command arr_cmd{"MGET", "greeting", "missing"};
  auto arr = co_await c->exec(std::move(arr_cmd));
  EXPECT_TRUE(arr && *arr == Reply::array({Reply::bulk("hello"), Reply::nil()}));
}

TEST_F(ClientTest, BasicCommandsAndReplyTypes) {
  client_ = make(io_, server_.url());
  run_co(io_, basic_commands(client_.get()));
}

asio::awaitable<void> pipeline_in_order(Client* c) {
  std::vector<Command> cmds;
  for (int i = 0; i < 5000; ++i) cmds.push_back(Command{"INCR", "counter"});
  auto res = co_await c->exec_pipeline(std::move(cmds));
  CO_ASSERT_EQ(res.size(), 5000u);
  for (int i = 0; i < 5000; ++i) {
    CO_ASSERT_TRUE(res[static_cast<std::size_t>(i)]);
    CO_ASSERT_EQ(res[static_cast<std::size_t>(i)]->integer(), i + 1);
  }
  auto empty = co_await c->exec_pipeline({});
  EXPECT_TRUE(empty.empty());
}

TEST_F(ClientTest, PipelineRepliesComeBackInOrder) {
  client_ = make(io_, server_.url());
  run_co(io_, pipeline_in_order(client_.get()));
}

asio::awaitable<void> buffer_in_order(Client* c) {
  CommandBuffer cmds;
  for (int i = 0; i < 5000; ++i) {
    cmds.begin(2).arg("INCR").arg_concat({"buf", ":", "counter"});
    if (i % 1000 == 0) cmds.begin(2).arg("GET").arg("buf:counter");
  }
  auto res = co_await c->exec_buffer(std::move(cmds));
  CO_ASSERT_EQ(res.size(), 5005u);
  std::int64_t want = 1;
  for (std::size_t k = 0; k < res.size(); ++k) {
    CO_ASSERT_TRUE(res[k]);
    if (res[k]->is_integer()) {
      CO_ASSERT_EQ(res[k]->integer(), want++);
    } else {
      EXPECT_EQ(res[k]->to_int(), want - 1) << "GET after INCR " << want - 1;
    }
  }
  auto empty = co_await c->exec_buffer(CommandBuffer{});
  EXPECT_TRUE(empty.empty());
  CommandBuffer bad;
  bad.begin(2).arg("GET");
  bad.begin(1).arg("PING");
  auto refused = co_await c->exec_buffer(std::move(bad));
  CO_ASSERT_EQ(refused.size(), 2u);
  for (auto& r : refused) {
    CO_ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::invalid_argument));
  }
  // Nothing of the refused buffer reached the server: the connection still
  // pairs replies with requests.
  Command get{"GET", "buf:counter"};
  auto after = co_await c->exec(std::move(get));
  CO_ASSERT_TRUE(after);
  EXPECT_EQ(after->to_int(), 5000);
}

TEST_F(ClientTest, EncodedBufferRepliesComeBackInOrder) {
  client_ = make(io_, server_.url());
  run_co(io_, buffer_in_order(client_.get()));
}

asio::awaitable<void> worker(Client* c, int id, int n, int* ok) {
  for (int i = 0; i < n; ++i) {
    auto key = "w" + std::to_string(id);
    auto value = std::to_string(i);
    Command set{"SET", key, value};
    Command get{"GET", key};
    std::vector<Command> both;
    both.push_back(std::move(set));
    both.push_back(std::move(get));
    auto r = co_await c->exec_pipeline(std::move(both));
    if (r[0] && r[1] && r[1]->str() == value) ++*ok;
    Command incr{"INCR", "shared"};
    auto x = co_await c->exec(std::move(incr));
    if (x && x->is_integer()) ++*ok;
  }
}

asio::awaitable<void> check_shared(Client* c, std::int64_t expected) {
  Command get{"GET", "shared"};
  auto r = co_await c->exec(std::move(get));
  CO_ASSERT_TRUE(r);
  EXPECT_EQ(r->to_int(), expected);
}

TEST_F(ClientTest, ManyCoroutinesShareOnePipelinedConnection) {
  client_ = make(io_, server_.url());
  constexpr int kWorkers = 200, kEach = 50;
  int ok = 0;
  for (int w = 0; w < kWorkers; ++w) {
    asio::co_spawn(io_, worker(client_.get(), w, kEach, &ok), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  }
  auto deadline = Clock::now() + 20s;
  while (ok < 2 * kWorkers * kEach && Clock::now() < deadline) io_.run_one_for(1s);
  EXPECT_EQ(ok, 2 * kWorkers * kEach);
  run_co(io_, check_shared(client_.get(), kWorkers * kEach));
  // All of it went over one socket: the server saw a single client connection.
  // (CLIENT LIST shows one line per connection, including the one asking.)
  auto clients = server_.command({"CLIENT", "LIST"});
  EXPECT_EQ(std::count(clients.begin(), clients.end(), '\n'), 2) << clients;
}

asio::awaitable<void> call_from_other_thread(Client* c, int* ok) {
  for (int i = 0; i < 100; ++i) {
    Command incr{"INCR", "hop"};
    auto r = co_await c->exec(std::move(incr));
    if (r && r->integer() == i + 1) ++*ok;
  }
}

TEST_F(ClientTest, CallersOnOtherExecutorsHopOntoTheClientStrand) {
  asio::io_context client_io;
  auto guard = asio::make_work_guard(client_io);
  std::thread t([&] { client_io.run(); });
  auto c = make(client_io, server_.url());
  int ok = 0;
  run_co(io_, call_from_other_thread(c.get(), &ok));
  EXPECT_EQ(ok, 100);
  c.reset();
  guard.reset();
  t.join();
}

asio::awaitable<void> scripts(Client* c, testsupport::RedisServer* server) {
  Script s("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  server->command({"SCRIPT", "FLUSH"});
  auto cmd = Command::evalsha(s, 1);
  cmd.arg("n").arg(5);
  auto first = co_await c->exec(cmd);
  CO_ASSERT_TRUE(first);
  EXPECT_EQ(first->integer(), 5) << first->to_string();
  EXPECT_EQ(c->stats().noscript, 1u);
  auto second = co_await c->exec(cmd);  // loaded by the fallback
  CO_ASSERT_TRUE(second);
  EXPECT_EQ(second->integer(), 10);
  EXPECT_EQ(c->stats().noscript, 1u);
  server->command({"SCRIPT", "FLUSH"});
  std::vector<Command> batch(20, cmd);
  auto many = co_await c->exec_pipeline(std::move(batch));
  for (std::size_t i = 0; i < many.size(); ++i) {
    CO_ASSERT_TRUE(many[i]);
    EXPECT_EQ(many[i]->integer(), 15 + 5 * static_cast<std::int64_t>(i));
  }
}

TEST_F(ClientTest, EvalshaLoadsTheScriptOnNoscript) {
  client_ = make(io_, server_.url());
  run_co(io_, scripts(client_.get(), &server_));
}

asio::awaitable<void> timeout_keeps_alignment(Client* c) {
  // BLPOP blocks the connection for 700 ms; the request gives up at 500 ms.
  // The PING before it is answered, so the connection is not stalled.
  std::vector<Command> batch;
  batch.push_back(Command{"PING"});
  batch.push_back(Command{"BLPOP", "nothing", "0.7"});
  auto t0 = Clock::now();
  auto r = co_await c->exec_pipeline(std::move(batch));
  auto took = Clock::now() - t0;
  CO_ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0] && r[0]->str() == "PONG");  // replies that arrived are kept
  CO_ASSERT_FALSE(r[1]);
  EXPECT_EQ(r[1].error(), make_error_code(errc::timeout));
  EXPECT_GE(took, 450ms);
  EXPECT_LT(took, 690ms);
  // Later requests still get their own replies, not the late BLPOP answer.
  Command set{"SET", "after", "1"};
  auto s = co_await c->exec(std::move(set));
  CO_ASSERT_TRUE(s);
  EXPECT_EQ(s->str(), "OK");
  Command get{"GET", "after"};
  auto g = co_await c->exec(std::move(get));
  CO_ASSERT_TRUE(g);
  EXPECT_EQ(*g, Reply::bulk("1"));
  EXPECT_EQ(c->stats().reconnects, 0u);
}

TEST_F(ClientTest, RequestTimeoutFailsThatRequestOnly) {
  ConnectionOptions o;
  o.request_timeout = 500ms;
  client_ = make(io_, server_.url(), o);
  run_co(io_, timeout_keeps_alignment(client_.get()));
}

asio::awaitable<result<Reply>> exec_once(Client* c, Command cmd) {
  co_return co_await c->exec(std::move(cmd));
}

asio::awaitable<void> blocked_call(Client* c, result<Reply>* out, bool* done) {
  Command blpop{"BLPOP", "never", "5"};
  *out = co_await c->exec(std::move(blpop));
  *done = true;
}

TEST_F(ClientTest, ServerKilledMidTestErrorsThenRecovers) {
  ConnectionOptions o;
  o.request_timeout = 3s;
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  client_ = make(io_, server_.url(), o);
  auto before = run_co(io_, exec_once(client_.get(), Command{"SET", "k", "v"}));
  ASSERT_TRUE(before);

  // A request in flight when the server dies fails promptly (not at its timeout).
  result<Reply> inflight = Reply::nil();
  bool done = false;
  asio::co_spawn(io_, blocked_call(client_.get(), &inflight, &done), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io_.run_for(100ms);
  ASSERT_FALSE(done);
  server_.kill();
  auto t0 = Clock::now();
  while (!done && Clock::now() - t0 < 2s) io_.run_one_for(50ms);
  ASSERT_TRUE(done);
  EXPECT_LT(Clock::now() - t0, 1s);
  ASSERT_FALSE(inflight);
  EXPECT_EQ(inflight.error(), make_error_code(errc::unavailable));

  // While it is down, requests fail at once.
  for (int i = 0; i < 5; ++i) {
    auto t1 = Clock::now();
    auto r = run_co(io_, exec_once(client_.get(), Command{"GET", "k"}), 5s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::unavailable)) << r.error().message();
    EXPECT_LT(Clock::now() - t1, 500ms);
    io_.run_for(30ms);
  }

  // After a restart the client reconnects by itself.
  server_.restart();
  auto deadline = Clock::now() + 5s;
  bool recovered = false;
  while (!recovered && Clock::now() < deadline) {
    auto r = run_co(io_, exec_once(client_.get(), Command{"SET", "k", "again"}), 5s);
    recovered = r && r->str() == "OK";
    if (!recovered) io_.run_for(50ms);
  }
  EXPECT_TRUE(recovered);
  EXPECT_GE(client_->stats().reconnects, 1u);
  EXPECT_EQ(server_.command({"GET", "k"}), "again");
}

TEST_F(ClientTest, HungServerTimesOutThenTheConnectionIsReplaced) {
  ConnectionOptions o;
  o.request_timeout = 300ms;
  o.reconnect_min = 20ms;
  o.reconnect_max = 100ms;
  client_ = make(io_, server_.url(), o);
  ASSERT_TRUE(run_co(io_, exec_once(client_.get(), Command{"SET", "k", "v"})));
  server_.pause();  // connections stay open, nothing is answered
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    auto r = run_co(io_, exec_once(client_.get(), Command{"GET", "k"}), 5s);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error() == make_error_code(errc::timeout) ||
                r.error() == make_error_code(errc::unavailable))
        << r.error().message();
    EXPECT_LT(Clock::now() - t0, 1s);
  }
  server_.resume();
  auto deadline = Clock::now() + 5s;
  bool recovered = false;
  while (!recovered && Clock::now() < deadline) {
    auto r = run_co(io_, exec_once(client_.get(), Command{"GET", "k"}), 5s);
    recovered = r && *r == Reply::bulk("v");
    if (!recovered) io_.run_for(50ms);
  }
  EXPECT_TRUE(recovered);
  // The stalled connection was dropped and replaced, not waited on forever.
  EXPECT_GE(client_->stats().reconnects, 1u);
}

TEST_F(ClientTest, NothingListeningFailsFastWithoutHanging) {
  auto port = testsupport::free_port();
  ConnectionOptions o;
  o.reconnect_min = 10ms;
  o.reconnect_max = 50ms;
  client_ = make(io_, "redis://127.0.0.1:" + std::to_string(port), o);
  auto t0 = Clock::now();
  auto r = run_co(io_, exec_once(client_.get(), Command{"PING"}), 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::unavailable));
  EXPECT_LT(Clock::now() - t0, 1s);
}

asio::awaitable<void> queue_bound(Client* c) {
  std::vector<Command> cmds(11, Command{"PING"});
  auto r = co_await c->exec_pipeline(std::move(cmds));
  for (auto& x : r) {
    CO_ASSERT_FALSE(x);
    EXPECT_EQ(x.error(), make_error_code(errc::queue_full));
  }
  std::vector<Command> fits(10, Command{"PING"});
  auto ok = co_await c->exec_pipeline(std::move(fits));
  for (auto& x : ok) EXPECT_TRUE(x && x->str() == "PONG");
}

TEST_F(ClientTest, PendingLimitRejectsWithQueueFull) {
  ConnectionOptions o;
  o.max_pending = 10;
  client_ = make(io_, server_.url(), o);
  run_co(io_, queue_bound(client_.get()));
}

asio::awaitable<void> some_traffic(Client* c) {
  std::vector<Command> cmds(7, Command{"PING"});
  co_await c->exec_pipeline(std::move(cmds));
}

TEST_F(ClientTest, MetricsAreExported) {
  prometheus::Registry reg;
  client_ = make(io_, server_.url(), {}, &reg);
  run_co(io_, some_traffic(client_.get()));
  double commands = -1;
  std::uint64_t latency_samples = 0;
  for (const auto& fam : reg.Collect()) {
    for (const auto& m : fam.metric) {
      if (fam.name == "pushgw_redis_commands_total") commands = m.counter.value;
      if (fam.name == "pushgw_redis_request_duration_seconds") {
        latency_samples = m.histogram.sample_count;
      }
    }
  }
  EXPECT_EQ(commands, 7);
  EXPECT_EQ(latency_samples, 1u);
}

asio::awaitable<void> direct_connection(Connection* c) {
  EXPECT_TRUE(co_await c->ping());
  Command set{"SET", "direct", "yes"};
  auto r = co_await c->exec(std::move(set));
  EXPECT_TRUE(r && r->str() == "OK");
  std::vector<Command> cmds;
  cmds.push_back(Command{"GET", "direct"});
  cmds.push_back(Command{"STRLEN", "direct"});
  auto p = co_await c->exec_pipeline(std::move(cmds));
  CO_ASSERT_EQ(p.size(), 2u);
  EXPECT_TRUE(p[0] && *p[0] == Reply::bulk("yes"));
  EXPECT_TRUE(p[1] && p[1]->integer() == 3);
}

TEST_F(ClientTest, ConnectionCanBeUsedDirectly) {
  auto ep = parse_endpoint(server_.url());
  ASSERT_TRUE(ep);
  {
    Connection conn(io_.get_executor(), *ep);
    run_co(io_, direct_connection(&conn));
    EXPECT_TRUE(conn.connected());
  }
  test::settle(io_);
}

}  // namespace
}  // namespace pushgw::redis
