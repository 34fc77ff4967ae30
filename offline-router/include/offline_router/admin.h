#pragma once
/// The offline router's admin endpoint for operators (pushctl device):
///
///   GET /admin/device?app_id=A&device_id=D
///     200 {"app_id","device_id","partition","owned":true,"stored","collapsible",
///          "resync_marker","lowest_seq","highest_seq","watermark","expired_pending"}
///         when this router owns the device's partition;
///     404 {"app_id","device_id","partition","owned":false} when it does not
///         (another router of the group does: ask them all);
///     400 on a missing or bad parameter, 503 before the router has started.
#include <optional>
#include <string>
#include <string_view>

#include "common/admin_server.h"
#include "offline_router/router.h"

namespace pushgw::offline_router {

struct DeviceQuery {
  std::string app_id;
  std::string device_id;
};

/// Parses "app_id=A&device_id=D" (percent-encoded, any order, other keys
/// ignored). nullopt if either is missing or empty, or the encoding is bad.
std::optional<DeviceQuery> parse_device_query(std::string_view query);

/// The answer for a DeviceStored (200 owned, 404 not owned).
common::HttpResponse device_stored_response(const DeviceQuery& q, const DeviceStored& d);

/// Registers GET /admin/device on `admin`, answered by `router` (which must
/// outlive the admin server).
void register_admin_endpoints(common::AdminServer& admin, OfflineRouter& router);

}  // namespace pushgw::offline_router
