#pragma once
// A blocking, signed HTTP/1.1 client of the push API (push-api.md "Request
// signing"), for pushctl. One request per connection; every step is bounded
// by the timeout.
#include <chrono>
#include <string>

#include "common/error.h"

namespace pushgw::pushctl {

struct ApiTarget {
  std::string host;
  std::string port = "80";
  /// Path prefix before /v1/... (empty, or "/something" without a trailing slash).
  std::string base_path;
};

/// Parses "http://host[:port][/prefix]"; errc::invalid_argument otherwise (https is not
/// supported: terminate TLS in front of push-api or use a tunnel).
result<ApiTarget> parse_api_url(const std::string& url);

struct ApiResponse {
  unsigned status = 0;
  std::string body;
};

struct Credentials {
  std::string app_id;
  std::string api_secret;
};

/// Sends `method path_and_query` with `body`, signed with `creds` (unsigned
/// when creds.app_id is empty). Transport errors (refused, timeout) as values.
result<ApiResponse> call_api(const ApiTarget& target, const Credentials& creds,
                             const std::string& method, const std::string& path_and_query,
                             const std::string& body, std::chrono::milliseconds timeout);

}  // namespace pushgw::pushctl
