// The admin endpoint's pure parts: query parsing, the JSON answer, and the
// key -> partition mapping (librdkafka's consistent partitioner).
#include "offline_router/admin.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace pushgw::offline_router {
namespace {

namespace json = boost::json;

TEST(DeviceQuery, ParsesBothKeysPercentDecodedInAnyOrder) {
  auto q = parse_device_query("device_id=d%2F1%20x&other=1&app_id=a+b");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->app_id, "a b");
  EXPECT_EQ(q->device_id, "d/1 x");
  EXPECT_FALSE(parse_device_query("app_id=a"));
  EXPECT_FALSE(parse_device_query("app_id=a&device_id="));
  EXPECT_FALSE(parse_device_query("app_id=a&device_id=%2"));
  EXPECT_FALSE(parse_device_query("app_id=a&device_id=%zz"));
  EXPECT_FALSE(parse_device_query(""));
}

TEST(DeviceQuery, AnswerCarriesTheFiguresOnlyWhenOwned) {
  DeviceQuery q{"app", "dev\"1"};
  DeviceStored d;
  d.partition = 3;
  d.owned = true;
  d.stats.stored = 7;
  d.stats.highest_stored_seq = 42;
  d.stats.watermark = 30;
  auto owned = device_stored_response(q, d);
  EXPECT_EQ(owned.status, 200u);
  auto v = json::parse(owned.body).as_object();
  EXPECT_EQ(v.at("device_id").as_string(), "dev\"1");
  EXPECT_EQ(v.at("partition").to_number<int>(), 3);
  EXPECT_TRUE(v.at("owned").as_bool());
  EXPECT_EQ(v.at("stored").to_number<uint64_t>(), 7u);
  EXPECT_EQ(v.at("highest_seq").to_number<uint64_t>(), 42u);
  EXPECT_EQ(v.at("watermark").to_number<uint64_t>(), 30u);

  d.owned = false;
  auto other = device_stored_response(q, d);
  EXPECT_EQ(other.status, 404u);
  auto o = json::parse(other.body).as_object();
  EXPECT_FALSE(o.at("owned").as_bool());
  EXPECT_FALSE(o.contains("stored"));
}

TEST(PartitionOfKey, IsCrc32ModuloThePartitionCount) {
  // CRC-32 (IEEE) of "123456789" is 0xCBF43926 = 3421780262.
  EXPECT_EQ(partition_of_key("123456789", 1000), 262);
  EXPECT_EQ(partition_of_key("123456789", 1), 0);
  EXPECT_EQ(partition_of_key("x", 0), -1);
}

}  // namespace
}  // namespace pushgw::offline_router
