#include "common/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>

#include "common/log.h"
#include "test_util.h"

namespace pushgw::common {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

enum class Mode { kFast, kSafe };

struct Cfg {
  int64_t top = 0;
  std::string redis_url;
  std::string password;
  milliseconds timeout{};
  uint16_t admin_port = 0;
  uint16_t backlog = 0;
  bool enabled = false;
  double ratio = 0;
  std::vector<std::string> brokers;
  seconds lease{};
  Mode mode = Mode::kFast;
  std::string level;
  LogConfig log;
  int untouched = 42;  // not declared: keeps its initializer
};

ConfigSchema<Cfg> make_schema() {
  ConfigSchema<Cfg> s;
  s.field("top", &Cfg::top, 5, "a top-level key", range(0, 100))
      .field("redis.url", &Cfg::redis_url, "redis://127.0.0.1:6379", "Redis endpoint", non_empty())
      .field("redis.password", &Cfg::password, "", "Redis AUTH password", secret())
      .field("redis.timeout_ms", &Cfg::timeout, milliseconds{500}, "per-command timeout",
             range(1, 60'000))
      .field("admin.port", &Cfg::admin_port, 9100, "admin HTTP port", range(1, 65535))
      .field("admin.backlog", &Cfg::backlog, 128, "listen backlog")
      .field("admin.enabled", &Cfg::enabled, true, "serve the admin endpoints")
      .field("bus.ratio", &Cfg::ratio, 0.5, "a ratio", range(0.0, 1.0))
      .field("bus.brokers", &Cfg::brokers, {"127.0.0.1:9092"}, "bootstrap servers")
      .field("node.lease_s", &Cfg::lease, seconds{30}, "device lease")
      .field("node.mode", &Cfg::mode, Mode::kFast, "delivery mode",
             enum_names<Mode>({{"fast", Mode::kFast}, {"safe", Mode::kSafe}}))
      .field("node.level", &Cfg::level, "low", "a restricted string", one_of({"low", "high"}));
  add_log_fields(s, &Cfg::log);
  return s;
}

struct Inputs {
  std::optional<std::string> toml = std::nullopt;
  std::map<std::string, std::string> env = {};
  std::vector<std::string> sets = {};
};

ConfigSources sources_of(const Inputs& in) {
  ConfigSources src;
  src.toml_text = in.toml;
  src.getenv = [env = in.env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  src.overrides = in.sets;
  return src;
}

Cfg load(const Inputs& in) { return make_schema().load(sources_of(in)); }

/// The message of the ConfigError that loading `in` throws ("" if none).
std::string load_error(const Inputs& in) {
  try {
    load(in);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsApplyWithoutInputs) {
  const Cfg c = make_schema().defaults();
  EXPECT_EQ(c.top, 5);
  EXPECT_EQ(c.redis_url, "redis://127.0.0.1:6379");
  EXPECT_EQ(c.password, "");
  EXPECT_EQ(c.timeout, milliseconds{500});
  EXPECT_EQ(c.admin_port, 9100);
  EXPECT_EQ(c.backlog, 128);
  EXPECT_TRUE(c.enabled);
  EXPECT_DOUBLE_EQ(c.ratio, 0.5);
  EXPECT_EQ(c.brokers, std::vector<std::string>{"127.0.0.1:9092"});
  EXPECT_EQ(c.lease, seconds{30});
  EXPECT_EQ(c.mode, Mode::kFast);
  EXPECT_EQ(c.level, "low");
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.log.format, LogFormat::kText);
  EXPECT_EQ(c.untouched, 42);
}

TEST(Config, FileSetsEveryKind) {
  const Cfg c = load({.toml = R"(
top = 7
[redis]
url = "redis://10.0.0.1:7000"
timeout_ms = 250
[admin]
port = 8080
enabled = false
[bus]
ratio = 1
brokers = ["a:1", "b:2"]
[node]
lease_s = 12
mode = "safe"
level = "high"
[log]
format = "json"
components = ["redis=debug"]
)"});
  EXPECT_EQ(c.top, 7);
  EXPECT_EQ(c.redis_url, "redis://10.0.0.1:7000");
  EXPECT_EQ(c.timeout, milliseconds{250});
  EXPECT_EQ(c.admin_port, 8080);
  EXPECT_FALSE(c.enabled);
  EXPECT_DOUBLE_EQ(c.ratio, 1.0);
  EXPECT_EQ(c.brokers, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_EQ(c.lease, seconds{12});
  EXPECT_EQ(c.mode, Mode::kSafe);
  EXPECT_EQ(c.level, "high");
  EXPECT_EQ(c.log.format, LogFormat::kJson);
  EXPECT_EQ(c.log.components, std::vector<std::string>{"redis=debug"});
}

TEST(Config, DottedKeysAndInlineTablesAreSections) {
  const Cfg c = load({.toml = "admin.port = 81\nredis = { url = \"redis://x:1\" }\n"});
  EXPECT_EQ(c.admin_port, 81);
  EXPECT_EQ(c.redis_url, "redis://x:1");
}

TEST(Config, UnknownKeyInFileNamesKeyFileAndSuggestion) {
  testing::ScratchDir dir;
  const auto path = dir.write("node.toml", "[redis]\nurll = \"redis://x\"\n");
  ConfigSources src;
  src.file = path;
  src.use_env = false;
  try {
    make_schema().load(src);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("unknown key 'redis.urll'"), HasSubstr(path.string()),
                                HasSubstr("line 2"), HasSubstr("did you mean 'redis.url'")));
  }
}

TEST(Config, UnknownSectionIsAnError) {
  EXPECT_THAT(load_error({.toml = "[nosuch]\nx = 1\n"}), HasSubstr("unknown key 'nosuch'"));
  EXPECT_THAT(load_error({.toml = "[admin]\nport = 1\nextra = true\n"}),
              HasSubstr("unknown key 'admin.extra'"));
}

TEST(Config, WrongTypeNamesKeyValueAndExpectation) {
  EXPECT_THAT(load_error({.toml = "[admin]\nport = \"abc\"\n"}),
              AllOf(HasSubstr("config key 'admin.port'"), HasSubstr("\"abc\""),
                    HasSubstr("expected an integer in [1, 65535]"), HasSubstr("<text>")));
  EXPECT_THAT(load_error({.toml = "[admin]\nenabled = 1\n"}),
              AllOf(HasSubstr("admin.enabled"), HasSubstr("integer 1"), HasSubstr("boolean")));
  EXPECT_THAT(
      load_error({.toml = "[bus]\nbrokers = [\"a\", 2]\n"}),
      AllOf(HasSubstr("bus.brokers"), HasSubstr("array of strings"), HasSubstr("integer 2")));
  EXPECT_THAT(load_error({.toml = "[bus]\nbrokers = \"a:1\"\n"}),
              AllOf(HasSubstr("bus.brokers"), HasSubstr("string \"a:1\"")));
  EXPECT_THAT(
      load_error({.toml = "[redis]\ntimeout_ms = \"250ms\"\n"}),
      AllOf(HasSubstr("redis.timeout_ms"), HasSubstr("milliseconds"), HasSubstr("\"250ms\"")));
  EXPECT_THAT(load_error({.toml = "[redis.url]\nx = 1\n"}),
              AllOf(HasSubstr("redis.url"), HasSubstr("a table")));
}

TEST(Config, SectionGivenAScalarIsAnError) {
  EXPECT_THAT(load_error({.toml = "redis = 5\n"}),
              AllOf(HasSubstr("'redis' is a section"), HasSubstr("expected a table")));
}

TEST(Config, OutOfRangeNamesKeyValueAndRange) {
  EXPECT_THAT(load_error({.toml = "[admin]\nport = 70000\n"}),
              AllOf(HasSubstr("config key 'admin.port'"), HasSubstr("70000"),
                    HasSubstr("out of range"), HasSubstr("[1, 65535]")));
  EXPECT_THAT(load_error({.toml = "[admin]\nport = 0\n"}), HasSubstr("out of range"));
  // The member type bounds apply without an explicit range.
  EXPECT_THAT(load_error({.toml = "[admin]\nbacklog = 65536\n"}),
              AllOf(HasSubstr("admin.backlog"), HasSubstr("[0, 65535]")));
  EXPECT_THAT(load_error({.toml = "[admin]\nbacklog = -1\n"}), HasSubstr("admin.backlog"));
  EXPECT_THAT(load_error({.toml = "[bus]\nratio = 1.5\n"}),
              AllOf(HasSubstr("bus.ratio"), HasSubstr("1.5"), HasSubstr("[0.0, 1.0]")));
  EXPECT_THAT(load_error({.toml = "top = 101\n"}), AllOf(HasSubstr("'top'"), HasSubstr("101")));
}

TEST(Config, ChoicesAreEnforced) {
  EXPECT_THAT(
      load_error({.toml = "[node]\nmode = \"turbo\"\n"}),
      AllOf(HasSubstr("node.mode"), HasSubstr("\"turbo\""), HasSubstr("one of: fast, safe")));
  EXPECT_THAT(load_error({.toml = "[node]\nlevel = \"mid\"\n"}),
              AllOf(HasSubstr("node.level"), HasSubstr("one of: low, high")));
  EXPECT_THAT(load_error({.toml = "[log]\nlevel = \"loud\"\n"}), HasSubstr("log.level"));
  EXPECT_THAT(load_error({.toml = "[redis]\nurl = \"\"\n"}),
              AllOf(HasSubstr("redis.url"), HasSubstr("non-empty")));
}

TEST(Config, SecretValuesNeverAppearInErrors) {
  const std::string msg = load_error({.toml = "[redis]\npassword = 987654321\n"});
  EXPECT_THAT(msg, AllOf(HasSubstr("redis.password"), HasSubstr("<redacted>"),
                         Not(HasSubstr("987654321"))));
}

TEST(Config, TomlSyntaxErrorNamesLine) {
  EXPECT_THAT(load_error({.toml = "top = 1\n[admin\nport = 2\n"}),
              AllOf(HasSubstr("<text>"), HasSubstr("line 2")));
}

TEST(Config, ExplicitMissingFileIsAnError) {
  testing::ScratchDir dir;
  ConfigSources src;
  src.file = dir.path() / "absent.toml";
  src.use_env = false;
  try {
    make_schema().load(src);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("absent.toml"), HasSubstr("does not exist")));
  }
  src.file = dir.path();
  EXPECT_THROW(make_schema().load(src), ConfigError);
}

TEST(Config, DefaultFileIsOptional) {
  testing::ScratchDir dir;
  ConfigSources src;
  src.use_env = false;
  src.default_file = dir.path() / "absent.toml";
  EXPECT_EQ(make_schema().load(src).top, 5);
  src.default_file = dir.write("present.toml", "top = 9\n");
  EXPECT_EQ(make_schema().load(src).top, 9);
  // An explicit file wins over the default one.
  src.file = dir.write("explicit.toml", "top = 11\n");
  EXPECT_EQ(make_schema().load(src).top, 11);
}

TEST(Config, EnvironmentOverridesFile) {
  const Cfg c = load({.toml = "[redis]\nurl = \"redis://file:1\"\n[admin]\nport = 8080\n",
                      .env = {{"PUSHGW_REDIS__URL", "redis://env:2"},
                              {"PUSHGW_REDIS__TIMEOUT_MS", " 75 "},
                              {"PUSHGW_ADMIN__ENABLED", "no"},
                              {"PUSHGW_BUS__BROKERS", "x:1, y:2"},
                              {"PUSHGW_NODE__MODE", "safe"},
                              {"PUSHGW_TOP", "+3"},
                              {"PUSHGW_UNRELATED", "ignored"}}});
  EXPECT_EQ(c.redis_url, "redis://env:2");
  EXPECT_EQ(c.admin_port, 8080);
  EXPECT_EQ(c.timeout, milliseconds{75});
  EXPECT_FALSE(c.enabled);
  EXPECT_EQ(c.brokers, (std::vector<std::string>{"x:1", "y:2"}));
  EXPECT_EQ(c.mode, Mode::kSafe);
  EXPECT_EQ(c.top, 3);
}

TEST(Config, BadEnvironmentValueNamesVariable) {
  EXPECT_THAT(load_error({.env = {{"PUSHGW_ADMIN__PORT", "eighty"}}}),
              AllOf(HasSubstr("admin.port"), HasSubstr("PUSHGW_ADMIN__PORT"),
                    HasSubstr("\"eighty\""), HasSubstr("integer")));
  EXPECT_THAT(load_error({.env = {{"PUSHGW_ADMIN__PORT", "99999"}}}),
              AllOf(HasSubstr("PUSHGW_ADMIN__PORT"), HasSubstr("out of range")));
  EXPECT_THAT(load_error({.env = {{"PUSHGW_ADMIN__ENABLED", "maybe"}}}),
              AllOf(HasSubstr("admin.enabled"), HasSubstr("boolean")));
  EXPECT_THAT(load_error({.env = {{"PUSHGW_BUS__RATIO", "1.0x"}}}), HasSubstr("bus.ratio"));
}

TEST(Config, ProcessEnvironmentIsReadByDefault) {
  ::setenv("PUSHGW_TOP", "17", 1);
  ConfigSources src;
  const Cfg c = make_schema().load(src);
  ::unsetenv("PUSHGW_TOP");
  EXPECT_EQ(c.top, 17);
  src.use_env = false;
  ::setenv("PUSHGW_TOP", "18", 1);
  const Cfg d = make_schema().load(src);
  ::unsetenv("PUSHGW_TOP");
  EXPECT_EQ(d.top, 5);
}

TEST(Config, SetOverridesEnvironmentInOrder) {
  const Cfg c = load({.env = {{"PUSHGW_ADMIN__PORT", "8080"}},
                      .sets = {"admin.port=9000", "admin.port = 9001", "redis.url=redis://a=b",
                               "bus.brokers=[\"h:1,x\", \"h:2\"]", "node.lease_s=7"}});
  EXPECT_EQ(c.admin_port, 9001);
  EXPECT_EQ(c.redis_url, "redis://a=b");
  EXPECT_EQ(c.brokers, (std::vector<std::string>{"h:1,x", "h:2"}));
  EXPECT_EQ(c.lease, seconds{7});
}

TEST(Config, BadSetIsAnError) {
  EXPECT_THAT(load_error({.sets = {"redis.urll=x"}}),
              AllOf(HasSubstr("unknown config key 'redis.urll'"), HasSubstr("redis.url")));
  EXPECT_THAT(load_error({.sets = {"admin.port"}}), HasSubstr("expected key=value"));
  EXPECT_THAT(load_error({.sets = {"admin.port=x"}}),
              AllOf(HasSubstr("admin.port"), HasSubstr("--set"), HasSubstr("\"x\"")));
  EXPECT_THAT(load_error({.sets = {"bus.brokers=[1, 2]"}}), HasSubstr("bus.brokers"));
}

TEST(Config, PrecedenceIsDefaultFileEnvSet) {
  const std::string toml = "top = 10\n[admin]\nport = 1000\n[redis]\nurl = \"redis://file\"\n";
  const std::map<std::string, std::string> env = {{"PUSHGW_ADMIN__PORT", "2000"},
                                                  {"PUSHGW_REDIS__URL", "redis://env"}};
  const Cfg c = load({.toml = toml, .env = env, .sets = {"redis.url=redis://set"}});
  EXPECT_EQ(c.lease, seconds{30});        // default only
  EXPECT_EQ(c.top, 10);                   // file beats default
  EXPECT_EQ(c.admin_port, 2000);          // env beats file
  EXPECT_EQ(c.redis_url, "redis://set");  // --set beats env
}

TEST(Config, RequiredKeyMustBeSet) {
  struct R {
    std::string node_id;
  };
  ConfigSchema<R> s;
  s.field("node.id", &R::node_id, "", "unique node id", non_empty());
  ConfigSources src;
  src.use_env = false;
  try {
    s.load(src);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("node.id"), HasSubstr("PUSHGW_NODE__ID")));
  }
  src.overrides = {"node.id=n1"};
  EXPECT_EQ(s.load(src).node_id, "n1");
}

TEST(Config, EnvNameMapping) {
  const auto s = make_schema();
  EXPECT_EQ(s.core().env_name("redis.url"), "PUSHGW_REDIS__URL");
  EXPECT_EQ(s.core().env_name("redis.timeout_ms"), "PUSHGW_REDIS__TIMEOUT_MS");
  EXPECT_EQ(s.core().env_name("top"), "PUSHGW_TOP");
}

TEST(Config, DescribeListsEveryKeyWithDefaultDocAndEnv) {
  const auto s = make_schema();
  const std::string d = s.describe();
  for (const auto& f : s.core().fields()) {
    EXPECT_THAT(d, HasSubstr("\n" + f.key + " = ")) << f.key;
    EXPECT_THAT(d, HasSubstr(s.core().env_name(f.key))) << f.key;
    EXPECT_THAT(d, HasSubstr(f.doc)) << f.key;
  }
  EXPECT_THAT(d, HasSubstr("admin.port = 9100"));
  EXPECT_THAT(d, HasSubstr("an integer in [1, 65535]"));
  EXPECT_THAT(d, HasSubstr("redis.timeout_ms = 500"));
  EXPECT_THAT(d, HasSubstr("bus.brokers = [\"127.0.0.1:9092\"]"));
  EXPECT_THAT(d, HasSubstr("node.mode = \"fast\""));
  EXPECT_THAT(d, HasSubstr("redis.password = <redacted>"));
}

TEST(Config, ToTomlMasksSecretsAndRoundTrips) {
  const auto s = make_schema();
  const Cfg c = load({.toml = "top = 3\n[redis]\npassword = \"hunter2\"\n",
                      .sets = {"bus.brokers=[\"a \\\"q\\\"\", \"b\\\\c\"]", "bus.ratio=0.25"}});
  const std::string masked = s.to_toml(c);
  EXPECT_THAT(masked, AllOf(HasSubstr("password = \"<redacted>\""), Not(HasSubstr("hunter2"))));
  EXPECT_THAT(masked, HasSubstr("[redis]"));
  EXPECT_THAT(masked, HasSubstr("# Redis endpoint"));

  const std::string plain = s.to_toml(c, /*mask_secrets=*/false);
  EXPECT_THAT(plain, HasSubstr("password = \"hunter2\""));
  const Cfg back = load({.toml = plain});
  EXPECT_EQ(back.top, 3);
  EXPECT_EQ(back.password, "hunter2");
  EXPECT_EQ(back.brokers, c.brokers);
  EXPECT_EQ(back.brokers, (std::vector<std::string>{"a \"q\"", "b\\c"}));
  EXPECT_DOUBLE_EQ(back.ratio, 0.25);
  EXPECT_EQ(back.timeout, c.timeout);
  EXPECT_EQ(back.mode, c.mode);
  EXPECT_EQ(s.to_toml(back, false), plain);
}

TEST(Config, BadDeclarationsAreRejected) {
  struct D {
    int a = 0;
    int b = 0;
    milliseconds t{};
    seconds u{};
    std::string s;
  };
  auto attempt = [](auto&& declare) {
    ConfigSchema<D> s;
    declare(s);
  };
  EXPECT_THROW(attempt([](auto& s) { s.field("x.a", &D::a, 1, "").field("x.a", &D::b, 1, ""); }),
               std::invalid_argument);
  EXPECT_THROW(attempt([](auto& s) { s.field("X.a", &D::a, 1, ""); }), std::invalid_argument);
  EXPECT_THROW(attempt([](auto& s) { s.field("x..a", &D::a, 1, ""); }), std::invalid_argument);
  EXPECT_THROW(attempt([](auto& s) { s.field("x__a", &D::a, 1, ""); }), std::invalid_argument);
  EXPECT_THROW(attempt([](auto& s) { s.field("x.timeout", &D::t, milliseconds{1}, ""); }),
               std::invalid_argument);
  EXPECT_THROW(attempt([](auto& s) { s.field("x.timeout_ms", &D::u, seconds{1}, ""); }),
               std::invalid_argument);
  EXPECT_THROW(attempt([](auto& s) { s.field("x.a", &D::a, 0, "", range(1, 2)); }),
               std::invalid_argument);
  EXPECT_THROW(attempt([](auto& s) { s.field("x", &D::a, 1, "").field("x.b", &D::b, 1, ""); }),
               std::invalid_argument);
  EXPECT_THROW(attempt([](auto& s) {
                 s.field("x.s", &D::s, "c", "", one_of({"a", "b"}));
               }),
               std::invalid_argument);
  EXPECT_NO_THROW(attempt([](auto& s) {
    s.field("x.a", &D::a, 1, "").field("x.timeout_ms", &D::t, milliseconds{1}, "");
  }));
}

TEST(Config, NestedStructsThroughAccessors) {
  struct Inner {
    int depth = 0;
  };
  struct Outer {
    Inner inner;
  };
  ConfigSchema<Outer> s;
  s.field(
      "inner.depth", [](auto& o) -> auto& { return o.inner.depth; }, 3, "depth");
  ConfigSources src;
  src.use_env = false;
  src.toml_text = "inner.depth = 4\n";
  const Outer o = s.load(src);
  EXPECT_EQ(o.inner.depth, 4);
  EXPECT_THAT(s.to_toml(o), HasSubstr("depth = 4"));
}

}  // namespace
}  // namespace pushgw::common
