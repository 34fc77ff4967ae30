// pushctl: the push API from the command line, signing requests like any
// business service. See tools/pushctl/README.md.
#include <CLI/CLI.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "api_client.h"
#include "common/redis/client.h"
#include "status_store/redis_status_store.h"
#include "common/auth/apps.h"
#include "common/auth/device_token.h"

namespace {

namespace json = boost::json;
using pushgw::pushctl::ApiTarget;
using pushgw::pushctl::Credentials;

struct Globals {
  std::string url = "http://127.0.0.1:8080";
  std::string app_id;
  std::string api_secret;
  int timeout_ms = 10'000;
  /// Admin URLs of the offline routers (stored-message figures per device).
  std::vector<std::string> offline_urls;
};

// Percent-encodes one path segment (ids are usually plain already).
std::string encode_segment(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || c == ':') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

void print_line(std::ostream& os, const std::string& body) {
  os << body;
  if (body.empty() || body.back() != '\n') os << '\n';
}

/// 0, or 2 after printing why the URL or the credentials are unusable.
int check_globals(const Globals& g) {
  if (!pushgw::pushctl::parse_api_url(g.url)) {
    std::cerr << "pushctl: --url must look like http://host:port (got '" << g.url << "')\n";
    return 2;
  }
  if (g.app_id.empty() || g.api_secret.empty()) {
    std::cerr << "pushctl: --app and --secret (or PUSHGW_APP_ID and PUSHGW_API_SECRET) are "
                 "required\n";
    return 2;
  }
  return 0;
}

/// Sends the request and prints the answer: 2xx -> body on stdout, exit 0;
/// anything else -> body (the API's error JSON) on stderr, exit 1.
int call(const Globals& g, const std::string& method, const std::string& path,
         const std::string& body, bool nodes_only = false) {
  if (auto bad = check_globals(g); bad != 0) return bad;
  auto target = pushgw::pushctl::parse_api_url(g.url);
  Credentials creds{g.app_id, g.api_secret};
  auto r = pushgw::pushctl::call_api(*target, creds, method, path, body,
                                     std::chrono::milliseconds(g.timeout_ms));
  if (!r) {
    std::cerr << "pushctl: " << method << " " << g.url << path << ": " << r.error().message()
              << "\n";
    return 1;
  }
  if (r->status < 200 || r->status >= 300) {
    print_line(std::cerr, r->body);
    return 1;
  }
  if (nodes_only) {
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    const json::object* o = ec ? nullptr : v.if_object();
    if (o != nullptr && o->contains("nodes")) {
      print_line(std::cout, json::serialize(o->at("nodes")));
      return 0;
    }
  }
  print_line(std::cout, r->body);
  return 0;
}

// Asks every offline router (GET /admin/device) for the device's stored
// messages; the one owning the device's partition answers 200. Returns that
// answer, or {"error": ...} when none does (then `found` is false).
json::object query_offline(const Globals& g, const std::string& device_id, bool& found) {
  found = false;
  std::string reasons;
  for (const auto& url : g.offline_urls) {
    auto target = pushgw::pushctl::parse_api_url(url);
    if (!target) {
      reasons += url + ": not an http://host:port URL; ";
      continue;
    }
    const std::string path = "/admin/device?app_id=" + encode_segment(g.app_id) +
                             "&device_id=" + encode_segment(device_id);
    auto r = pushgw::pushctl::call_api(*target, Credentials{}, "GET", path, "",
                                       std::chrono::milliseconds(g.timeout_ms));
    if (!r) {
      reasons += url + ": " + r.error().message() + "; ";
      continue;
    }
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    json::object* o = ec ? nullptr : v.if_object();
    if (r->status == 200 && o != nullptr) {
      found = true;
      (*o)["router"] = url;
      return *o;
    }
    reasons += url + ": " + std::to_string(r->status) +
               (r->status == 404 ? " (does not own the device's partition)" : "") + "; ";
  }
  json::object err;
  err["error"] = g.offline_urls.empty()
                     ? std::string("no offline router named (--offline-url or PUSHGW_OFFLINE_URLS)")
                     : "no offline router answered for the device: " + reasons;
  return err;
}

// `device ID` with offline routers named: the push API's answer plus
// "offline": the device's stored-message figures.
int device_with_offline(const Globals& g, const std::string& device_id) {
  if (auto bad = check_globals(g); bad != 0) return bad;
  auto target = pushgw::pushctl::parse_api_url(g.url);
  Credentials creds{g.app_id, g.api_secret};
  const std::string path = "/v1/devices/" + encode_segment(device_id);
  auto r = pushgw::pushctl::call_api(*target, creds, "GET", path, "",
                                     std::chrono::milliseconds(g.timeout_ms));
  if (!r) {
    std::cerr << "pushctl: GET " << g.url << path << ": " << r.error().message() << "\n";
    return 1;
  }
  if (r->status < 200 || r->status >= 300) {
    print_line(std::cerr, r->body);
    return 1;
  }
  boost::system::error_code ec;
  auto v = json::parse(r->body, ec);
  json::object* o = ec ? nullptr : v.if_object();
  if (o == nullptr) {
    print_line(std::cout, r->body);
    return 0;
  }
  bool found = false;
  (*o)["offline"] = query_offline(g, device_id, found);
  print_line(std::cout, json::serialize(*o));
  return 0;
}

// `drain NODE`: finds the node's admin address in the status store (the
// node registers it) unless --admin-url names it, then POST /admin/drain.
// Operators only: needs access to Redis and to the node's admin port.
std::string find_admin_address(const std::string& redis_url, const std::string& key_prefix,
                               const std::string& node_id, int timeout_ms, bool& known) {
  known = false;
  auto cfg = pushgw::redis::ClientConfig::parse(redis_url);
  if (!cfg) return "bad --redis URL: " + cfg.error().message();
  cfg->connection.request_timeout = std::chrono::milliseconds(timeout_ms);
  boost::asio::io_context io;
  std::string answer;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        auto client = pushgw::redis::make_client(io.get_executor(), *cfg);
        if (!client) {
          answer = "redis: " + client.error().message();
          co_return;
        }
        std::shared_ptr<pushgw::redis::Client> shared(std::move(*client));
        pushgw::status_store::RedisStatusStoreOptions so;
        so.key_prefix = key_prefix;
        pushgw::status_store::RedisStatusStore store(shared, so);
        auto nodes = co_await store.list_nodes();
        shared->close();
        if (!nodes) {
          answer = "status store: " + nodes.error().message();
          co_return;
        }
        std::string ids;
        for (const auto& n : *nodes) {
          if (n.node_id != node_id) {
            ids += (ids.empty() ? "" : ", ") + n.node_id;
            continue;
          }
          if (n.admin.empty()) {
            answer = "node " + node_id +
                     " registers no admin address (admin.port 0?): use --admin-url";
            co_return;
          }
          known = true;
          answer = n.admin;
          co_return;
        }
        answer = "no live node " + node_id + " in the status store (live: " +
                 (ids.empty() ? std::string("none") : ids) + ")";
      },
      boost::asio::detached);
  io.run_for(std::chrono::milliseconds(timeout_ms) + std::chrono::seconds(1));
  if (answer.empty()) answer = "status store: no answer in time";
  return answer;
}

int drain_node(const Globals& g, const std::string& node_id, const std::string& redis_url,
               const std::string& key_prefix, std::string admin_url) {
  if (admin_url.empty()) {
    bool known = false;
    auto addr = find_admin_address(redis_url, key_prefix, node_id, g.timeout_ms, known);
    if (!known) {
      std::cerr << "pushctl drain: " << addr << "\n";
      return 1;
    }
    admin_url = "http://" + addr;
  }
  auto target = pushgw::pushctl::parse_api_url(admin_url);
  if (!target) {
    std::cerr << "pushctl drain: admin URL must look like http://host:port (got '" << admin_url
              << "')\n";
    return 2;
  }
  auto r = pushgw::pushctl::call_api(*target, Credentials{}, "POST", "/admin/drain", "",
                                     std::chrono::milliseconds(g.timeout_ms));
  if (!r) {
    std::cerr << "pushctl drain: POST " << admin_url << "/admin/drain: " << r.error().message()
              << "\n";
    return 1;
  }
  if (r->status < 200 || r->status >= 300) {
    print_line(std::cerr, r->body);
    return 1;
  }
  std::cout << "draining " << node_id << " via " << admin_url << ": ";
  print_line(std::cout, r->body);
  return 0;
}

}  // namespace


int main(int argc, char** argv) {
  CLI::App app{"pushctl: call the pushgw push API (requests are signed with the app's api secret)"};
  app.require_subcommand(1);
  app.fallthrough();
  Globals g;
  if (const char* u = std::getenv("PUSHGW_API_URL"); u != nullptr && *u != '\0') g.url = u;
  app.add_option("--url", g.url, "push API base URL (env PUSHGW_API_URL)")->capture_default_str();
  app.add_option("--app", g.app_id, "app id (env PUSHGW_APP_ID)")->envname("PUSHGW_APP_ID");
  app.add_option("--secret", g.api_secret, "the app's api secret (env PUSHGW_API_SECRET)")
      ->envname("PUSHGW_API_SECRET");
  app.add_option("--timeout-ms", g.timeout_ms, "bound for the whole call")
      ->capture_default_str()
      ->check(CLI::Range(1, 600'000));
  if (const char* u = std::getenv("PUSHGW_OFFLINE_URLS"); u != nullptr && *u != '\0') {
    std::string list = u;
    for (std::size_t at = 0; at <= list.size();) {
      const auto comma = std::min(list.find(',', at), list.size());
      if (comma > at) g.offline_urls.push_back(list.substr(at, comma - at));
      at = comma + 1;
    }
  }
  app.add_option("--offline-url", g.offline_urls,
                 "admin URL of an offline router, repeatable (env PUSHGW_OFFLINE_URLS, "
                 "comma-separated): `device` and `stored` show the device's stored messages");

  // token
  auto* token = app.add_subcommand("token", "mint a device token (JWT HS256) for testing");
  std::string device_secret;
  std::string apps_file;
  std::string token_device;
  std::string token_uid;
  int64_t token_ttl = 3600;
  token->add_option("--device", token_device, "device id (claim sub)")->required();
  token->add_option("--uid", token_uid, "user id (claim uid)");
  token->add_option("--ttl", token_ttl, "lifetime in seconds")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{10} * 365 * 86400));
  token
      ->add_option("--device-secret", device_secret,
                   "the app's device secret (env PUSHGW_DEVICE_SECRET)")
      ->envname("PUSHGW_DEVICE_SECRET");
  token->add_option("--apps-file", apps_file, "read the device secret from this apps file");

  // push
  auto* push = app.add_subcommand("push", "POST /v1/push");
  std::vector<std::string> devices;
  std::vector<std::string> users;
  std::string topic;
  bool broadcast = false;
  std::string payload;
  std::string payload_b64;
  std::string klass;
  int64_t ttl = -1;
  std::string collapse_key;
  std::string idempotency_key;
  auto* o_device = push->add_option("--device", devices, "target device id (repeatable)");
  auto* o_user = push->add_option("--user", users, "target user id (repeatable)");
  auto* o_topic = push->add_option("--topic", topic, "target topic");
  auto* o_broadcast = push->add_flag("--broadcast", broadcast, "every device of the app");
  o_device->excludes(o_user)->excludes(o_topic)->excludes(o_broadcast);
  o_user->excludes(o_topic)->excludes(o_broadcast);
  o_topic->excludes(o_broadcast);
  auto* o_payload = push->add_option("--payload", payload, "payload text");
  auto* o_b64 = push->add_option("--payload-b64", payload_b64, "payload bytes, base64");
  o_payload->excludes(o_b64);
  push->add_option("--class", klass, "normal (default) or marketing")
      ->check(CLI::IsMember({"normal", "marketing"}));
  push->add_option("--ttl", ttl, "ttl_s (0 = online only; default: the server's)")
      ->check(CLI::Range(int64_t{0}, int64_t{100'000'000}));
  push->add_option("--collapse-key", collapse_key, "collapse key");
  push->add_option("--idempotency-key", idempotency_key, "idempotency key");

  auto* device = app.add_subcommand("device", "GET /v1/devices/ID");
  std::string device_id;
  device->add_option("ID", device_id, "device id")->required();
  auto* user = app.add_subcommand("user", "GET /v1/users/UID/devices");
  std::string user_id;
  user->add_option("UID", user_id, "user id")->required();
  auto* message = app.add_subcommand("message", "GET /v1/messages/ID");
  std::string message_id;
  message->add_option("ID", message_id, "message id")->required();
  auto* stored = app.add_subcommand(
      "stored", "the device's stored messages, from the offline routers (GET /admin/device)");
  std::string stored_device;
  stored->add_option("ID", stored_device, "device id")->required();
  auto* nodes = app.add_subcommand("nodes", "the node list of GET /v1/stats");
  auto* stats = app.add_subcommand("stats", "GET /v1/stats");
  auto* drain = app.add_subcommand(
      "drain",
      "drain a conn-node (operators): finds its admin address in the status store, then POST "
      "/admin/drain; the node stops taking links and redirects its links to other nodes");
  std::string drain_node_id;
  std::string drain_redis = "redis://127.0.0.1:6379";
  std::string drain_prefix = "pgw";
  std::string drain_admin;
  drain->add_option("NODE", drain_node_id, "node id")->required();
  drain->add_option("--redis", drain_redis, "status store URL (redis:// or redis-cluster://)")
      ->envname("PUSHGW_REDIS_URL")
      ->capture_default_str();
  drain->add_option("--key-prefix", drain_prefix, "status store key prefix (redis.key_prefix)")
      ->capture_default_str();
  drain->add_option("--admin-url", drain_admin,
                    "the node's admin URL (http://host:port): skips the status store lookup");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (token->parsed()) {
    if (g.app_id.empty()) {
      std::cerr << "pushctl token: --app (or PUSHGW_APP_ID) is required\n";
      return 2;
    }
    if (!apps_file.empty()) {
      try {
        auto apps = pushgw::auth::AppRegistry::load_file(apps_file);
        const auto* a = apps.find(g.app_id);
        if (a == nullptr) {
          std::cerr << "pushctl token: app '" << g.app_id << "' is not in " << apps_file << "\n";
          return 2;
        }
        device_secret = a->device_secret;
      } catch (const std::exception& e) {
        std::cerr << "pushctl token: " << e.what() << "\n";
        return 2;
      }
    }
    if (device_secret.empty()) {
      std::cerr << "pushctl token: --device-secret, PUSHGW_DEVICE_SECRET or --apps-file is "
                   "required\n";
      return 2;
    }
    pushgw::auth::DeviceClaims claims;
    claims.app_id = g.app_id;
    claims.device_id = token_device;
    claims.user_id = token_uid;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    claims.exp_s = static_cast<uint64_t>(now + token_ttl);
    std::cout << pushgw::auth::mint_device_token(claims, device_secret) << "\n";
    return 0;
  }

  if (push->parsed()) {
    json::object to;
    if (!devices.empty()) {
      json::array a;
      for (const auto& d : devices) a.emplace_back(d);
      to["device_ids"] = std::move(a);
    } else if (!users.empty()) {
      json::array a;
      for (const auto& u : users) a.emplace_back(u);
      to["user_ids"] = std::move(a);
    } else if (!topic.empty()) {
      to["topic"] = topic;
    } else if (broadcast) {
      to["broadcast"] = true;
    } else {
      std::cerr << "pushctl push: name a target: --device, --user, --topic or --broadcast\n";
      return 2;
    }
    json::object body;
    body["to"] = std::move(to);
    if (o_b64->count() > 0) {
      body["payload_b64"] = payload_b64;
    } else if (o_payload->count() > 0) {
      body["payload"] = payload;
    } else {
      std::cerr << "pushctl push: --payload or --payload-b64 is required\n";
      return 2;
    }
    if (!klass.empty()) body["class"] = klass;
    if (ttl >= 0) body["ttl_s"] = ttl;
    if (!collapse_key.empty()) body["collapse_key"] = collapse_key;
    if (!idempotency_key.empty()) body["idempotency_key"] = idempotency_key;
    return call(g, "POST", "/v1/push", json::serialize(body));
  }
  if (device->parsed()) {
    if (!g.offline_urls.empty()) return device_with_offline(g, device_id);
    return call(g, "GET", "/v1/devices/" + encode_segment(device_id), "");
  }
  if (stored->parsed()) {
    if (g.app_id.empty()) {
      std::cerr << "pushctl stored: --app (or PUSHGW_APP_ID) is required\n";
      return 2;
    }
    bool found = false;
    auto answer = query_offline(g, stored_device, found);
    print_line(found ? std::cout : std::cerr, json::serialize(answer));
    return found ? 0 : 1;
  }
  if (user->parsed()) {
    return call(g, "GET", "/v1/users/" + encode_segment(user_id) + "/devices", "");
  }
  if (message->parsed()) return call(g, "GET", "/v1/messages/" + encode_segment(message_id), "");
  if (nodes->parsed()) return call(g, "GET", "/v1/stats", "", true);
  if (stats->parsed()) return call(g, "GET", "/v1/stats", "");
  if (drain->parsed()) {
    return drain_node(g, drain_node_id, drain_redis, drain_prefix, drain_admin);
  }
  return 2;
}
