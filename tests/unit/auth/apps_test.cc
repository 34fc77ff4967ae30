#include "common/auth/apps.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pushgw::auth {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kTwoApps = R"(
[[app]]
id = "demo"
api_secret = "a1"
device_secret = "d1"
quota_marketing_rps = 5
upstream_channels = ["chat"]

[[app]]
id = "other"
api_secret = "a2"
device_secret = "d2"
upstream_channels = ["*"]
)";

TEST(Apps, LoadsAppsWithDefaults) {
  AppRegistry r = AppRegistry::load_toml(kTwoApps);
  ASSERT_EQ(r.size(), 2u);
  const AppConfig* demo = r.find("demo");
  ASSERT_NE(demo, nullptr);
  EXPECT_EQ(demo->api_secret, "a1");
  EXPECT_EQ(demo->device_secret, "d1");
  EXPECT_DOUBLE_EQ(demo->quota_marketing_rps, 5);
  EXPECT_DOUBLE_EQ(demo->quota_normal_rps, 5000);
  EXPECT_TRUE(demo->upstream_allowed("chat"));
  EXPECT_FALSE(demo->upstream_allowed("billing"));
  const AppConfig* other = r.find("other");
  ASSERT_NE(other, nullptr);
  EXPECT_TRUE(other->upstream_allowed("anything"));
  EXPECT_FALSE(other->upstream_allowed("bad/name"));
  EXPECT_EQ(r.find("nope"), nullptr);
}

void expect_error(std::string_view text, std::string_view needle) {
  try {
    AppRegistry::load_toml(text, "apps.toml");
    ADD_FAILURE() << "expected an error containing " << needle;
  } catch (const AppsError& e) {
    EXPECT_THAT(e.what(), HasSubstr(std::string(needle)));
  }
}

TEST(Apps, RejectsBadInputNamingTheKey) {
  expect_error("[[app]]\nid=\"a\"\napi_secret=\"x\"\ndevice_secret=\"y\"\nquota=1\n",
               "unknown key 'quota'");
  expect_error("[[app]]\nid=\"a\"\ndevice_secret=\"y\"\n", "missing key 'api_secret'");
  expect_error("[[app]]\nid=\"a\"\napi_secret=\"\"\ndevice_secret=\"y\"\n",
               "'api_secret' must not be empty");
  expect_error("[[app]]\nid=\"a b\"\napi_secret=\"x\"\ndevice_secret=\"y\"\n", "id must be");
  expect_error(
      "[[app]]\nid=\"a\"\napi_secret=\"x\"\ndevice_secret=\"y\"\n"
      "[[app]]\nid=\"a\"\napi_secret=\"x\"\ndevice_secret=\"y\"\n",
      "duplicate app id");
  expect_error("[[app]]\nid=\"a\"\napi_secret=\"x\"\ndevice_secret=\"y\"\nquota_normal_rps=-1\n",
               "'quota_normal_rps' must be > 0");
  expect_error("[[app]]\nid=\"a\"\napi_secret=\"x\"\ndevice_secret=\"y\"\nquota_normal_rps=\"x\"\n",
               "must be a number");
  expect_error(
      "[[app]]\nid=\"a\"\napi_secret=\"x\"\ndevice_secret=\"y\"\n"
      "upstream_channels=[\"a/b\"]\n",
      "upstream_channels");
  expect_error("apps = 1\n", "unknown top-level key 'apps'");
  expect_error("", "no [[app]] tables");
  expect_error("[[app]\n", "apps.toml");
}

TEST(Apps, MissingFileIsAnError) {
  EXPECT_THROW(AppRegistry::load_file("/nonexistent/apps.toml"), AppsError);
}

}  // namespace
}  // namespace pushgw::auth
