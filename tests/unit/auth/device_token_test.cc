#include "common/auth/device_token.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/auth/crypto.h"

namespace pushgw::auth {
namespace {

// Minted by an independent implementation (Python hmac/base64) for app "demo",
// device "dev-1", uid "u1", exp 2000000000, secret "devsecret".
constexpr std::string_view kPythonToken =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJhcHAiOiJkZW1vIiwic3ViIjoiZGV2LTEiLCJ1aWQiOiJ1MSIsImV4cCI6MjAwMDAwMDAwMH0."
    "YHTg5fi51OAn2zKDaDQuovuiGsVx2Cz-MeeSHV4_DaY";
constexpr std::string_view kAlgNone =
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
    "eyJhcHAiOiJkZW1vIiwic3ViIjoiZGV2LTEiLCJ1aWQiOiJ1MSIsImV4cCI6MjAwMDAwMDAwMH0.";
constexpr std::string_view kHs512 =
    "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9."
    "eyJhcHAiOiJkZW1vIiwic3ViIjoiZGV2LTEiLCJ1aWQiOiJ1MSIsImV4cCI6MjAwMDAwMDAwMH0."
    "UU1bXXHJr0BPiNkvBhuu7TC0uFIWICMhIrqLu2KttiodzRU1Blc2bV_HEaHWWi0TbjgeGELrZ5NKR4iJAoeJLg";
constexpr uint64_t kNow = 1'700'000'000;

TEST(DeviceToken, VerifiesTokenFromIndependentImplementation) {
  DeviceClaims c;
  EXPECT_EQ(verify_device_token(kPythonToken, "devsecret", "demo", "dev-1", kNow, &c),
            TokenError::kOk);
  EXPECT_EQ(c.app_id, "demo");
  EXPECT_EQ(c.device_id, "dev-1");
  EXPECT_EQ(c.user_id, "u1");
  EXPECT_EQ(c.exp_s, 2'000'000'000u);
}

TEST(DeviceToken, MintedTokenMatchesIndependentImplementation) {
  EXPECT_EQ(mint_device_token({"demo", "dev-1", "u1", 2'000'000'000}, "devsecret"), kPythonToken);
}

TEST(DeviceToken, RejectsWrongSecret) {
  EXPECT_EQ(verify_device_token(kPythonToken, "other", "demo", "dev-1", kNow),
            TokenError::kBadSignature);
}

TEST(DeviceToken, RejectsAlgNoneAndOtherAlgorithms) {
  EXPECT_EQ(verify_device_token(kAlgNone, "devsecret", "demo", "dev-1", kNow),
            TokenError::kBadAlgorithm);
  EXPECT_EQ(verify_device_token(kHs512, "devsecret", "demo", "dev-1", kNow),
            TokenError::kBadAlgorithm);
}

TEST(DeviceToken, RejectsWrongAppAndDevice) {
  EXPECT_EQ(verify_device_token(kPythonToken, "devsecret", "other", "dev-1", kNow),
            TokenError::kWrongApp);
  EXPECT_EQ(verify_device_token(kPythonToken, "devsecret", "demo", "dev-2", kNow),
            TokenError::kWrongDevice);
}

TEST(DeviceToken, RejectsExpired) {
  std::string t = mint_device_token({"a", "d", "", kNow}, "s");
  EXPECT_EQ(verify_device_token(t, "s", "a", "d", kNow), TokenError::kExpired);
  EXPECT_EQ(verify_device_token(t, "s", "a", "d", kNow - 1), TokenError::kOk);
}

TEST(DeviceToken, RejectsMalformed) {
  for (std::string_view bad : {"", "abc", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.", "....."}) {
    EXPECT_NE(verify_device_token(bad, "s", "a", "d", kNow), TokenError::kOk) << bad;
  }
  // Valid header and signature over a payload that is not JSON.
  std::string si = base64url_encode(R"({"alg":"HS256"})") + "." + base64url_encode("not json");
  std::string t = si + "." + base64url_encode(hmac_sha256("s", si));
  EXPECT_EQ(verify_device_token(t, "s", "a", "d", kNow), TokenError::kMalformed);
  // Claims of the wrong type.
  si = base64url_encode(R"({"alg":"HS256"})") + "." +
       base64url_encode(R"({"app":1,"sub":"d","exp":2000000000})");
  t = si + "." + base64url_encode(hmac_sha256("s", si));
  EXPECT_EQ(verify_device_token(t, "s", "a", "d", kNow), TokenError::kMalformed);
  // Missing exp.
  si = base64url_encode(R"({"alg":"HS256"})") + "." + base64url_encode(R"({"app":"a","sub":"d"})");
  t = si + "." + base64url_encode(hmac_sha256("s", si));
  EXPECT_EQ(verify_device_token(t, "s", "a", "d", kNow), TokenError::kMissingClaim);
}

TEST(DeviceToken, TamperedPayloadFailsSignature) {
  std::string t(kPythonToken);
  size_t d1 = t.find('.');
  t[d1 + 5] = t[d1 + 5] == 'A' ? 'B' : 'A';
  EXPECT_NE(verify_device_token(t, "devsecret", "demo", "dev-1", kNow), TokenError::kOk);
}

TEST(Crypto, Base64RoundTripsAndRejectsGarbage) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba",
                                                       "foobar", std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(base64url_decode(base64url_encode(s)).value(), s);
    EXPECT_EQ(base64_decode(base64_encode(s)).value(), s);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_FALSE(base64_decode("Zm8").has_value());  // padding required
  EXPECT_FALSE(base64_decode("Zm$=").has_value());
  EXPECT_FALSE(base64url_decode("A").has_value());
  EXPECT_FALSE(base64url_decode("Zh").has_value());  // non-canonical trailing bits
}

TEST(Crypto, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

}  // namespace
}  // namespace pushgw::auth
