#pragma once
/// Push API request signatures (push-api.md "Request signing"):
/// hex(HMAC-SHA256(api_secret, METHOD \n PATH_AND_QUERY \n TIMESTAMP \n hex(SHA256(body))))
#include <cstdint>
#include <string>
#include <string_view>

namespace pushgw::auth {

/// The lowercase hex signature of one request.
std::string sign_request(std::string_view api_secret, std::string_view method,
                         std::string_view path_and_query, std::string_view timestamp,
                         std::string_view body);

enum class SignatureError {
  kOk = 0,
  kBadTimestamp,  // not a decimal unix time
  kStale,         // more than `window_s` away from now
  kBadSignature,  // does not match
};

/// Checks a received signature in constant time and the timestamp window.
SignatureError verify_request(std::string_view api_secret, std::string_view method,
                              std::string_view path_and_query, std::string_view timestamp,
                              std::string_view body, std::string_view signature, uint64_t now_s,
                              uint64_t window_s = 300);

}  // namespace pushgw::auth
