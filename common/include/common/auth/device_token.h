#pragma once
/// Device tokens (push-api.md "Device tokens"): JWT, HS256 with the app's
/// device_secret, claims app, sub, optional uid, exp. Verification pins the
/// algorithm to HS256 (alg "none" and every other alg are rejected), checks
/// the signature in constant time, then the claims.
#include <cstdint>
#include <string>
#include <string_view>

namespace pushgw::auth {

struct DeviceClaims {
  std::string app_id;     // "app"
  std::string device_id;  // "sub"
  std::string user_id;    // "uid", may be empty
  uint64_t exp_s = 0;     // "exp", unix seconds
};

/// Why a token was refused; maps onto the device protocol's Error codes
/// (kExpired -> TOKEN_EXPIRED, every other one -> AUTH_FAILED).
enum class TokenError {
  kOk = 0,
  kMalformed,     // not three base64url parts, bad JSON, wrong claim types
  kBadAlgorithm,  // header alg is not HS256 (including "none")
  kBadSignature,  // signature does not match the device secret
  kMissingClaim,  // app, sub or exp absent
  kWrongApp,      // app claim differs from the expected app_id
  kWrongDevice,   // sub claim differs from the expected device_id
  kExpired,       // exp <= now
};

/// Stable lowercase name, used as a metric label ("bad_signature", ...).
std::string_view token_error_name(TokenError e) noexcept;

/// Mints an HS256 token (used by pushctl and tests; business backends mint
/// their own the same way).
std::string mint_device_token(const DeviceClaims& claims, std::string_view device_secret);

/// Verifies `token` for (app_id, device_id) at `now_s`. On success fills
/// `claims` (when non-null) and returns kOk.
TokenError verify_device_token(std::string_view token, std::string_view device_secret,
                               std::string_view app_id, std::string_view device_id, uint64_t now_s,
                               DeviceClaims* claims = nullptr);

}  // namespace pushgw::auth
