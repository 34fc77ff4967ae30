#pragma once
/// The body of POST /v1/push (push-api.md), parsed and validated without any
/// I/O: pure functions, safe on any thread, never throwing on bad input.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "push_api/api_error.h"

namespace pushgw::push_api {

enum class TrafficClass : uint8_t { kNormal = 0, kMarketing = 1 };

/// "normal" / "marketing".
std::string_view class_name(TrafficClass c) noexcept;

enum class TargetKind : uint8_t { kDevices, kUsers, kTopic, kBroadcast };

struct PushTarget {
  TargetKind kind = TargetKind::kDevices;
  /// Device ids (kDevices) or user ids (kUsers): unique, in request order.
  std::vector<std::string> ids;
  /// kTopic only.
  std::string topic;
};

struct PushBody {
  PushTarget target;
  /// The payload bytes (decoded from payload_b64 when that form was used).
  std::string payload;
  TrafficClass traffic_class = TrafficClass::kNormal;
  uint32_t ttl_s = 0;
  std::string collapse_key;
  /// Empty: none.
  std::string idempotency_key;
};

/// The limits the body is checked against (LimitsConfig's values).
struct BodyLimits {
  uint32_t max_json_depth = 8;
  uint32_t max_payload_bytes = 4096;
  uint32_t max_device_ids = 1000;
  uint32_t max_user_ids = 100;
  uint32_t max_ttl_s = 2'592'000;
  uint32_t default_ttl_s = 86'400;
};

/// Parses a push body. Errors: 400 invalid_argument (bad JSON, too deep,
/// unknown field, wrong type, both or neither payload forms, bad base64,
/// empty or oversized target list, bad id, ttl out of range, unknown class),
/// 413 payload_too_large (payload above max_payload_bytes after decoding).
std::variant<PushBody, ApiError> parse_push_body(std::string_view body, const BodyLimits& limits);

/// Device ids and topics (the device protocol's id rule): 1..128 bytes of [A-Za-z0-9._:-].
bool valid_device_id(std::string_view id) noexcept;
/// User ids: 1..256 bytes, no control characters.
bool valid_user_id(std::string_view id) noexcept;
/// Message ids as push-api issues them (and lookups accept): 1..128 bytes of [A-Za-z0-9._:-].
bool valid_message_id(std::string_view id) noexcept;
/// Idempotency and collapse keys: 1..256 bytes, no control characters.
bool valid_key(std::string_view key) noexcept;

/// Percent-decodes one URL path segment; nullopt on a bad escape.
std::optional<std::string> decode_path_segment(std::string_view segment);
/// The value of `name` in a query string "a=1&b=2" (percent-decoded, '+' as
/// space); nullopt when absent or badly escaped.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

}  // namespace pushgw::push_api
