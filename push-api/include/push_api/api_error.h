#pragma once
/// The error answers of the push API (push-api.md): an HTTP status plus the
/// body {"error": {"code": "<snake_case>", "message": "<text>"}}.
#include <string>
#include <string_view>

#include "common/admin_server.h"

namespace pushgw::push_api {

struct ApiError {
  unsigned status = 400;
  std::string code;
  std::string message;
};

/// 400 invalid_argument.
ApiError invalid_argument(std::string message);
/// 413 payload_too_large.
ApiError payload_too_large(std::string message);
/// 401 unauthenticated.
ApiError unauthenticated(std::string message);
/// 404 not_found.
ApiError not_found(std::string message);
/// 503 unavailable.
ApiError unavailable(std::string message);

/// {"error":{"code":...,"message":...}} with JSON escaping.
std::string error_body(std::string_view code, std::string_view message);
/// The HTTP response for `e` (JSON content type).
common::HttpResponse error_response(const ApiError& e);

}  // namespace pushgw::push_api
