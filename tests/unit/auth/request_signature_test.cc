#include "common/auth/request_signature.h"

#include <gtest/gtest.h>

namespace pushgw::auth {
namespace {

constexpr std::string_view kBody = R"({"to":{"device_ids":["d1"]},"payload":"hi"})";
// Computed by an independent implementation (Python hmac/hashlib).
constexpr std::string_view kPostSig =
    "074136141bbeab2eb6c752e17f293d74c32bd3d08c413212fe320eada3f68cfc";
constexpr std::string_view kGetSig =
    "e65b8c6df5f026969e1ed78112b0c7234c4c7e4c61526bed74f5d66abcbf5599";

TEST(RequestSignature, MatchesIndependentImplementation) {
  EXPECT_EQ(sign_request("apisecret", "POST", "/v1/push", "1700000000", kBody), kPostSig);
  EXPECT_EQ(sign_request("apisecret", "GET", "/v1/devices/d1?x=1", "1700000000", ""), kGetSig);
}

TEST(RequestSignature, VerifiesWithinWindow) {
  EXPECT_EQ(verify_request("apisecret", "POST", "/v1/push", "1700000000", kBody, kPostSig,
                           1700000000 + 300),
            SignatureError::kOk);
  EXPECT_EQ(verify_request("apisecret", "POST", "/v1/push", "1700000000", kBody, kPostSig,
                           1700000000 - 300),
            SignatureError::kOk);
  std::string upper(kPostSig);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(verify_request("apisecret", "POST", "/v1/push", "1700000000", kBody, upper, 1700000000),
            SignatureError::kOk);
}

TEST(RequestSignature, RejectsStaleAndFutureTimestamps) {
  EXPECT_EQ(verify_request("apisecret", "POST", "/v1/push", "1700000000", kBody, kPostSig,
                           1700000000 + 301),
            SignatureError::kStale);
  EXPECT_EQ(verify_request("apisecret", "POST", "/v1/push", "1700000000", kBody, kPostSig,
                           1700000000 - 301),
            SignatureError::kStale);
}

TEST(RequestSignature, RejectsBadTimestamps) {
  for (std::string_view ts : {"", "abc", "17e8", "-1", "1700000000 ", "99999999999999"}) {
    EXPECT_EQ(verify_request("apisecret", "POST", "/v1/push", ts, kBody, kPostSig, 1700000000),
              SignatureError::kBadTimestamp)
        << ts;
  }
}

TEST(RequestSignature, RejectsTamperedBodyPathMethodOrSecret) {
  const uint64_t now = 1700000000;
  EXPECT_EQ(verify_request("apisecret", "POST", "/v1/push", "1700000000", "{}", kPostSig, now),
            SignatureError::kBadSignature);
  EXPECT_EQ(verify_request("apisecret", "POST", "/v1/pushx", "1700000000", kBody, kPostSig, now),
            SignatureError::kBadSignature);
  EXPECT_EQ(verify_request("apisecret", "PUT", "/v1/push", "1700000000", kBody, kPostSig, now),
            SignatureError::kBadSignature);
  EXPECT_EQ(verify_request("other", "POST", "/v1/push", "1700000000", kBody, kPostSig, now),
            SignatureError::kBadSignature);
  EXPECT_EQ(verify_request("apisecret", "POST", "/v1/push", "1700000000", kBody, "", now),
            SignatureError::kBadSignature);
}

}  // namespace
}  // namespace pushgw::auth
