#include "push_api/push_request.h"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/value.hpp>
#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "common/auth/crypto.h"

namespace pushgw::push_api {

namespace json = boost::json;

std::string_view class_name(TrafficClass c) noexcept {
  return c == TrafficClass::kMarketing ? "marketing" : "normal";
}

namespace {

bool id_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

bool protocol_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!id_char(c)) return false;
  }
  return true;
}

bool no_control(std::string_view s) noexcept {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// Shortens user-provided text quoted in an error message.
std::string quote(std::string_view s) {
  constexpr std::size_t kMax = 64;
  std::string out = "'";
  for (unsigned char c : s.substr(0, kMax)) {
    out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

std::string_view kind_name(const json::value& v) noexcept {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

ApiError wrong_type(std::string_view field, std::string_view expected, const json::value& got) {
  return invalid_argument(std::string(field) + " must be " + std::string(expected) + ", got " +
                          std::string(kind_name(got)));
}

std::optional<int64_t> as_integer(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    const uint64_t u = v.get_uint64();
    if (u > static_cast<uint64_t>(INT64_MAX)) return INT64_MAX;
    return static_cast<int64_t>(u);
  }
  if (v.is_double()) {
    const double d = v.get_double();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15) {
      return static_cast<int64_t>(d);
    }
  }
  return std::nullopt;
}

using Result = std::variant<PushBody, ApiError>;

std::optional<ApiError> parse_id_list(const json::value& v, std::string_view field, uint32_t max,
                                      bool (*valid)(std::string_view) noexcept,
                                      std::vector<std::string>& out) {
  const json::array* arr = v.if_array();
  if (arr == nullptr) return wrong_type(field, "an array of strings", v);
  if (arr->empty()) return invalid_argument(std::string(field) + " must not be empty");
  if (arr->size() > max) {
    return invalid_argument(std::string(field) + " lists " + std::to_string(arr->size()) +
                            " ids; at most " + std::to_string(max) + " are allowed per call");
  }
  // Duplicates are dropped: by a linear scan for short lists (most calls
  // name a handful of ids), by a hash set for long ones.
  constexpr std::size_t kLinearDedup = 16;
  std::unordered_set<std::string_view> seen;
  out.reserve(arr->size());
  auto where = [&](std::size_t i) { return std::string(field) + "[" + std::to_string(i) + "]"; };
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const json::value& e = (*arr)[i];
    const json::string* s = e.if_string();
    if (s == nullptr) return wrong_type(where(i), "a string", e);
    const std::string_view id(s->data(), s->size());
    if (!valid(id)) {
      return invalid_argument(where(i) + " " + quote(id) + " is not a valid id");
    }
    const bool fresh = arr->size() <= kLinearDedup
                           ? std::find(out.begin(), out.end(), id) == out.end()
                           : seen.insert(id).second;
    if (fresh) out.emplace_back(id);
  }
  return std::nullopt;
}

std::optional<ApiError> parse_target(const json::value& v, const BodyLimits& limits,
                                     PushTarget& target) {
  const json::object* to = v.if_object();
  if (to == nullptr) return wrong_type("to", "an object", v);
  if (to->size() != 1) {
    return invalid_argument("to must name exactly one of device_ids, user_ids, topic, broadcast");
  }
  const auto& [key, value] = *to->begin();
  if (key == "device_ids") {
    target.kind = TargetKind::kDevices;
    return parse_id_list(value, "to.device_ids", limits.max_device_ids, valid_device_id,
                         target.ids);
  }
  if (key == "user_ids") {
    target.kind = TargetKind::kUsers;
    return parse_id_list(value, "to.user_ids", limits.max_user_ids, valid_user_id, target.ids);
  }
  if (key == "topic") {
    target.kind = TargetKind::kTopic;
    const json::string* s = value.if_string();
    if (s == nullptr) return wrong_type("to.topic", "a string", value);
    target.topic.assign(s->data(), s->size());
    if (!valid_device_id(target.topic)) {
      return invalid_argument("to.topic " + quote(target.topic) +
                              " is not a valid topic (1..128 bytes of [A-Za-z0-9._:-])");
    }
    return std::nullopt;
  }
  if (key == "broadcast") {
    target.kind = TargetKind::kBroadcast;
    if (!value.is_bool()) return wrong_type("to.broadcast", "true", value);
    if (!value.get_bool()) return invalid_argument("to.broadcast must be true when given");
    return std::nullopt;
  }
  return invalid_argument("to: unknown target " + quote(key) +
                          " (expected device_ids, user_ids, topic or broadcast)");
}

}  // namespace

bool valid_device_id(std::string_view id) noexcept { return protocol_id(id); }
bool valid_message_id(std::string_view id) noexcept { return protocol_id(id); }

bool valid_user_id(std::string_view id) noexcept {
  return !id.empty() && id.size() <= 256 && no_control(id);
}

bool valid_key(std::string_view key) noexcept {
  return !key.empty() && key.size() <= 256 && no_control(key);
}

std::variant<PushBody, ApiError> parse_push_body(std::string_view body, const BodyLimits& limits) {
  json::parse_options opts;
  opts.max_depth = limits.max_json_depth;
  boost::system::error_code ec;
  // The document lives only in this function (PushBody copies what it
  // keeps): a monotonic arena, on the stack for the usual small body.
  unsigned char arena[4096];
  json::monotonic_resource mr(arena, sizeof(arena));
  json::value root = json::parse(body, ec, &mr, opts);
  if (ec) {
    if (ec == json::error::too_deep) {
      return invalid_argument("JSON nested deeper than " + std::to_string(limits.max_json_depth) +
                              " levels");
    }
    return invalid_argument("body is not valid JSON: " + ec.message());
  }
  const json::object* obj = root.if_object();
  if (obj == nullptr) return wrong_type("the body", "a JSON object", root);

  PushBody out;
  out.ttl_s = limits.default_ttl_s;
  bool have_target = false;
  const json::value* text = nullptr;
  const json::value* b64 = nullptr;
  for (const auto& [key, value] : *obj) {
    if (key == "to") {
      if (auto err = parse_target(value, limits, out.target)) return *err;
      have_target = true;
    } else if (key == "payload") {
      if (!value.is_null()) text = &value;
    } else if (key == "payload_b64") {
      if (!value.is_null()) b64 = &value;
    } else if (key == "class") {
      if (value.is_null()) continue;
      const json::string* s = value.if_string();
      if (s == nullptr) return wrong_type("class", "\"normal\" or \"marketing\"", value);
      if (*s == "normal") {
        out.traffic_class = TrafficClass::kNormal;
      } else if (*s == "marketing") {
        out.traffic_class = TrafficClass::kMarketing;
      } else {
        return invalid_argument("class " + quote(std::string_view(s->data(), s->size())) +
                                " is not \"normal\" or \"marketing\"");
      }
    } else if (key == "ttl_s") {
      if (value.is_null()) continue;
      auto n = as_integer(value);
      if (!n) return wrong_type("ttl_s", "an integer", value);
      if (*n < 0 || *n > static_cast<int64_t>(limits.max_ttl_s)) {
        return invalid_argument("ttl_s " + std::to_string(*n) + " is outside 0.." +
                                std::to_string(limits.max_ttl_s));
      }
      out.ttl_s = static_cast<uint32_t>(*n);
    } else if (key == "collapse_key") {
      if (value.is_null()) continue;
      const json::string* s = value.if_string();
      if (s == nullptr) return wrong_type("collapse_key", "a string", value);
      out.collapse_key.assign(s->data(), s->size());
      if (!valid_key(out.collapse_key)) {
        return invalid_argument("collapse_key must be 1..256 bytes without control characters");
      }
    } else if (key == "idempotency_key") {
      if (value.is_null()) continue;
      const json::string* s = value.if_string();
      if (s == nullptr) return wrong_type("idempotency_key", "a string", value);
      out.idempotency_key.assign(s->data(), s->size());
      if (!valid_key(out.idempotency_key)) {
        return invalid_argument("idempotency_key must be 1..256 bytes without control characters");
      }
    } else {
      return invalid_argument("unknown field " + quote(key));
    }
  }
  if (!have_target) return invalid_argument("to is required");
  if ((text != nullptr) == (b64 != nullptr)) {
    return invalid_argument("exactly one of payload and payload_b64 is required");
  }
  if (text != nullptr) {
    const json::string* s = text->if_string();
    if (s == nullptr) return wrong_type("payload", "a string", *text);
    if (s->size() > limits.max_payload_bytes) {
      return payload_too_large("payload is " + std::to_string(s->size()) + " bytes; at most " +
                               std::to_string(limits.max_payload_bytes) + " are allowed");
    }
    out.payload.assign(s->data(), s->size());
  } else {
    const json::string* s = b64->if_string();
    if (s == nullptr) return wrong_type("payload_b64", "a base64 string", *b64);
    // Reject a clearly oversized payload before decoding it.
    if (s->size() / 4 * 3 > limits.max_payload_bytes + 3) {
      return payload_too_large("payload_b64 decodes to more than " +
                               std::to_string(limits.max_payload_bytes) + " bytes");
    }
    auto decoded = auth::base64_decode(std::string_view(s->data(), s->size()));
    if (!decoded) return invalid_argument("payload_b64 is not valid base64");
    if (decoded->size() > limits.max_payload_bytes) {
      return payload_too_large("payload_b64 decodes to " + std::to_string(decoded->size()) +
                               " bytes; at most " + std::to_string(limits.max_payload_bytes) +
                               " are allowed");
    }
    out.payload = std::move(*decoded);
  }
  return out;
}

std::optional<std::string> decode_path_segment(std::string_view segment) {
  std::string out;
  out.reserve(segment.size());
  for (std::size_t i = 0; i < segment.size(); ++i) {
    const char c = segment[i];
    if (c != '%') {
      out += c;
      continue;
    }
    if (i + 2 >= segment.size()) return std::nullopt;
    auto hex = [](char h) -> int {
      if (h >= '0' && h <= '9') return h - '0';
      if (h >= 'a' && h <= 'f') return h - 'a' + 10;
      if (h >= 'A' && h <= 'F') return h - 'A' + 10;
      return -1;
    };
    const int hi = hex(segment[i + 1]);
    const int lo = hex(segment[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    if (key != name) continue;
    std::string raw(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    for (auto& c : raw) {
      if (c == '+') c = ' ';
    }
    return decode_path_segment(raw);
  }
  return std::nullopt;
}

}  // namespace pushgw::push_api
