#include "common/auth/request_signature.h"

#include <charconv>

#include "common/auth/crypto.h"

namespace pushgw::auth {

std::string sign_request(std::string_view api_secret, std::string_view method,
                         std::string_view path_and_query, std::string_view timestamp,
                         std::string_view body) {
  std::string msg;
  msg.reserve(method.size() + path_and_query.size() + timestamp.size() + 67);
  msg.append(method).push_back('\n');
  msg.append(path_and_query).push_back('\n');
  msg.append(timestamp).push_back('\n');
  msg.append(to_hex(sha256(body)));
  return to_hex(hmac_sha256(api_secret, msg));
}

SignatureError verify_request(std::string_view api_secret, std::string_view method,
                              std::string_view path_and_query, std::string_view timestamp,
                              std::string_view body, std::string_view signature, uint64_t now_s,
                              uint64_t window_s) {
  uint64_t ts = 0;
  auto [ptr, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
  if (timestamp.empty() || timestamp.size() > 12 || ec != std::errc() ||
      ptr != timestamp.data() + timestamp.size()) {
    return SignatureError::kBadTimestamp;
  }
  uint64_t diff = ts > now_s ? ts - now_s : now_s - ts;
  if (diff > window_s) return SignatureError::kStale;
  std::string expected = sign_request(api_secret, method, path_and_query, timestamp, body);
  // Accept uppercase hex too: compare case-folded in constant time.
  std::string got(signature);
  for (char& c : got) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!constant_time_equal(got, expected)) return SignatureError::kBadSignature;
  return SignatureError::kOk;
}

}  // namespace pushgw::auth
