// push-api configuration: defaults, layering and validation messages.
#include "push_api/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pushgw::push_api {
namespace {

using ::testing::HasSubstr;

PushApiConfig load(std::string toml, std::vector<std::string> overrides = {}) {
  common::ConfigSources src;
  src.toml_text = std::move(toml);
  src.use_env = false;
  src.overrides = std::move(overrides);
  return load_config(src);
}

std::string error_of(std::string toml) {
  try {
    load(std::move(toml));
  } catch (const common::ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(PushApiConfig, DefaultsMatchTheSpec) {
  const auto cfg = load("[kafka]\nbootstrap = \"127.0.0.1:9092\"\n");
  EXPECT_EQ(cfg.listen.port, 8080);
  EXPECT_EQ(cfg.limits.max_payload_bytes, 4096u);
  EXPECT_EQ(cfg.limits.max_device_ids, 1000u);
  EXPECT_EQ(cfg.limits.max_user_ids, 100u);
  EXPECT_EQ(cfg.limits.max_ttl_s, 2'592'000u);
  EXPECT_EQ(cfg.limits.default_ttl_s, 86'400u);
  EXPECT_EQ(cfg.limits.signature_window.count(), 300);
  EXPECT_EQ(cfg.idempotency.ttl.count(), 86'400);
  EXPECT_EQ(cfg.dispatch.ttl_s, 300u);
  EXPECT_EQ(cfg.redis_url, "redis://127.0.0.1:6379");
}

TEST(PushApiConfig, OverridesAndFile) {
  const auto cfg = load("threads = 4\n[kafka]\nbootstrap_file = \"/tmp/bs\"\n",
                        {"listen.port=9000", "kafka.produce_timeout_ms=250"});
  EXPECT_EQ(cfg.threads, 4u);
  EXPECT_EQ(cfg.listen.port, 9000);
  EXPECT_EQ(cfg.kafka.produce_timeout.count(), 250);
  EXPECT_EQ(cfg.kafka.bootstrap_file, "/tmp/bs");
}

TEST(PushApiConfig, ValidationNamesTheKey) {
  EXPECT_THAT(error_of(""), HasSubstr("kafka.bootstrap"));
  EXPECT_THAT(error_of("[kafka]\nbootstrap=\"x:1\"\nproperties=[\"acks\"]\n"),
              HasSubstr("kafka.properties"));
  EXPECT_THAT(error_of("[kafka]\nbootstrap=\"x:1\"\n[limits]\ndefault_ttl_s=100\nmax_ttl_s=10\n"),
              HasSubstr("limits.default_ttl_s"));
  EXPECT_THAT(error_of("[kafka]\nbootstrap=\"x:1\"\n[limits]\nmax_body_bytes=4096\n"),
              HasSubstr("limits.max_body_bytes"));
  EXPECT_THAT(error_of("[kafka]\nbootstrap=\"x:1\"\n[listen]\nport=9300\n"),
              HasSubstr("admin.port"));
  EXPECT_THAT(error_of("[kafka]\nbootstrap=\"x:1\"\n[listen]\nport=70000\n"),
              HasSubstr("listen.port"));
  EXPECT_THAT(error_of("[kafka]\nbootstrap=\"x:1\"\nbogus=1\n"), HasSubstr("kafka.bogus"));
}

}  // namespace
}  // namespace pushgw::push_api
