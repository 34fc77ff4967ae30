#include "common/cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <sstream>

#include "common/version.h"
#include "test_util.h"

namespace pushgw::common {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

struct Cfg {
  std::string url;
  std::string token;
  uint16_t port = 0;
};

/// `env_prefix` "" keeps a test independent of the caller's PUSHGW_* variables.
ConfigSchema<Cfg> make_schema(std::string env_prefix = "") {
  ConfigSchema<Cfg> s(std::move(env_prefix));
  s.field("redis.url", &Cfg::url, "redis://127.0.0.1:6379", "Redis endpoint")
      .field("redis.token", &Cfg::token, "", "Redis AUTH token", secret())
      .field("admin.port", &Cfg::port, 9100, "admin port", range(1, 65535));
  return s;
}

struct CliRun {
  std::optional<Cfg> cfg;
  int code = -1;
  std::string out;
  std::string err;
};

/// Parses `args` (without argv[0]) like a binary would.
CliRun run(std::vector<std::string> args, CommandLine* cli_in = nullptr) {
  CommandLine local("testbin", "a test binary");
  CommandLine& cli = cli_in ? *cli_in : local;
  std::vector<const char*> argv{"testbin"};
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out;
  std::ostringstream err;
  CliRun r;
  r.cfg = cli.parse(static_cast<int>(argv.size()), argv.data(), make_schema(), out, err);
  r.code = cli.exit_code();
  r.out = out.str();
  r.err = err.str();
  return r;
}

TEST(CommandLine, NoArgumentsGivesDefaults) {
  const CliRun r = run({});
  ASSERT_TRUE(r.cfg) << r.err;
  EXPECT_EQ(r.cfg->port, 9100);
  EXPECT_EQ(r.cfg->url, "redis://127.0.0.1:6379");
}

TEST(CommandLine, ConfigFileAndRepeatedSet) {
  testing::ScratchDir dir;
  const auto file = dir.write("c.toml", "[admin]\nport = 8000\n[redis]\nurl = \"redis://f\"\n");
  const CliRun r =
      run({"--config", file.string(), "--set", "admin.port=8001", "--set", "redis.token=abc"});
  ASSERT_TRUE(r.cfg) << r.err;
  EXPECT_EQ(r.cfg->port, 8001);
  EXPECT_EQ(r.cfg->url, "redis://f");
  EXPECT_EQ(r.cfg->token, "abc");
}

TEST(CommandLine, SetTakesExactlyOneValue) {
  const CliRun r = run({"--set", "admin.port=1", "admin.port=2"});
  EXPECT_FALSE(r.cfg);
  EXPECT_NE(r.code, 0);
  EXPECT_FALSE(r.err.empty());
}

TEST(CommandLine, HelpConfigListsKeys) {
  const CliRun r = run({"--help-config"});
  EXPECT_FALSE(r.cfg);
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, AllOf(HasSubstr("redis.url = \"redis://127.0.0.1:6379\""),
                           HasSubstr("admin.port = 9100"), HasSubstr("Redis AUTH token")));
}

TEST(CommandLine, HelpConfigWorksDespiteMissingRequiredFlags) {
  CommandLine cli("testbin", "a test binary");
  std::string node;
  cli.app().add_option("--node", node, "node id")->required();
  const CliRun r = run({"--help-config"}, &cli);
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("admin.port"));
}

TEST(CommandLine, PrintConfigMasksSecretsAndLoadsBack) {
  const CliRun r = run({"--print-config", "--set", "redis.token=s3cret", "--set", "admin.port=81"});
  EXPECT_FALSE(r.cfg);
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, AllOf(HasSubstr("port = 81"), HasSubstr("token = \"<redacted>\""),
                           Not(HasSubstr("s3cret"))));
  ConfigSources src;
  src.use_env = false;
  src.toml_text = r.out;
  EXPECT_EQ(make_schema().load(src).port, 81);
}

TEST(CommandLine, VersionAndHelp) {
  const CliRun v = run({"--version"});
  EXPECT_FALSE(v.cfg);
  EXPECT_EQ(v.code, 0);
  EXPECT_THAT(v.out, HasSubstr("testbin " + std::string(version())));
  const CliRun h = run({"--help"});
  EXPECT_EQ(h.code, 0);
  EXPECT_THAT(h.out, AllOf(HasSubstr("--config"), HasSubstr("--set"), HasSubstr("--help-config"),
                           HasSubstr("--print-config"), HasSubstr("--version")));
}

TEST(CommandLine, BadFlagAndBadConfigFail) {
  const CliRun bad = run({"--no-such-flag"});
  EXPECT_FALSE(bad.cfg);
  EXPECT_NE(bad.code, 0);
  EXPECT_THAT(bad.err, HasSubstr("no-such-flag"));

  const CliRun cfg = run({"--set", "admin.port=0"});
  EXPECT_FALSE(cfg.cfg);
  EXPECT_EQ(cfg.code, 2);
  EXPECT_THAT(cfg.err, AllOf(HasSubstr("testbin: config error"), HasSubstr("admin.port")));

  const CliRun missing = run({"--config", "/nonexistent/pushgw.toml"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/pushgw.toml"));
}

TEST(CommandLine, BinaryFlagsAndDefaultConfigFile) {
  testing::ScratchDir dir;
  CommandLine cli("testbin", "a test binary");
  int workers = 0;
  cli.app().add_option("--workers", workers, "worker count");
  cli.set_default_config_file(dir.write("default.toml", "[admin]\nport = 7000\n"));
  const CliRun r = run({"--workers", "3"}, &cli);
  ASSERT_TRUE(r.cfg) << r.err;
  EXPECT_EQ(workers, 3);
  EXPECT_EQ(r.cfg->port, 7000);
}

}  // namespace
}  // namespace pushgw::common
