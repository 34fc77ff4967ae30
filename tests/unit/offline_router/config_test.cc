// The offline router's typed configuration: defaults, key errors, round trip.
#include "offline_router/config.h"

#include <gtest/gtest.h>

namespace pushgw::offline_router {
namespace {

using namespace std::chrono_literals;

RouterConfig load(std::string toml, std::vector<std::string> overrides = {}) {
  common::ConfigSources s;
  s.toml_text = std::move(toml);
  s.use_env = false;
  s.overrides = std::move(overrides);
  RouterConfig cfg = config_schema().load(s);
  cfg.validate();
  return cfg;
}

TEST(OfflineRouterConfig, DefaultsAreSaneAndNeedOnlyABootstrap) {
  auto cfg = load("[kafka]\nbootstrap = \"127.0.0.1:9092\"\n");
  EXPECT_EQ(cfg.kafka.group_id, "pushgw-offline-router");
  EXPECT_EQ(cfg.kafka.offline_topic, "pushgw.offline");
  EXPECT_EQ(cfg.kafka.presence_topic, "pushgw.presence");
  EXPECT_EQ(cfg.kafka.acks_topic, "pushgw.acks");
  EXPECT_EQ(cfg.kafka.deliver_prefix, "pushgw.deliver.");
  EXPECT_EQ(cfg.kafka.partitions, 16);
  EXPECT_TRUE(cfg.store.sync);
  EXPECT_EQ(cfg.store.max_per_device, 100u);
  EXPECT_EQ(cfg.store.ack_retention, std::chrono::seconds(7 * 24 * 3600));
  EXPECT_EQ(cfg.batch.max_records, 2000u);
  EXPECT_EQ(cfg.batch.retry_backoff, 1000ms);
  EXPECT_TRUE(cfg.replay.forward_late_stores);
  EXPECT_EQ(cfg.admin.port, 9400);
  EXPECT_THROW(load(""), common::ConfigError) << "no bootstrap";
  EXPECT_NO_THROW(load("[kafka]\nbootstrap_file = \"/tmp/x\"\n"));
}

TEST(OfflineRouterConfig, OverridesApply) {
  auto cfg = load("[kafka]\nbootstrap = \"h:1\"\n",
                  {"store.sync=false", "batch.max_records=10", "store.data_dir=/tmp/o",
                   "replay.forward_late_stores=false", "kafka.partitions=4"});
  EXPECT_FALSE(cfg.store.sync);
  EXPECT_EQ(cfg.batch.max_records, 10u);
  EXPECT_EQ(cfg.store.data_dir, "/tmp/o");
  EXPECT_FALSE(cfg.replay.forward_late_stores);
  EXPECT_EQ(cfg.kafka.partitions, 4);
}

TEST(OfflineRouterConfig, ErrorsNameTheKey) {
  auto expect_error = [](const std::string& toml, const std::string& key) {
    try {
      load(toml);
      ADD_FAILURE() << "no error for " << toml;
    } catch (const common::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  const std::string k = "[kafka]\nbootstrap = \"h:1\"\n";
  expect_error(k + "partitions = 0\n", "kafka.partitions");
  expect_error(k + "bogus = 1\n", "bogus");
  expect_error(k + "properties = [\"novalue\"]\n", "kafka.properties");
  expect_error(k + "presence_topic = \"pushgw.offline\"\n", "kafka.offline_topic");
  expect_error(k + "session_timeout_ms = 2000\nheartbeat_interval_ms = 2000\n",
               "kafka.heartbeat_interval_ms");
  expect_error(k + "[store]\nmax_per_device = 0\n", "store.max_per_device");
  expect_error(k + "[store]\ndata_dir = \"\"\n", "store.data_dir");
  expect_error(k + "[batch]\nmax_records = 0\n", "batch.max_records");
  expect_error(k + "[replay]\nproduce_attempts = 0\n", "replay.produce_attempts");
}

TEST(OfflineRouterConfig, PrintedConfigLoadsBack) {
  auto cfg = load("[kafka]\nbootstrap = \"h:1\"\ngroup_id = \"g\"\n[store]\nmax_per_device = 7\n");
  const auto toml = config_schema().to_toml(cfg, /*mask_secrets=*/false);
  auto again = load(toml);
  EXPECT_EQ(again.kafka.bootstrap, "h:1");
  EXPECT_EQ(again.kafka.group_id, "g");
  EXPECT_EQ(again.store.max_per_device, 7u);
}

}  // namespace
}  // namespace pushgw::offline_router
