#pragma once
/// Small crypto helpers over OpenSSL used by device tokens and request signing.
/// All functions are pure and thread-safe.
#include <optional>
#include <string>
#include <string_view>

namespace pushgw::auth {

/// HMAC-SHA256(key, data) as 32 raw bytes.
std::string hmac_sha256(std::string_view key, std::string_view data);
/// SHA-256(data) as 32 raw bytes.
std::string sha256(std::string_view data);
/// Lowercase hex of raw bytes.
std::string to_hex(std::string_view raw);
/// base64url without padding (RFC 7515).
std::string base64url_encode(std::string_view raw);
/// Decodes base64url (padding optional); nullopt on any invalid character or length.
std::optional<std::string> base64url_decode(std::string_view text);
/// Standard base64 with padding.
std::string base64_encode(std::string_view raw);
/// Decodes standard base64 (padding required when length % 4 != 0); nullopt when invalid.
std::optional<std::string> base64_decode(std::string_view text);
/// Compares in time independent of where the inputs differ (lengths may leak).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace pushgw::auth
