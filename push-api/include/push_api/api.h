#pragma once
/// The push API's request handling (push-api.md), independent of the HTTP
/// transport: routing, request signing, quotas, validation, idempotency,
/// producing PushRequest records, status queries, dispatch, health,
/// readiness and metrics. HttpServer feeds it parsed requests.
///
/// Threads: handle() may run on many threads at once; each call must be
/// awaited from a strand (the HTTP server runs each connection on its own),
/// because bounded waits (readiness probes) rely on strand ordering. Calls
/// into the status store and the producer hop to their own executors and
/// come back.
///
/// Lifetime: the dependencies must outlive the Api and every pending handle().
#include <boost/asio/awaitable.hpp>
#include <memory>

#include "common/admin_server.h"
#include "common/auth/apps.h"
#include "common/bus/producer.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "push_api/config.h"
#include "push_api/push_request.h"
#include "status_store/status_store.h"

namespace pushgw::push_api {

struct ApiDeps {
  const auth::AppRegistry* apps = nullptr;
  status_store::StatusStore* store = nullptr;
  bus::Producer* producer = nullptr;
  /// Receives the pushgw_push_api_* families and is served on /metrics.
  common::Metrics* metrics = nullptr;
  const Clock* clock = &SystemClock::instance();
};

/// Topic names of the bus (proto/README.md).
std::string push_topic(TrafficClass cls);
std::string fanout_topic(TrafficClass cls);

class Api {
 public:
  /// Every member of `deps` must be set. `cfg` is copied.
  Api(ApiDeps deps, const PushApiConfig& cfg);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  /// Answers one request. Never throws: bad input gets its 4xx, a failed
  /// dependency 503, an unexpected exception 500 (logged).
  boost::asio::awaitable<common::HttpResponse> handle(common::HttpRequest req);

  /// Readiness checks, each bounded by readiness.check_timeout_ms.
  /// Status store: a ping round trip.
  boost::asio::awaitable<bool> store_ready();
  /// Bus: a push or probe acknowledged within readiness.fresh_ms and no
  /// failure since; otherwise a probe record to readiness.probe_topic.
  boost::asio::awaitable<bool> bus_ready();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace pushgw::push_api
