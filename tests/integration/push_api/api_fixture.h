#pragma once
// A running push-api (in-process Service on a free port) with a real
// redis-server and the librdkafka mock cluster, plus a deliberately simple
// blocking HTTP client that signs requests the way push-api.md says, so the
// tests talk to the API exactly as a business service would.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "co_run.h"
#include "common/auth/request_signature.h"
#include "common/service.h"
#include "proto/bus.pb.h"
#include "push_api/config.h"
#include "push_api/service.h"
#include "status_store/redis_status_store.h"
#include "testsupport/kafka_mock.h"
#include "testsupport/redis_server.h"
#include "testsupport/temp_dir.h"

namespace pushgw::push_api::testing {

using namespace std::chrono_literals;

struct HttpResult {
  int status = 0;                              // 0: no answer (closed, timeout, junk)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  boost::json::value json() const {
    boost::system::error_code ec;
    auto v = boost::json::parse(body, ec);
    if (ec) return boost::json::value();
    return v;
  }
  /// error.code of an error body ("" if not one).
  std::string error_code() const {
    auto v = json();
    const auto* o = v.if_object();
    if (o == nullptr || !o->contains("error") || !o->at("error").is_object()) return {};
    const auto& e = o->at("error").as_object();
    if (!e.contains("code") || !e.at("code").is_string() || !e.contains("message") ||
        !e.at("message").is_string()) {
      return {};
    }
    return std::string(e.at("code").as_string());
  }
};

/// One keep-alive HTTP/1.1 connection over a POSIX socket; every receive is
/// bounded by a socket timeout.
class Connection {
 public:
  explicit Connection(uint16_t port, std::chrono::milliseconds timeout = 10s) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  /// Reads one response (Content-Length bodies); status 0 on EOF, timeout or junk.
  HttpResult read() {
    HttpResult r;
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    const std::string head = buf_.substr(0, header_end);
    buf_.erase(0, header_end + 4);
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12 || status_line.compare(0, 5, "HTTP/") != 0) return r;
    const int status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line =
          head.substr(start, line_end == std::string::npos ? line_end : line_end - start);
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      r.headers[name] = value;
    }
    const size_t length =
        r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (buf_.size() < length) {
      if (!fill()) return r;
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    r.status = status;
    return r;
  }

  /// The next response's status line ("HTTP/1.1 200 OK"), left unread; empty
  /// on EOF or timeout.
  std::string peek_status_line() {
    size_t end;
    while ((end = buf_.find("\r\n")) == std::string::npos) {
      if (!fill()) return {};
    }
    return buf_.substr(0, end);
  }

  /// True when the peer closes the connection before the timeout.
  bool closed_by_peer() {
    if (!buf_.empty()) return false;
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool fill() {
    char tmp[8192];
    const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

inline int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// How to sign (or mis-sign) one request.
struct Signing {
  std::string app_id;
  std::string secret;
  std::optional<int64_t> timestamp;  // default: now
  /// Sign these instead of what is sent (tampering tests).
  std::optional<std::string> signed_target;
  std::optional<std::string> signed_body;
  bool omit_signature = false;
};

inline Signing signer(std::string app_id, std::string secret) {
  Signing s;
  s.app_id = std::move(app_id);
  s.secret = std::move(secret);
  return s;
}

/// The raw request text.
inline std::string build_request(const std::string& method, const std::string& target,
                                 const std::string& body, const std::optional<Signing>& sign,
                                 const std::vector<std::string>& extra_headers = {}) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (sign) {
    const std::string ts = std::to_string(sign->timestamp.value_or(unix_now()));
    req += "X-App-Id: " + sign->app_id + "\r\nX-Timestamp: " + ts + "\r\n";
    if (!sign->omit_signature) {
      req += "X-Signature: " +
             auth::sign_request(sign->secret, method, sign->signed_target.value_or(target), ts,
                                sign->signed_body.value_or(body)) +
             "\r\n";
    }
  }
  for (const auto& h : extra_headers) req += h + "\r\n";
  if (!body.empty() || method == "POST") {
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n";
  req += body;
  return req;
}

inline const char* kAppsToml = R"(
[[app]]
id = "demo"
api_secret = "demo-api-secret"
device_secret = "demo-device-secret"

[[app]]
id = "other"
api_secret = "other-api-secret"
device_secret = "other-device-secret"

[[app]]
id = "limited"
api_secret = "limited-api-secret"
device_secret = "limited-device-secret"
quota_normal_rps = 1000
quota_normal_burst = 1000
quota_marketing_rps = 0.01
quota_marketing_burst = 2
)";

inline const std::vector<std::string> kTopics = {"pushgw.push.normal", "pushgw.push.marketing",
                                                 "pushgw.fanout.normal", "pushgw.fanout.marketing",
                                                 "pushgw.health"};

class PushApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    {
      std::ofstream apps(dir_.file("apps.toml"));
      apps << kAppsToml;
    }
    for (const auto& t : kTopics) {
      auto r = kafka_.cluster().create_topic(t, 1);
      ASSERT_TRUE(r) << t;
    }
    cfg_ = config_schema().defaults();
    cfg_.threads = 2;
    cfg_.apps_file = dir_.file("apps.toml").string();
    cfg_.redis_url = redis_.url();
    cfg_.listen.host = "127.0.0.1";
    cfg_.listen.port = 0;
    cfg_.kafka.bootstrap = kafka_.bootstrap_servers();
    cfg_.kafka.ensure_topics = false;
    cfg_.kafka.produce_timeout = 1500ms;
    cfg_.kafka.properties = {"topic.metadata.refresh.interval.ms=500", "reconnect.backoff.ms=50",
                             "reconnect.backoff.max.ms=500"};
    cfg_.readiness.check_timeout = 1000ms;
    cfg_.admin_enabled = false;
    cfg_.shutdown_grace = 1000ms;
    customize(cfg_);
    cfg_.validate();
    io_ = std::make_unique<common::IoRunner>(2);
    work_.emplace(boost::asio::make_work_guard(io_->context()));
    io_->start();
    service_ = std::make_unique<Service>(io_->executor(), cfg_);
    auto started = service_->start();
    ASSERT_TRUE(started) << started.error().message();
    port_ = service_->port();

    auto store = status_store::make_redis_status_store(store_io_.get_executor(), redis_.url());
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
  }

  void TearDown() override {
    if (service_) service_->stop();
    service_.reset();
    work_.reset();
    if (io_) {
      io_->stop();
      io_->join();
    }
    store_.reset();
    settle(store_io_);
  }

  virtual void customize(PushApiConfig&) {}

  static Signing as(const std::string& app) { return signer(app, app + "-api-secret"); }

  HttpResult request(const std::string& method, const std::string& target, const std::string& body,
                     const std::optional<Signing>& sign,
                     const std::vector<std::string>& extra_headers = {}) {
    Connection c(port_);
    EXPECT_TRUE(c.connected());
    if (!c.send(build_request(method, target, body, sign, extra_headers))) return {};
    return c.read();
  }
  HttpResult push(const std::string& body, const std::string& app = "demo") {
    return request("POST", "/v1/push", body, as(app));
  }
  HttpResult get(const std::string& target, const std::string& app = "demo") {
    return request("GET", target, "", as(app));
  }

  template <class T>
  T store(boost::asio::awaitable<T> aw) {
    return run_co(store_io_, std::move(aw));
  }

  /// Registers a device online on `node` (status store as conn-node would).
  status_store::Registered online(const std::string& app, const std::string& device,
                                  const std::string& user = {}, const std::string& node = "n1") {
    status_store::DeviceRegistration r;
    r.app_id = app;
    r.device_id = device;
    r.node_id = node;
    r.session_id = "s-" + device;
    r.platform = "android";
    r.user_id = user;
    r.connected_at_ms = 1'700'000'000'000ULL;
    auto out = store(store_->register_device(r, 60s));
    EXPECT_TRUE(out) << out.error().message();
    return out ? *out : status_store::Registered{};
  }

  /// Every record of a one-partition topic (waits for `count`, bounded).
  std::vector<bus::Record> records(const std::string& topic, std::size_t count) {
    return kafka_.read(topic, 1, count, 5s);
  }
  int64_t produced(const std::string& topic) { return kafka_.high_watermark(topic, 0); }

  /// Polls /readyz until it answers 200 (bounded).
  bool wait_ready(std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (request("GET", "/readyz", "", std::nullopt).status == 200) return true;
    }
    return false;
  }

  static bus::v1::PushRequest decode(const bus::Record& r) {
    bus::v1::PushRequest p;
    EXPECT_TRUE(p.ParseFromString(r.value));
    return p;
  }

  testsupport::TempDir dir_{"push-api-test"};
  testsupport::RedisServer redis_;
  testsupport::KafkaMock kafka_;
  PushApiConfig cfg_;
  std::unique_ptr<common::IoRunner> io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::unique_ptr<Service> service_;
  uint16_t port_ = 0;
  boost::asio::io_context store_io_;
  std::unique_ptr<status_store::RedisStatusStore> store_;
};

}  // namespace pushgw::push_api::testing
