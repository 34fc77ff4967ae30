#include "common/auth/device_token.h"

#include <boost/json.hpp>

#include "common/auth/crypto.h"

namespace pushgw::auth {

namespace json = boost::json;

std::string_view token_error_name(TokenError e) noexcept {
  switch (e) {
    case TokenError::kOk:
      return "ok";
    case TokenError::kMalformed:
      return "malformed";
    case TokenError::kBadAlgorithm:
      return "bad_algorithm";
    case TokenError::kBadSignature:
      return "bad_signature";
    case TokenError::kMissingClaim:
      return "missing_claim";
    case TokenError::kWrongApp:
      return "wrong_app";
    case TokenError::kWrongDevice:
      return "wrong_device";
    case TokenError::kExpired:
      return "expired";
  }
  return "unknown";
}

std::string mint_device_token(const DeviceClaims& claims, std::string_view device_secret) {
  json::object payload;
  payload["app"] = claims.app_id;
  payload["sub"] = claims.device_id;
  if (!claims.user_id.empty()) payload["uid"] = claims.user_id;
  payload["exp"] = claims.exp_s;
  std::string signing_input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  signing_input.push_back('.');
  signing_input += base64url_encode(json::serialize(payload));
  std::string sig = base64url_encode(hmac_sha256(device_secret, signing_input));
  return signing_input + "." + sig;
}

namespace {

std::optional<json::object> parse_object(std::string_view b64) {
  auto raw = base64url_decode(b64);
  if (!raw) return std::nullopt;
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 8;
  json::value v = json::parse(*raw, ec, {}, opts);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

}  // namespace

TokenError verify_device_token(std::string_view token, std::string_view device_secret,
                               std::string_view app_id, std::string_view device_id, uint64_t now_s,
                               DeviceClaims* out) {
  constexpr size_t kMaxTokenBytes = 4096;
  if (token.empty() || token.size() > kMaxTokenBytes) return TokenError::kMalformed;
  size_t d1 = token.find('.');
  if (d1 == std::string_view::npos) return TokenError::kMalformed;
  size_t d2 = token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) {
    return TokenError::kMalformed;
  }
  auto header = parse_object(token.substr(0, d1));
  if (!header) return TokenError::kMalformed;
  const json::value* alg = header->if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->as_string() != "HS256") {
    return TokenError::kBadAlgorithm;
  }
  auto sig = base64url_decode(token.substr(d2 + 1));
  if (!sig) return TokenError::kMalformed;
  std::string expected = hmac_sha256(device_secret, token.substr(0, d2));
  if (!constant_time_equal(*sig, expected)) return TokenError::kBadSignature;

  auto payload = parse_object(token.substr(d1 + 1, d2 - d1 - 1));
  if (!payload) return TokenError::kMalformed;
  const json::value* app = payload->if_contains("app");
  const json::value* sub = payload->if_contains("sub");
  const json::value* exp = payload->if_contains("exp");
  const json::value* uid = payload->if_contains("uid");
  if (app == nullptr || sub == nullptr || exp == nullptr) return TokenError::kMissingClaim;
  if (!app->is_string() || !sub->is_string() || (uid != nullptr && !uid->is_string())) {
    return TokenError::kMalformed;
  }
  uint64_t exp_s = 0;
  if (exp->is_uint64()) {
    exp_s = exp->as_uint64();
  } else if (exp->is_int64() && exp->as_int64() >= 0) {
    exp_s = static_cast<uint64_t>(exp->as_int64());
  } else if (exp->is_int64()) {
    exp_s = 0;
  } else {
    return TokenError::kMalformed;
  }
  if (app->as_string() != app_id) return TokenError::kWrongApp;
  if (sub->as_string() != device_id) return TokenError::kWrongDevice;
  if (exp_s <= now_s) return TokenError::kExpired;
  if (out != nullptr) {
    out->app_id = std::string(app->as_string());
    out->device_id = std::string(sub->as_string());
    out->user_id = uid != nullptr ? std::string(uid->as_string()) : std::string();
    out->exp_s = exp_s;
  }
  return TokenError::kOk;
}

}  // namespace pushgw::auth
