#include "push_api/api.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "common/auth/crypto.h"
#include "common/auth/request_signature.h"
#include "common/log.h"
#include "proto/bus.pb.h"
#include "push_api/dispatch.h"
#include "push_api/message_id.h"
#include "push_api/quota.h"
#include "with_timeout.h"

namespace pushgw::push_api {

namespace asio = boost::asio;
namespace json = boost::json;
using common::HttpRequest;
using common::HttpResponse;
using std::chrono::milliseconds;

std::string push_topic(TrafficClass cls) { return "pushgw.push." + std::string(class_name(cls)); }
std::string fanout_topic(TrafficClass cls) {
  return "pushgw.fanout." + std::string(class_name(cls));
}

namespace {

enum class Endpoint : uint8_t {
  kPush,
  kDevice,
  kUserDevices,
  kMessage,
  kStats,
  kDispatch,
  kHealthz,
  kReadyz,
  kMetrics,
  kUnknown,
};
constexpr std::size_t kEndpoints = 10;

const char* endpoint_label(Endpoint e) {
  switch (e) {
    case Endpoint::kPush:
      return "push";
    case Endpoint::kDevice:
      return "device";
    case Endpoint::kUserDevices:
      return "user_devices";
    case Endpoint::kMessage:
      return "message";
    case Endpoint::kStats:
      return "stats";
    case Endpoint::kDispatch:
      return "dispatch";
    case Endpoint::kHealthz:
      return "healthz";
    case Endpoint::kReadyz:
      return "readyz";
    case Endpoint::kMetrics:
      return "metrics";
    case Endpoint::kUnknown:
      return "unknown";
  }
  return "unknown";
}

struct Route {
  Endpoint endpoint = Endpoint::kUnknown;
  const char* method = "GET";
  bool is_signed = true;
  /// The raw (still percent-encoded) path parameter, if the route has one.
  std::string_view param;
};

// "/v1/users/u1/devices" -> ["v1", "users", "u1", "devices"]; empty segments kept.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path.front() != '/') return out;
  path.remove_prefix(1);
  for (;;) {
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

Route match(std::string_view path) {
  if (path == "/v1/push") return {Endpoint::kPush, "POST", true, {}};  // nearly every request
  if (path == "/healthz") return {Endpoint::kHealthz, "GET", false, {}};
  if (path == "/readyz") return {Endpoint::kReadyz, "GET", false, {}};
  if (path == "/metrics") return {Endpoint::kMetrics, "GET", false, {}};
  const auto seg = split_path(path);
  if (seg.size() < 2 || seg[0] != "v1") return {};
  if (seg.size() == 2 && seg[1] == "push") return {Endpoint::kPush, "POST", true, {}};
  if (seg.size() == 2 && seg[1] == "stats") return {Endpoint::kStats, "GET", true, {}};
  if (seg.size() == 2 && seg[1] == "dispatch") return {Endpoint::kDispatch, "GET", false, {}};
  if (seg.size() == 3 && seg[1] == "devices" && !seg[2].empty()) {
    return {Endpoint::kDevice, "GET", true, seg[2]};
  }
  if (seg.size() == 3 && seg[1] == "messages" && !seg[2].empty()) {
    return {Endpoint::kMessage, "GET", true, seg[2]};
  }
  if (seg.size() == 4 && seg[1] == "users" && !seg[2].empty() && seg[3] == "devices") {
    return {Endpoint::kUserDevices, "GET", true, seg[2]};
  }
  return {};
}

HttpResponse json_response(unsigned status, const json::value& v) {
  return HttpResponse::json(status, json::serialize(v));
}

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

json::object device_json(const std::string& device_id,
                         const std::optional<status_store::DeviceStatus>& st) {
  json::object o;
  o["device_id"] = device_id;
  o["online"] = st.has_value();
  if (st) {
    o["node_id"] = st->node_id;
    o["platform"] = st->platform;
    o["user_id"] = st->user_id;
    o["connected_at_ms"] = st->connected_at_ms;
    o["last_seen_ms"] = st->last_seen_ms;
  }
  return o;
}

json::object endpoints_json(const status_store::NodeEndpoints& e) {
  json::object o;
  o["tcp"] = e.tcp;
  o["tls"] = e.tls;
  o["ws"] = e.ws;
  o["wss"] = e.wss;
  return o;
}

constexpr std::string_view kPendingPrefix = "pending:";
constexpr std::string_view kFailedPrefix = "failed:";

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// The message id a "pending:<token>:<id>" or "failed:<id>" reservation carries.
std::string reserved_message_id(std::string_view value) {
  if (starts_with(value, kFailedPrefix)) return std::string(value.substr(kFailedPrefix.size()));
  const auto colon = value.rfind(':');
  return colon == std::string_view::npos ? std::string() : std::string(value.substr(colon + 1));
}

}  // namespace

struct Api::Impl {
  Impl(ApiDeps d, const PushApiConfig& c)
      : deps(d),
        cfg(c),
        quotas(*d.apps, *d.clock),
        ids(*d.clock),
        log(common::logger("push-api")),
        requests(prometheus::BuildCounter()
                     .Name("pushgw_push_api_requests_total")
                     .Help("Push API responses, by endpoint and HTTP status")
                     .Register(d.metrics->registry())),
        latency(prometheus::BuildHistogram()
                    .Name("pushgw_push_api_request_duration_seconds")
                    .Help("Push API request handling time (read to response), by endpoint")
                    .Register(d.metrics->registry())),
        accepted(prometheus::BuildCounter()
                     .Name("pushgw_push_api_pushes_accepted_total")
                     .Help("Pushes answered 202 (idempotent replays excluded), by class")
                     .Register(d.metrics->registry())),
        targets(prometheus::BuildCounter()
                    .Name("pushgw_push_api_push_targets_total")
                    .Help("Targets of accepted pushes, by class")
                    .Register(d.metrics->registry())),
        records(prometheus::BuildCounter()
                    .Name("pushgw_push_api_records_produced_total")
                    .Help("PushRequest records acknowledged by the bus, by topic kind")
                    .Register(d.metrics->registry())),
        rate_limited(prometheus::BuildCounter()
                         .Name("pushgw_push_api_rate_limited_total")
                         .Help("Pushes refused with 429, by app and class")
                         .Register(d.metrics->registry())),
        auth_failures(prometheus::BuildCounter()
                          .Name("pushgw_push_api_auth_failures_total")
                          .Help("Requests refused with 401, by reason")
                          .Register(d.metrics->registry())),
        replays(prometheus::BuildCounter()
                    .Name("pushgw_push_api_idempotent_replays_total")
                    .Help("Pushes answered from an earlier request with the same idempotency key")
                    .Register(d.metrics->registry())
                    .Add({})),
        bus_failures(prometheus::BuildCounter()
                         .Name("pushgw_push_api_bus_failures_total")
                         .Help("Pushes answered 503 because the bus did not acknowledge them")
                         .Register(d.metrics->registry())
                         .Add({})) {
    const std::vector<double> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    for (std::size_t i = 0; i < kEndpoints; ++i) {
      latency_by_endpoint[i] =
          &latency.Add({{"endpoint", endpoint_label(static_cast<Endpoint>(i))}}, bounds);
    }
    for (auto cls : {TrafficClass::kNormal, TrafficClass::kMarketing}) {
      const auto i = static_cast<std::size_t>(cls);
      accepted_by_class[i] = &accepted.Add({{"class", std::string(class_name(cls))}});
      targets_by_class[i] = &targets.Add({{"class", std::string(class_name(cls))}});
    }
    push_records = &records.Add({{"kind", "push"}});
    fanout_records = &records.Add({{"kind", "fanout"}});
    limits.max_json_depth = cfg.limits.max_json_depth;
    limits.max_payload_bytes = cfg.limits.max_payload_bytes;
    limits.max_device_ids = cfg.limits.max_device_ids;
    limits.max_user_ids = cfg.limits.max_user_ids;
    limits.max_ttl_s = cfg.limits.max_ttl_s;
    limits.default_ttl_s = cfg.limits.default_ttl_s;
  }

  void count(Endpoint e, unsigned status) {
    const auto ei = static_cast<std::size_t>(e);
    if (status < 100 || status > 599) status = 500;
    // Family::Add builds a label map and locks per call: resolve each
    // (endpoint, code) once (racing resolvers get the same counter).
    auto& slot = request_counters[ei][status - 100];
    prometheus::Counter* c = slot.load(std::memory_order_acquire);
    if (c == nullptr) {
      c = &requests.Add({{"endpoint", endpoint_label(e)}, {"code", std::to_string(status)}});
      slot.store(c, std::memory_order_release);
    }
    c->Increment();
  }

  void bus_outcome(bool ok) {
    const uint64_t now = deps.clock->now_ms();
    (ok ? last_bus_ack_ms : last_bus_failure_ms).store(now, std::memory_order_relaxed);
  }

  ApiDeps deps;
  const PushApiConfig cfg;
  BodyLimits limits;
  Quotas quotas;
  MessageIdGenerator ids;
  std::shared_ptr<spdlog::logger> log;

  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& latency;
  prometheus::Family<prometheus::Counter>& accepted;
  prometheus::Family<prometheus::Counter>& targets;
  prometheus::Family<prometheus::Counter>& records;
  prometheus::Family<prometheus::Counter>& rate_limited;
  prometheus::Family<prometheus::Counter>& auth_failures;
  prometheus::Counter& replays;
  prometheus::Counter& bus_failures;
  prometheus::Histogram* latency_by_endpoint[kEndpoints] = {};
  prometheus::Counter* accepted_by_class[2] = {};
  prometheus::Counter* targets_by_class[2] = {};
  prometheus::Counter* push_records = nullptr;
  prometheus::Counter* fanout_records = nullptr;
  std::atomic<prometheus::Counter*> request_counters[kEndpoints][500] = {};

  std::atomic<uint64_t> last_bus_ack_ms{0};
  std::atomic<uint64_t> last_bus_failure_ms{0};

  std::mutex nodes_mu;
  std::vector<status_store::NodeInfo> nodes_cache;
  uint64_t nodes_cached_at_ms = 0;
  bool nodes_cached = false;
};

namespace {

using ImplPtr = std::shared_ptr<Api::Impl>;

std::variant<const auth::AppConfig*, ApiError> authenticate(Api::Impl& self,
                                                            const HttpRequest& req) {
  const auto app_id = req.header("X-App-Id");
  const auto timestamp = req.header("X-Timestamp");
  const auto signature = req.header("X-Signature");
  auto fail = [&](const char* reason, std::string message) {
    self.auth_failures.Add({{"reason", reason}}).Increment();
    return unauthenticated(std::move(message));
  };
  if (app_id.empty()) return fail("missing_header", "missing X-App-Id header");
  if (timestamp.empty()) return fail("missing_header", "missing X-Timestamp header");
  if (signature.empty()) return fail("missing_header", "missing X-Signature header");
  const auth::AppConfig* app = self.deps.apps->find(app_id);
  if (app == nullptr) return fail("unknown_app", "unknown app " + quote(app_id));
  const auto window = static_cast<uint64_t>(self.cfg.limits.signature_window.count());
  switch (auth::verify_request(app->api_secret, req.method, req.target, timestamp, req.body,
                               signature, self.deps.clock->now_s(), window)) {
    case auth::SignatureError::kOk:
      return app;
    case auth::SignatureError::kBadTimestamp:
      return fail("bad_timestamp", "X-Timestamp must be unix time in seconds");
    case auth::SignatureError::kStale:
      return fail("stale_timestamp", "X-Timestamp is more than " + std::to_string(window) +
                                         " s away from the server clock");
    case auth::SignatureError::kBadSignature:
      return fail("bad_signature", "X-Signature does not match the request");
  }
  return fail("bad_signature", "X-Signature does not match the request");
}

ApiError store_failure(Api::Impl& self, std::string_view what, boost::system::error_code ec) {
  self.log->warn("status store {} failed: {}", what, ec.message());
  return unavailable("status store unavailable: " + ec.message());
}

asio::awaitable<void> sleep_for(milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

// The status-store key of an idempotency key: namespaced (conn-node keeps its
// upstream dedup keys in the same key space) and bounded in length.
std::string idempotency_store_key(std::string_view key) {
  std::string k = "push:";
  if (k.size() + key.size() <= 256) return k.append(key);
  return k + "h:" + auth::to_hex(auth::sha256(key));
}

struct Reservation {
  std::string value;       // "pending:<token>:<message_id>" as stored
  std::string message_id;  // to use for this attempt
  bool reused = false;     // the id of an earlier, failed attempt
};
// A reservation, a finished earlier answer (body to replay), or an error.
using Reserved = std::variant<Reservation, std::string, ApiError>;

asio::awaitable<Reserved> reserve(ImplPtr self, std::string app_id, std::string store_key) {
  const auto pending_ttl = self->cfg.kafka.produce_timeout + std::chrono::seconds(30);
  const auto deadline =
      std::chrono::steady_clock::now() + self->cfg.kafka.produce_timeout + std::chrono::seconds(2);
  const std::string token = auth::to_hex(auth::sha256(std::to_string(random_u64()))).substr(0, 16);
  milliseconds backoff(5);
  for (;;) {
    Reservation mine;
    mine.message_id = self->ids.next();
    mine.value = std::string(kPendingPrefix) + token + ":" + mine.message_id;
    auto prev =
        co_await self->deps.store->put_idempotency(app_id, store_key, mine.value, pending_ttl);
    if (!prev) co_return store_failure(*self, "idempotency reserve", prev.error());
    if (!*prev) co_return mine;
    const std::string& seen = **prev;
    if (!seen.empty() && seen.front() == '{') co_return seen;  // finished: replay it
    if (starts_with(seen, kFailedPrefix)) {
      // An earlier attempt failed: take over its message id, so devices that
      // got part of it dedup the retry.
      Reservation retry;
      retry.message_id = reserved_message_id(seen);
      retry.value = std::string(kPendingPrefix) + token + ":" + retry.message_id;
      retry.reused = true;
      auto took = co_await self->deps.store->replace_idempotency(app_id, store_key, seen,
                                                                 retry.value, pending_ttl);
      if (!took) co_return store_failure(*self, "idempotency takeover", took.error());
      if (*took) co_return retry;
      continue;  // someone else changed it first: look again
    }
    // Another request with this key is in flight: wait for its outcome.
    if (std::chrono::steady_clock::now() >= deadline) {
      co_return unavailable(
          "a request with this idempotency_key is still in progress; retry later");
    }
    co_await sleep_for(backoff);
    backoff = std::min(backoff * 2, milliseconds(100));
    auto now_value = co_await self->deps.store->get_idempotency(app_id, store_key);
    if (!now_value) co_return store_failure(*self, "idempotency read", now_value.error());
    if (*now_value && !(*now_value)->empty() && (*now_value)->front() == '{') {
      co_return std::move(**now_value);
    }
  }
}

struct Expanded {
  // (device, user) pairs for unicast; empty for topic / broadcast.
  std::vector<std::pair<std::string, std::string>> devices;
  uint64_t targets = 0;
};

asio::awaitable<std::variant<Expanded, ApiError>> expand(ImplPtr self, std::string app_id,
                                                         PushTarget target, uint32_t ttl_s) {
  Expanded out;
  switch (target.kind) {
    case TargetKind::kDevices:
      out.devices.reserve(target.ids.size());
      for (auto& d : target.ids) out.devices.emplace_back(std::move(d), std::string());
      break;
    case TargetKind::kUsers: {
      std::unordered_set<std::string> seen;
      for (auto& user : target.ids) {
        // ttl 0 reaches online devices only; otherwise every device of the
        // user, so offline ones get the message when they come back.
        // (No co_await inside ?: : GCC 12 miscompiles it.)
        result<std::vector<std::string>> devices = errc::invalid_argument;
        if (ttl_s == 0) {
          devices = co_await self->deps.store->user_devices(app_id, user);
        } else {
          devices = co_await self->deps.store->user_known_devices(app_id, user);
        }
        if (!devices) co_return store_failure(*self, "user expansion", devices.error());
        for (auto& d : *devices) {
          if (seen.insert(d).second) out.devices.emplace_back(std::move(d), user);
        }
      }
      break;
    }
    case TargetKind::kTopic: {
      auto nodes = co_await self->deps.store->topic_nodes(app_id, target.topic);
      if (!nodes) co_return store_failure(*self, "topic lookup", nodes.error());
      for (const auto& [node, subscribers] : *nodes) {
        out.targets += static_cast<uint64_t>(std::max<int64_t>(0, subscribers));
      }
      co_return out;
    }
    case TargetKind::kBroadcast: {
      auto online = co_await self->deps.store->online_count(app_id);
      if (!online) co_return store_failure(*self, "online count", online.error());
      out.targets = *online;
      co_return out;
    }
  }
  out.targets = out.devices.size();
  co_return out;
}

std::string serialize_request(const std::string& message_id, const std::string& app_id,
                              const PushBody& body, uint64_t now_ms, const std::string& device_id,
                              const std::string& user_id, uint64_t counters_expire_ms,
                              uint64_t targets) {
  bus::v1::PushRequest r;
  r.set_schema_version(1);
  r.set_message_id(message_id);
  r.set_app_id(app_id);
  r.set_device_id(device_id);
  r.set_user_id(user_id);
  if (body.target.kind == TargetKind::kTopic) r.set_topic(body.target.topic);
  if (body.target.kind == TargetKind::kBroadcast) r.set_broadcast(true);
  r.set_payload(body.payload);
  r.set_traffic_class(body.traffic_class == TrafficClass::kMarketing ? v1::MARKETING : v1::NORMAL);
  r.set_ttl_s(body.ttl_s);
  r.set_collapse_key(body.collapse_key);
  r.set_created_ms(now_ms);
  r.set_expires_ms(now_ms + uint64_t{body.ttl_s} * 1000);
  r.set_counters_expire_ms(counters_expire_ms);
  if (!device_id.empty() && targets <= UINT32_MAX) r.set_targets(static_cast<uint32_t>(targets));
  return r.SerializeAsString();
}

std::string accepted_body(const std::string& message_id, uint64_t targets) {
  // Message ids are ours (MessageIdGenerator: hex digits): nothing to escape
  // in the common case; anything else (read back from the store) goes through
  // the serializer.
  const bool plain = std::all_of(message_id.begin(), message_id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
  if (!plain) {
    json::object o;
    o["message_id"] = message_id;
    o["targets"] = targets;
    return json::serialize(o);
  }
  std::string out;
  out.reserve(message_id.size() + 40);
  out.append(R"({"message_id":")").append(message_id).append(R"(","targets":)");
  out.append(std::to_string(targets)).push_back('}');
  return out;
}

// Counters live at least as long as the message (at least 24 h), plus slack
// for the routers and nodes that update them later.
milliseconds counters_ttl(uint32_t ttl_s) {
  const uint64_t s = std::max<uint64_t>(ttl_s, 86'400) + 3'600;
  return milliseconds(s * 1000);
}

std::string app_marker(std::string_view app_id) { return "app:" + std::string(app_id); }

// Everything after the reservation: expand, count, produce. The caller
// publishes or releases the reservation according to the outcome.
asio::awaitable<std::variant<std::string, ApiError>> accept_push(ImplPtr self,
                                                                 const auth::AppConfig* app,
                                                                 PushBody body,
                                                                 std::string message_id,
                                                                 bool reused_id) {
  const std::string app_id = app->id;
  auto expanded = co_await expand(self, app_id, body.target, body.ttl_s);
  if (auto* err = std::get_if<ApiError>(&expanded)) co_return std::move(*err);
  auto& ex = std::get<Expanded>(expanded);

  // Counters first: GET /v1/messages works as soon as the 202 is out, and a
  // store that is down fails the push before anything reaches the bus.
  bool counted = false;
  if (reused_id) {
    auto have = co_await self->deps.store->get_counters(message_id);
    if (!have) co_return store_failure(*self, "counters read", have.error());
    counted = have->count(app_marker(app_id)) > 0;
  }
  // The hash's expiry as set here (the script only ever extends it), so the
  // routers need not set it again per message. 0 when set by an earlier call.
  uint64_t counters_expire_ms = 0;
  if (!counted) {
    counters_expire_ms =
        self->deps.clock->now_ms() + static_cast<uint64_t>(counters_ttl(body.ttl_s).count());
    std::vector<std::pair<std::string, int64_t>> deltas;
    deltas.emplace_back("targets", static_cast<int64_t>(ex.targets));
    deltas.emplace_back("class", static_cast<int64_t>(body.traffic_class));
    deltas.emplace_back(app_marker(app_id), 1);
    // Set, not added: no attempt counted them (the app marker is absent), and
    // a failed attempt that set some of them is not counted twice.
    auto set = co_await self->deps.store->start_counters(message_id, std::move(deltas),
                                                         counters_ttl(body.ttl_s));
    if (!set) co_return store_failure(*self, "counters update", set.error());
  }

  const uint64_t now = self->deps.clock->now_ms();
  std::vector<bus::OutRecord> records;
  const bool unicast =
      body.target.kind == TargetKind::kDevices || body.target.kind == TargetKind::kUsers;
  if (unicast) {
    const std::string topic = push_topic(body.traffic_class);
    records.reserve(ex.devices.size());
    for (const auto& [device, user] : ex.devices) {
      bus::OutRecord rec;
      rec.topic = topic;
      rec.key = app_id + "/" + device;
      rec.value =
          serialize_request(message_id, app_id, body, now, device, user, counters_expire_ms,
                            ex.targets);
      records.push_back(std::move(rec));
    }
  } else {
    bus::OutRecord rec;
    rec.topic = fanout_topic(body.traffic_class);
    rec.key = message_id;
    rec.value = serialize_request(message_id, app_id, body, now, {}, {}, counters_expire_ms, 0);
    records.push_back(std::move(rec));
  }

  if (!records.empty()) {
    const std::size_t total = records.size();
    auto results = co_await self->deps.producer->produce_batch(std::move(records));
    std::size_t failed = 0;
    boost::system::error_code first;
    for (const auto& r : results) {
      if (!r) {
        if (!failed++) first = r.error();
      }
    }
    if (failed > 0 || results.size() != total) {
      self->bus_outcome(false);
      self->bus_failures.Increment();
      self->log->warn("push {} of app {}: {} of {} records not acknowledged: {}", message_id,
                      app_id, failed, total, first.message());
      co_return unavailable(
          "the bus did not acknowledge the push (" + first.message() +
          "); it was not accepted. Some of its records may still be delivered; retrying with "
          "the same idempotency_key is safe");
    }
    self->bus_outcome(true);
    (unicast ? self->push_records : self->fanout_records)->Increment(static_cast<double>(total));
  }
  const auto cls = static_cast<std::size_t>(body.traffic_class);
  self->accepted_by_class[cls]->Increment();
  self->targets_by_class[cls]->Increment(static_cast<double>(ex.targets));
  co_return accepted_body(message_id, ex.targets);
}

asio::awaitable<HttpResponse> handle_push(ImplPtr self, const auth::AppConfig* app,
                                          HttpRequest req) {
  auto parsed = parse_push_body(req.body, self->limits);
  if (auto* err = std::get_if<ApiError>(&parsed)) co_return error_response(*err);
  auto& body = std::get<PushBody>(parsed);

  const auto decision = self->quotas.take(app->id, body.traffic_class);
  if (!decision.allowed) {
    self->rate_limited
        .Add({{"app", app->id}, {"class", std::string(class_name(body.traffic_class))}})
        .Increment();
    HttpResponse r = error_response(ApiError{429, "rate_limited",
                                             "quota of app " + quote(app->id) + " for class " +
                                                 std::string(class_name(body.traffic_class)) +
                                                 " exhausted; retry after " +
                                                 std::to_string(decision.retry_after_s) + " s"});
    r.headers.emplace_back("Retry-After", std::to_string(decision.retry_after_s));
    co_return r;
  }

  if (body.idempotency_key.empty()) {
    auto out = co_await accept_push(self, app, std::move(body), self->ids.next(), false);
    if (auto* err = std::get_if<ApiError>(&out)) co_return error_response(*err);
    co_return HttpResponse::json(202, std::move(std::get<std::string>(out)));
  }

  const std::string store_key = idempotency_store_key(body.idempotency_key);
  auto reserved = co_await reserve(self, app->id, store_key);
  if (auto* err = std::get_if<ApiError>(&reserved)) co_return error_response(*err);
  if (auto* replay = std::get_if<std::string>(&reserved)) {
    self->replays.Increment();
    co_return HttpResponse::json(202, std::move(*replay));
  }
  auto mine = std::get<Reservation>(std::move(reserved));
  auto out = co_await accept_push(self, app, std::move(body), mine.message_id, mine.reused);
  if (auto* err = std::get_if<ApiError>(&out)) {
    // Release the key (keeping the message id for the retry).
    auto released = co_await self->deps.store->replace_idempotency(
        app->id, store_key, mine.value, std::string(kFailedPrefix) + mine.message_id,
        self->cfg.idempotency.ttl);
    if (!released || !*released) {
      self->log->warn("push {}: could not release idempotency key of app {}", mine.message_id,
                      app->id);
    }
    co_return error_response(*err);
  }
  auto& accepted = std::get<std::string>(out);
  auto published = co_await self->deps.store->replace_idempotency(
      app->id, store_key, mine.value, accepted, self->cfg.idempotency.ttl);
  if (!published || !*published) {
    // The push is on the bus: answer 202. A retry may then be accepted again.
    self->log->warn("push {}: could not record the idempotency key of app {}: {}", mine.message_id,
                    app->id, published ? "reservation expired" : published.error().message());
  }
  co_return HttpResponse::json(202, std::move(accepted));
}

asio::awaitable<HttpResponse> handle_device(ImplPtr self, const auth::AppConfig* app,
                                            std::string device_id) {
  if (!valid_device_id(device_id)) {
    co_return error_response(invalid_argument("device id " + quote(device_id) + " is not valid"));
  }
  std::vector<std::string> ids;
  ids.push_back(device_id);
  auto found = co_await self->deps.store->lookup(app->id, std::move(ids));
  if (!found) co_return error_response(store_failure(*self, "lookup", found.error()));
  const std::optional<status_store::DeviceStatus> st =
      found->empty() ? std::nullopt : found->front();
  co_return json_response(200, device_json(device_id, st));
}

asio::awaitable<HttpResponse> handle_user_devices(ImplPtr self, const auth::AppConfig* app,
                                                  std::string user_id) {
  if (!valid_user_id(user_id)) {
    co_return error_response(invalid_argument("user id " + quote(user_id) + " is not valid"));
  }
  auto ids = co_await self->deps.store->user_devices(app->id, user_id);
  if (!ids) co_return error_response(store_failure(*self, "user devices", ids.error()));
  json::array devices;
  if (!ids->empty()) {
    std::vector<std::string> query = *ids;
    auto found = co_await self->deps.store->lookup(app->id, std::move(query));
    if (!found) co_return error_response(store_failure(*self, "lookup", found.error()));
    for (std::size_t i = 0; i < ids->size() && i < found->size(); ++i) {
      // Gone offline (or moved to another user) since the index was read.
      if (!(*found)[i] || (*found)[i]->user_id != user_id) continue;
      devices.push_back(device_json((*ids)[i], (*found)[i]));
    }
  }
  json::object o;
  o["user_id"] = user_id;
  o["devices"] = std::move(devices);
  co_return json_response(200, o);
}

asio::awaitable<HttpResponse> handle_message(ImplPtr self, const auth::AppConfig* app,
                                             std::string message_id) {
  if (!valid_message_id(message_id)) {
    co_return error_response(invalid_argument("message id " + quote(message_id) + " is not valid"));
  }
  auto counters = co_await self->deps.store->get_counters(message_id);
  if (!counters) co_return error_response(store_failure(*self, "counters read", counters.error()));
  // Counters of another app's message are not visible.
  if (counters->count(app_marker(app->id)) == 0) {
    co_return error_response(not_found("no message " + quote(message_id)));
  }
  auto get = [&](const char* name) -> int64_t {
    auto it = counters->find(name);
    return it == counters->end() ? 0 : it->second;
  };
  json::object o;
  o["message_id"] = message_id;
  o["class"] = class_name(get("class") == static_cast<int64_t>(TrafficClass::kMarketing)
                              ? TrafficClass::kMarketing
                              : TrafficClass::kNormal);
  for (const char* name : {"targets", "delivered", "acked", "stored", "expired"}) {
    o[name] = get(name);
  }
  co_return json_response(200, o);
}

asio::awaitable<result<std::vector<status_store::NodeInfo>>> live_nodes(ImplPtr self,
                                                                        bool allow_cache) {
  const uint64_t now = self->deps.clock->now_ms();
  if (allow_cache) {
    std::lock_guard<std::mutex> lock(self->nodes_mu);
    if (self->nodes_cached &&
        now - self->nodes_cached_at_ms < static_cast<uint64_t>(self->cfg.dispatch.cache.count())) {
      co_return self->nodes_cache;
    }
  }
  auto nodes = co_await self->deps.store->list_nodes();
  if (!nodes) co_return nodes.error();
  {
    std::lock_guard<std::mutex> lock(self->nodes_mu);
    self->nodes_cache = *nodes;
    self->nodes_cached_at_ms = now;
    self->nodes_cached = true;
  }
  co_return std::move(*nodes);
}

asio::awaitable<HttpResponse> handle_stats(ImplPtr self, const auth::AppConfig* app) {
  auto online = co_await self->deps.store->online_count(app->id);
  if (!online) co_return error_response(store_failure(*self, "online count", online.error()));
  auto nodes = co_await live_nodes(self, false);
  if (!nodes) co_return error_response(store_failure(*self, "node list", nodes.error()));
  json::array list;
  for (const auto& n : *nodes) {
    json::object o;
    o["node_id"] = n.node_id;
    o["endpoints"] = endpoints_json(n.endpoints);
    o["connections"] = n.connections;
    o["draining"] = n.draining;
    list.push_back(std::move(o));
  }
  json::object o;
  o["online_devices"] = *online;
  o["nodes"] = std::move(list);
  co_return json_response(200, o);
}

asio::awaitable<HttpResponse> handle_dispatch(ImplPtr self, HttpRequest req) {
  auto app_id = query_param(req.query, "app_id");
  auto device_id = query_param(req.query, "device_id");
  if (!app_id || app_id->empty()) {
    co_return error_response(invalid_argument("query parameter app_id is required"));
  }
  if (!device_id || !valid_device_id(*device_id)) {
    co_return error_response(invalid_argument(
        "query parameter device_id is required (1..128 bytes of [A-Za-z0-9._:-])"));
  }
  if (self->deps.apps->find(*app_id) == nullptr) {
    co_return error_response(not_found("unknown app " + quote(*app_id)));
  }
  auto nodes = co_await live_nodes(self, true);
  if (!nodes) co_return error_response(store_failure(*self, "node list", nodes.error()));
  auto ranked =
      rank_nodes(std::move(*nodes), *app_id, *device_id, self->cfg.dispatch.max_endpoints);
  json::array endpoints;
  for (const auto& n : ranked) {
    json::object o = endpoints_json(n.endpoints);
    o["node_id"] = n.node_id;
    endpoints.push_back(std::move(o));
  }
  json::object o;
  o["endpoints"] = std::move(endpoints);
  o["ttl_s"] = self->cfg.dispatch.ttl_s;
  co_return json_response(200, o);
}

asio::awaitable<result<void>> ping_store(ImplPtr self) {
  co_return co_await self->deps.store->ping();
}

asio::awaitable<result<bus::Delivered>> probe_bus(ImplPtr self) {
  co_return co_await self->deps.producer->produce(self->cfg.readiness.probe_topic,
                                                  "push-api/" + self->cfg.kafka.client_id,
                                                  std::to_string(self->deps.clock->now_ms()));
}

asio::awaitable<bool> store_ready_impl(ImplPtr self) {
  auto r = co_await detail::with_timeout(ping_store(self), self->cfg.readiness.check_timeout);
  co_return r&&* r;
}

asio::awaitable<bool> bus_ready_impl(ImplPtr self) {
  const uint64_t now = self->deps.clock->now_ms();
  const uint64_t ack = self->last_bus_ack_ms.load(std::memory_order_relaxed);
  const uint64_t failure = self->last_bus_failure_ms.load(std::memory_order_relaxed);
  const bool fresh =
      ack > 0 && now - ack < static_cast<uint64_t>(self->cfg.readiness.fresh.count());
  if (fresh && ack >= failure) co_return true;
  if (self->cfg.readiness.probe_topic.empty()) co_return failure == 0 || ack >= failure;
  auto r = co_await detail::with_timeout(probe_bus(self), self->cfg.readiness.check_timeout);
  const bool ok = r && *r;
  if (r) self->bus_outcome(ok);
  co_return ok;
}

asio::awaitable<HttpResponse> handle_readyz(ImplPtr self) {
  const bool store = co_await store_ready_impl(self);
  const bool bus = co_await bus_ready_impl(self);
  json::array checks;
  json::object s;
  s["name"] = "status_store";
  s["ready"] = store;
  checks.push_back(std::move(s));
  json::object b;
  b["name"] = "bus";
  b["ready"] = bus;
  checks.push_back(std::move(b));
  json::object o;
  o["ready"] = store && bus;
  o["checks"] = std::move(checks);
  co_return json_response(store && bus ? 200 : 503, o);
}

asio::awaitable<HttpResponse> route(ImplPtr self, HttpRequest req) {
  const Route r = match(req.path);
  if (r.endpoint == Endpoint::kUnknown) {
    co_return error_response(not_found("no endpoint " + req.method + " " + quote(req.path)));
  }
  if (req.method != r.method) {
    HttpResponse resp = error_response(
        ApiError{405, "method_not_allowed", req.method + " is not allowed on " + quote(req.path)});
    resp.headers.emplace_back("Allow", r.method);
    co_return resp;
  }
  switch (r.endpoint) {
    case Endpoint::kHealthz:
      co_return HttpResponse::text(200, "ok\n");
    case Endpoint::kReadyz:
      co_return co_await handle_readyz(self);
    case Endpoint::kMetrics: {
      HttpResponse m = HttpResponse::text(200, self->deps.metrics->scrape());
      m.content_type = std::string(common::kPrometheusContentType);
      co_return m;
    }
    case Endpoint::kDispatch:
      co_return co_await handle_dispatch(self, std::move(req));
    default:
      break;
  }
  auto auth = authenticate(*self, req);
  if (auto* err = std::get_if<ApiError>(&auth)) co_return error_response(*err);
  const auth::AppConfig* app = std::get<const auth::AppConfig*>(auth);
  std::string param;
  if (!r.param.empty()) {
    // r.param points into req.path, which stays put until the handler below.
    auto decoded = decode_path_segment(r.param);
    if (!decoded) co_return error_response(invalid_argument("bad percent-escape in the path"));
    param = std::move(*decoded);
  }
  switch (r.endpoint) {
    case Endpoint::kPush:
      co_return co_await handle_push(self, app, std::move(req));
    case Endpoint::kDevice:
      co_return co_await handle_device(self, app, std::move(param));
    case Endpoint::kUserDevices:
      co_return co_await handle_user_devices(self, app, std::move(param));
    case Endpoint::kMessage:
      co_return co_await handle_message(self, app, std::move(param));
    case Endpoint::kStats:
      co_return co_await handle_stats(self, app);
    default:
      break;
  }
  co_return error_response(not_found("no endpoint " + quote(req.path)));
}

}  // namespace

Api::Api(ApiDeps deps, const PushApiConfig& cfg) : impl_(std::make_shared<Impl>(deps, cfg)) {}

Api::~Api() = default;

asio::awaitable<HttpResponse> Api::handle(HttpRequest req) {
  const auto start = std::chrono::steady_clock::now();
  const Endpoint endpoint = match(req.path).endpoint;
  HttpResponse resp;
  try {
    resp = co_await route(impl_, std::move(req));
  } catch (const std::exception& e) {
    impl_->log->error("request failed: {}", e.what());
    resp = error_response(ApiError{500, "internal", "internal error"});
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  impl_->count(endpoint, resp.status);
  impl_->latency_by_endpoint[static_cast<std::size_t>(endpoint)]->Observe(took.count());
  co_return resp;
}

asio::awaitable<bool> Api::store_ready() { return store_ready_impl(impl_); }

asio::awaitable<bool> Api::bus_ready() { return bus_ready_impl(impl_); }

}  // namespace pushgw::push_api
