// The push-api binary as a process (config file, real Redis, Kafka mock) and
// pushctl as a business service would use it.
#include "testsupport/process.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "api_fixture.h"
#include "common/auth/device_token.h"
#include "testsupport/ports.h"

namespace pushgw::push_api::testing {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CtlRun {
  int code = -1;
  std::string out;
  std::string err;
};

class PushApiProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& t : kTopics) ASSERT_TRUE(kafka_.cluster().create_topic(t, 1)) << t;
    {
      std::ofstream apps(dir_.file("apps.toml"));
      apps << kAppsToml;
    }
    port_ = testsupport::free_port();
    std::ofstream cfg(dir_.file("push-api.toml"));
    cfg << "apps_file = \"" << dir_.file("apps.toml").string() << "\"\n"
        << "threads = 1\n"
        << "[listen]\nhost = \"127.0.0.1\"\nport = " << port_ << "\n"
        << "[redis]\nurl = \"" << redis_.url() << "\"\n"
        << "[kafka]\nbootstrap = \"" << kafka_.bootstrap_servers() << "\"\n"
        << "ensure_topics = false\nproduce_timeout_ms = 3000\n"
        << "[admin]\nenabled = false\n";
  }

  bool start() {
    testsupport::SpawnOptions o;
    o.stdout_path = dir_.file("push-api.out").string();
    o.stderr_path = dir_.file("push-api.err").string();
    server_ = testsupport::Process::spawn(
        {PUSH_API_BIN, "--config", dir_.file("push-api.toml").string()}, o);
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!server_.running()) return false;
      Connection c(port_, 1s);
      if (c.connected() && c.send(build_request("GET", "/healthz", "", std::nullopt)) &&
          c.read().status == 200) {
        return true;
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  CtlRun pushctl(std::vector<std::string> args, const std::string& secret = "demo-api-secret") {
    std::vector<std::string> argv{PUSHCTL_BIN, "--url", "http://127.0.0.1:" + std::to_string(port_),
                                  "--app",     "demo",  "--secret",
                                  secret};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string n = std::to_string(++runs_);
    testsupport::SpawnOptions o;
    o.stdout_path = dir_.file("ctl" + n + ".out").string();
    o.stderr_path = dir_.file("ctl" + n + ".err").string();
    auto p = testsupport::Process::spawn(argv, o);
    CtlRun r;
    auto st = p.wait(20s);
    if (st && WIFEXITED(*st)) r.code = WEXITSTATUS(*st);
    r.out = slurp(o.stdout_path);
    r.err = slurp(o.stderr_path);
    return r;
  }

  testsupport::TempDir dir_{"push-api-proc"};
  testsupport::RedisServer redis_;
  testsupport::KafkaMock kafka_;
  uint16_t port_ = 0;
  int runs_ = 0;
  testsupport::Process server_;
};

TEST_F(PushApiProcess, PushctlPushesThroughTheBinary) {
  ASSERT_TRUE(start()) << slurp(dir_.file("push-api.err"));

  auto r = pushctl({"push", "--device", "d1", "--device", "d2", "--payload", "hello", "--ttl", "60",
                    "--idempotency-key", "cli-1"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const auto body = boost::json::parse(r.out);
  EXPECT_EQ(body.at("targets").as_int64(), 2);
  const std::string id(body.at("message_id").as_string());
  auto recs = kafka_.read("pushgw.push.normal", 1, 2, 10s);
  ASSERT_EQ(recs.size(), 2u);
  bus::v1::PushRequest p;
  ASSERT_TRUE(p.ParseFromString(recs[0].value));
  EXPECT_EQ(p.message_id(), id);
  EXPECT_EQ(p.payload(), "hello");
  EXPECT_EQ(p.ttl_s(), 60u);

  r = pushctl({"message", id});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(boost::json::parse(r.out).at("targets").as_int64(), 2);
  r = pushctl({"device", "d1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(boost::json::parse(r.out).at("online").as_bool());
  r = pushctl({"nodes"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(boost::json::parse(r.out).is_array());
  r = pushctl({"push", "--topic", "news", "--payload-b64", "aGk=", "--class", "marketing"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(kafka_.high_watermark("pushgw.fanout.marketing", 0), 1);

  // Errors: the API's error body and exit code 1.
  r = pushctl({"push", "--device", "d1", "--payload", "x"}, "wrong-secret");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unauthenticated"), std::string::npos) << r.err;
  r = pushctl({"message", "unknown-id"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not_found"), std::string::npos) << r.err;

  server_.signal(SIGTERM);
  auto st = server_.wait(15s);
  ASSERT_TRUE(st) << "push-api did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << slurp(dir_.file("push-api.err"));
}

TEST_F(PushApiProcess, PushctlMintsVerifiableDeviceTokens) {
  auto r = pushctl({"token", "--device", "d1", "--uid", "alice", "--ttl", "120", "--apps-file",
                    dir_.file("apps.toml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string token = r.out;
  while (!token.empty() && token.back() == '\n') token.pop_back();
  auth::DeviceClaims claims;
  EXPECT_EQ(auth::verify_device_token(token, "demo-device-secret", "demo", "d1",
                                      static_cast<uint64_t>(unix_now()), &claims),
            auth::TokenError::kOk);
  EXPECT_EQ(claims.user_id, "alice");
  EXPECT_LE(claims.exp_s, static_cast<uint64_t>(unix_now() + 121));

  r = pushctl({"token", "--device", "d1"});  // no secret anywhere
  EXPECT_EQ(r.code, 2);
}

TEST_F(PushApiProcess, BadConfigExitsWithCode2) {
  std::ofstream(dir_.file("bad.toml")) << "[listen]\nport = 99999\n";
  testsupport::SpawnOptions o;
  o.stderr_path = dir_.file("bad.err").string();
  auto p =
      testsupport::Process::spawn({PUSH_API_BIN, "--config", dir_.file("bad.toml").string()}, o);
  auto st = p.wait(10s);
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 2);
  EXPECT_NE(slurp(dir_.file("bad.err")).find("listen.port"), std::string::npos);
}

}  // namespace
}  // namespace pushgw::push_api::testing
