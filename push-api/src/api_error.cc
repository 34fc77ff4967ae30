#include "push_api/api_error.h"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace pushgw::push_api {

ApiError invalid_argument(std::string message) {
  return ApiError{400, "invalid_argument", std::move(message)};
}
ApiError payload_too_large(std::string message) {
  return ApiError{413, "payload_too_large", std::move(message)};
}
ApiError unauthenticated(std::string message) {
  return ApiError{401, "unauthenticated", std::move(message)};
}
ApiError not_found(std::string message) { return ApiError{404, "not_found", std::move(message)}; }
ApiError unavailable(std::string message) {
  return ApiError{503, "unavailable", std::move(message)};
}

std::string error_body(std::string_view code, std::string_view message) {
  boost::json::object err;
  err["code"] = code;
  err["message"] = message;
  boost::json::object root;
  root["error"] = std::move(err);
  return boost::json::serialize(root);
}

common::HttpResponse error_response(const ApiError& e) {
  return common::HttpResponse::json(e.status, error_body(e.code, e.message));
}

}  // namespace pushgw::push_api
