#include "common/admin_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <thread>

#include "http_client.h"

namespace pushgw::common {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using testing::http_get;
using testing::RawClient;

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override { start_server(default_options()); }

  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
    guard_.reset();
    if (thread_.joinable()) thread_.join();
  }

  static AdminServerOptions default_options() {
    AdminServerOptions o;
    o.port = 0;
    o.max_header_bytes = 1024;
    o.max_body_bytes = 1024;
    o.read_timeout = milliseconds(2000);
    o.check_timeout = milliseconds(300);
    o.max_connections = 8;
    return o;
  }

  void start_server(AdminServerOptions opts) {
    metrics_ = std::make_shared<Metrics>("admin-test");
    server_ = std::make_unique<AdminServer>(ctx_.get_executor(), opts, metrics_);
    const auto started = server_->start();
    ASSERT_TRUE(started) << started.error().message();
    ASSERT_NE(server_->port(), 0);
    if (!thread_.joinable()) thread_ = std::thread([this] { ctx_.run(); });
  }

  uint16_t port() const { return server_->port(); }

  asio::io_context ctx_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(ctx_);
  std::thread thread_;
  std::shared_ptr<Metrics> metrics_;
  std::unique_ptr<AdminServer> server_;
};

boost::json::object json_body(const testing::RawResponse& r) {
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  EXPECT_FALSE(ec) << r.body;
  return v.is_object() ? v.as_object() : boost::json::object{};
}

TEST_F(AdminServerTest, HealthzAnswersOkWithKeepAlive) {
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    const auto r = c.read_response();
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "ok\n");
  }
}

TEST_F(AdminServerTest, PipelinedRequestsAreAnsweredInOrder) {
  RawClient c(port());
  ASSERT_TRUE(
      c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto a = c.read_response();
  const auto b = c.read_response();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(b->status, 404);
}

TEST_F(AdminServerTest, Http10WithoutKeepAliveCloses) {
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /healthz HTTP/1.0\r\n\r\n"));
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(AdminServerTest, ReadyzWithoutChecksIsReady) {
  const auto r = http_get(port(), "/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers.at("content-type"), "application/json");
  EXPECT_TRUE(json_body(*r).at("ready").as_bool());
}

TEST_F(AdminServerTest, ReadyzFlipsWithFlag) {
  ReadinessFlag redis(false);
  ReadinessFlag kafka(true);
  server_->add_readiness_flag("redis", redis);
  server_->add_readiness_flag("kafka", kafka);

  auto r = http_get(port(), "/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  auto body = json_body(*r);
  EXPECT_FALSE(body.at("ready").as_bool());
  const auto& checks = body.at("checks").as_array();
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].as_object().at("name").as_string(), "redis");
  EXPECT_FALSE(checks[0].as_object().at("ready").as_bool());
  EXPECT_EQ(checks[1].as_object().at("name").as_string(), "kafka");
  EXPECT_TRUE(checks[1].as_object().at("ready").as_bool());

  redis.set(true);
  r = http_get(port(), "/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  kafka.set(false);
  r = http_get(port(), "/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);

  server_->remove_readiness_check("kafka");
  r = http_get(port(), "/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

asio::awaitable<bool> ready_after_a_wait() {
  asio::steady_timer t(co_await asio::this_coro::executor, milliseconds(20));
  co_await t.async_wait(asio::use_awaitable);
  co_return true;
}

asio::awaitable<bool> waits_on(std::shared_ptr<asio::steady_timer> timer) {
  co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  co_return true;
}

asio::awaitable<bool> throws_check() {
  throw std::runtime_error("redis said no");
  co_return true;
}

TEST_F(AdminServerTest, AsyncChecksSlowAndFailingOnes) {
  server_->add_readiness_check("async", [] { return ready_after_a_wait(); });
  auto r = http_get(port(), "/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  // A check that never answers in time counts as not ready, within check_timeout.
  auto hung = std::make_shared<asio::steady_timer>(ctx_, std::chrono::hours(1));
  server_->add_readiness_check("hung", [hung] { return waits_on(hung); });
  const auto t0 = std::chrono::steady_clock::now();
  r = http_get(port(), "/readyz");
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_THAT(r->body, HasSubstr("\"name\":\"hung\",\"ready\":false,\"error\":\"timeout\""));
  asio::post(ctx_, [hung] { hung->cancel(); });
  server_->remove_readiness_check("hung");

  server_->add_readiness_check("throws", [] { return throws_check(); });
  r = http_get(port(), "/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_THAT(r->body, HasSubstr("redis said no"));
}

TEST_F(AdminServerTest, MetricsServeRegisteredCounter) {
  auto& c = prometheus::BuildCounter()
                .Name("pushgw_it_things_total")
                .Help("things")
                .Register(metrics_->registry())
                .Add({});
  c.Increment(2);
  const auto r = http_get(port(), "/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(r->body, HasSubstr("pushgw_it_things_total 2"));
  EXPECT_THAT(r->body, HasSubstr("process_open_fds "));
  EXPECT_THAT(r->body, HasSubstr("pushgw_build_info{binary=\"admin-test\""));
  // The admin server counts its own responses.
  const auto again = http_get(port(), "/metrics");
  ASSERT_TRUE(again);
  EXPECT_THAT(again->body, HasSubstr("pushgw_admin_requests_total{code=\"200\"}"));
}

TEST_F(AdminServerTest, UnknownPathAndWrongMethod) {
  auto r = http_get(port(), "/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);

  RawClient c(port());
  ASSERT_TRUE(c.send("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->headers.at("allow"), "GET");
}

asio::awaitable<HttpResponse> drain_handler(HttpRequest req) {
  co_return HttpResponse::text(200, "draining query=" + req.query + " body=" + req.body +
                                        " agent=" + std::string(req.header("user-agent")));
}

asio::awaitable<HttpResponse> failing_handler(HttpRequest) {
  throw std::runtime_error("handler bug");
  co_return HttpResponse{};
}

TEST_F(AdminServerTest, CustomHandlers) {
  server_->handle("POST", "/admin/drain",
                  [](HttpRequest req) { return drain_handler(std::move(req)); });
  server_->handle("POST", "/admin/fail",
                  [](HttpRequest req) { return failing_handler(std::move(req)); });
  EXPECT_THROW(
      server_->handle("GET", "/metrics", [](HttpRequest req) { return drain_handler(req); }),
      std::invalid_argument);

  RawClient c(port());
  ASSERT_TRUE(
      c.send("POST /admin/drain?rate=50 HTTP/1.1\r\nHost: x\r\nUser-Agent: "
             "pushctl\r\nContent-Length: 5\r\n\r\nhello"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "draining query=rate=50 body=hello agent=pushctl");

  ASSERT_TRUE(c.send("GET /admin/drain HTTP/1.1\r\nHost: x\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->headers.at("allow"), "POST");

  ASSERT_TRUE(c.send("POST /admin/fail HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);

  // The connection survives a failing handler.
  ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(AdminServerTest, OversizedHeaderIsRejectedAndClosed) {
  RawClient other(port());
  ASSERT_TRUE(other.connected());

  RawClient c(port());
  ASSERT_TRUE(
      c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n"));
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->headers.at("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());

  ASSERT_TRUE(other.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto ok = other.read_response();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(AdminServerTest, OversizedBodyIsRejectedAndClosed) {
  RawClient c(port());
  ASSERT_TRUE(c.send("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" +
                     std::string(5000, 'b')));
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(c.closed_by_peer());
  const auto ok = http_get(port(), "/healthz");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(AdminServerTest, GarbageGetsBadRequestAndServerKeepsServing) {
  RawClient other(port());
  ASSERT_TRUE(other.connected());

  // A TLS ClientHello start (embedded NULs) and other junk.
  static constexpr char kBinary[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 binary\r\n\r\n";
  for (const std::string& garbage :
       {std::string(kBinary, sizeof(kBinary) - 1), std::string("HELLO THERE\r\n\r\n"),
        std::string("GET / HTTP/9.9\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n")}) {
    RawClient c(port());
    ASSERT_TRUE(c.send(garbage));
    const auto r = c.read_response();
    ASSERT_TRUE(r) << garbage;
    EXPECT_EQ(r->status, 400) << garbage;
    EXPECT_TRUE(c.closed_by_peer()) << garbage;
  }

  ASSERT_TRUE(other.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto ok = other.read_response();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  const auto m = http_get(port(), "/metrics");
  ASSERT_TRUE(m);
  EXPECT_THAT(m->body, HasSubstr("pushgw_admin_requests_total{code=\"400\"} 5"));
}

TEST_F(AdminServerTest, IncompleteRequestIsClosedAfterReadTimeout) {
  server_->stop();
  auto opts = default_options();
  opts.read_timeout = milliseconds(200);
  start_server(opts);
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
}

TEST_F(AdminServerTest, ConnectionLimitClosesExtraConnections) {
  server_->stop();
  auto opts = default_options();
  opts.max_connections = 2;
  start_server(opts);
  auto first = std::make_unique<RawClient>(port());
  RawClient second(port());
  for (RawClient* c : {first.get(), &second}) {
    ASSERT_TRUE(c->send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(c->read_response());
  }
  RawClient third(port());
  EXPECT_TRUE(third.closed_by_peer());

  first.reset();
  // The slot frees once the server notices the close; retry a few times.
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    const auto r = http_get(port(), "/healthz");
    served = r && r->status == 200;
  }
  EXPECT_TRUE(served);
}

TEST_F(AdminServerTest, StopClosesIdleConnections) {
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(c.read_response());
  server_->stop();
  EXPECT_TRUE(c.closed_by_peer());
  RawClient late(port());
  EXPECT_FALSE(late.connected() && late.send("GET /healthz HTTP/1.1\r\n\r\n") &&
               late.read_response());
}

TEST_F(AdminServerTest, PortInUseIsAnErrorValue) {
  AdminServerOptions opts = default_options();
  opts.port = port();
  AdminServer second(ctx_.get_executor(), opts, metrics_);
  const auto r = second.start();
  EXPECT_FALSE(r);
  opts.port = 0;
  opts.bind_address = "not-an-ip";
  AdminServer third(ctx_.get_executor(), opts, std::make_shared<Metrics>("x"));
  EXPECT_FALSE(third.start());
}

}  // namespace
}  // namespace pushgw::common
