// The online router's typed configuration.
#include "online_router/config.h"

#include <gtest/gtest.h>

namespace pushgw::online_router {
namespace {

using namespace std::chrono_literals;

common::ConfigSources text(std::string toml, std::vector<std::string> overrides = {}) {
  common::ConfigSources s;
  s.toml_text = std::move(toml);
  s.use_env = false;
  s.overrides = std::move(overrides);
  return s;
}

TEST(RouterConfig, DefaultsAreSaneAndNeedOnlyABootstrap) {
  auto cfg = load_config(text("[kafka]\nbootstrap = \"127.0.0.1:9092\"\n"));
  EXPECT_EQ(cfg.traffic_class, TrafficClass::kNormal);
  EXPECT_EQ(cfg.group_id(), "online-router.normal");
  EXPECT_EQ(cfg.batch_size, 4000u);
  EXPECT_EQ(cfg.max_in_flight, 8u);
  EXPECT_EQ(cfg.redis_url, "redis://127.0.0.1:6379");
  EXPECT_EQ(cfg.crash_after_consume, 0u);
  EXPECT_TRUE(cfg.counters);
  EXPECT_EQ(cfg.admin.port, 9210);
  EXPECT_THROW(load_config(text("")), common::ConfigError) << "no bootstrap";
}

TEST(RouterConfig, ClassSelectsTheGroup) {
  auto cfg = load_config(text("class = \"marketing\"\n[kafka]\nbootstrap_file = \"/tmp/x\"\n"));
  EXPECT_EQ(cfg.traffic_class, TrafficClass::kMarketing);
  EXPECT_EQ(cfg.group_id(), "online-router.marketing");
  EXPECT_EQ(class_name(cfg.traffic_class), "marketing");
  cfg.kafka.group_id = "custom";
  EXPECT_EQ(cfg.group_id(), "custom");
  EXPECT_THROW(load_config(text("class = \"bulk\"\n[kafka]\nbootstrap = \"h:1\"\n")),
               common::ConfigError);
}

TEST(RouterConfig, OverridesAndFailpoint) {
  auto cfg = load_config(text("[kafka]\nbootstrap = \"h:1\"\n",
                              {"failpoints.crash_after_consume=3", "batch_size=10",
                               "kafka.message_timeout_ms=0", "counters.enabled=false"}));
  EXPECT_EQ(cfg.crash_after_consume, 3u);
  EXPECT_EQ(cfg.batch_size, 10u);
  EXPECT_EQ(cfg.kafka.message_timeout, 0ms);
  EXPECT_FALSE(cfg.counters);
}

TEST(RouterConfig, ErrorsNameTheKey) {
  auto expect_error = [](const std::string& toml, const std::string& key) {
    try {
      load_config(text(toml));
      ADD_FAILURE() << "no error for " << toml;
    } catch (const common::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  const std::string k = "[kafka]\nbootstrap = \"h:1\"\n";
  expect_error("batch_size = 0\n" + k, "batch_size");
  expect_error("max_in_flight = 0\n" + k, "max_in_flight");
  expect_error("bogus = 1\n" + k, "bogus");
  expect_error("retry_backoff_min_ms = 500\nretry_backoff_max_ms = 100\n" + k,
               "retry_backoff_max_ms");
  expect_error(k + "properties = [\"novalue\"]\n", "kafka.properties");
  expect_error("[redis]\nurl = \"\"\n" + k, "redis.url");
}

TEST(RouterConfig, PrintedConfigLoadsBack) {
  auto cfg =
      load_config(text("class = \"marketing\"\nbatch_size = 77\n[kafka]\nbootstrap = "
                       "\"h:1\"\n"));
  const auto toml = config_schema().to_toml(cfg, /*mask_secrets=*/false);
  auto again = load_config(text(toml));
  EXPECT_EQ(again.traffic_class, TrafficClass::kMarketing);
  EXPECT_EQ(again.batch_size, 77u);
  EXPECT_EQ(again.kafka.bootstrap, "h:1");
}

}  // namespace
}  // namespace pushgw::online_router
