#include "offline_router/admin.h"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace pushgw::offline_router {
namespace {

namespace json = boost::json;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_value(s[i + 1]);
      const int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

json::object base(const DeviceQuery& q, const DeviceStored& d) {
  json::object o;
  o["app_id"] = q.app_id;
  o["device_id"] = q.device_id;
  o["partition"] = d.partition;
  o["owned"] = d.owned;
  return o;
}

common::HttpResponse error(unsigned status, std::string_view message) {
  json::object o;
  o["error"] = message;
  return common::HttpResponse::json(status, json::serialize(o));
}

boost::asio::awaitable<common::HttpResponse> handle_device(OfflineRouter* router,
                                                           common::HttpRequest req) {
  auto q = parse_device_query(req.query);
  if (!q) co_return error(400, "app_id and device_id are required");
  auto d = co_await router->device_stored(q->app_id, q->device_id);
  if (!d) {
    if (d.error() == make_error_code(errc::unavailable)) co_return error(503, "not started");
    if (d.error() == make_error_code(errc::invalid_argument)) co_return error(400, "bad id");
    co_return error(500, d.error().message());
  }
  co_return device_stored_response(*q, *d);
}

}  // namespace

std::optional<DeviceQuery> parse_device_query(std::string_view query) {
  DeviceQuery q;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    auto value = percent_decode(pair.substr(eq + 1));
    if (!value) return std::nullopt;
    const std::string_view key = pair.substr(0, eq);
    if (key == "app_id") q.app_id = std::move(*value);
    if (key == "device_id") q.device_id = std::move(*value);
  }
  if (q.app_id.empty() || q.device_id.empty()) return std::nullopt;
  return q;
}

common::HttpResponse device_stored_response(const DeviceQuery& q, const DeviceStored& d) {
  json::object o = base(q, d);
  if (!d.owned) return common::HttpResponse::json(404, json::serialize(o));
  o["stored"] = d.stats.stored;
  o["collapsible"] = d.stats.collapsible;
  o["resync_marker"] = d.stats.resync_marker;
  o["lowest_seq"] = d.stats.lowest_seq;
  o["highest_seq"] = d.stats.highest_stored_seq;
  o["watermark"] = d.stats.watermark;
  o["expired_pending"] = d.stats.expired_pending;
  return common::HttpResponse::json(200, json::serialize(o));
}

void register_admin_endpoints(common::AdminServer& admin, OfflineRouter& router) {
  OfflineRouter* r = &router;
  admin.handle("GET", "/admin/device",
               [r](common::HttpRequest req) { return handle_device(r, std::move(req)); });
}

}  // namespace pushgw::offline_router
