// pushgw-demo: drives a running cluster the way an app and its backend would,
// and prints what arrived and how fast. See tools/pushgw-demo/README.md.
//
// Devices connect through GET /v1/dispatch over tcp, ws and tls, then the
// demo pushes through the signed push API: one unicast message per device,
// one per user (two devices each), one to a topic, one broadcast, marketing
// unicasts, and messages to a device that went offline (delivered from the
// offline store, in order, when it reconnects). Every push is matched by
// message_id with what the devices received: missing ones are losses.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api_client.h"
#include "common/auth/apps.h"
#include "common/auth/device_token.h"
#include "pushgw_client/device.h"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using pushgw::client::Device;
using pushgw::client::Endpoint;
using pushgw::client::Transport;
using pushgw::pushctl::ApiTarget;
using pushgw::pushctl::Credentials;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Options {
  std::string api = "http://127.0.0.1:8080";
  std::string apps_file = "deploy/local/apps.toml";
  std::string app = "demo";
  int devices = 200;
  std::string transports = "tcp,ws,tls";
  int wait_s = 20;
  std::string json_out;
};

// One receipt of a Push by a device.
struct Receipt {
  int device;
  int64_t latency_ms;  // device receive - push-api accept (Push.created_ms)
  uint64_t seq;
};

// What the devices received, by message_id; written by device coroutines,
// read by the main thread.
class Inbox {
 public:
  void add(const std::string& id, Receipt r) {
    std::lock_guard l(mu_);
    by_id_[id].push_back(r);
    ++total_;
  }
  std::vector<Receipt> of(const std::string& id) const {
    std::lock_guard l(mu_);
    auto it = by_id_.find(id);
    return it == by_id_.end() ? std::vector<Receipt>{} : it->second;
  }
  uint64_t total() const {
    std::lock_guard l(mu_);
    return total_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::vector<Receipt>> by_id_;
  uint64_t total_ = 0;
};

// A simulated device: one link at a time, a reader coroutine that records and
// acks every Push.
struct Sim {
  int index = 0;
  std::string device_id;
  std::string user_id;
  bool news = false;  // subscribed to topic "news"
  Transport transport = Transport::kTcp;
  std::string node_id;
  std::shared_ptr<Device> dev;
  std::atomic<uint64_t> last_seq{0};
  std::atomic<bool> connected{false};
  std::vector<std::string> order;  // message ids in arrival order (reader only)
  std::mutex order_mu;
};

struct Expect {
  std::string message_id;
  std::set<int> devices;
};

struct PhaseResult {
  std::string name;
  int requests = 0;
  int rejected = 0;  // push API said no
  uint64_t expected = 0;
  uint64_t delivered = 0;
  uint64_t duplicates = 0;
  uint64_t lost = 0;
  std::vector<int64_t> latencies;
  double seconds = 0;
  std::string note;
};

int64_t percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

class Demo {
 public:
  Demo(Options o, ApiTarget api, pushgw::auth::AppConfig app)
      : o_(std::move(o)), api_(std::move(api)), app_(std::move(app)) {}

  int run() {
    auto tls = pushgw::client::ClientTls::create(tls_options());
    if (!tls) {
      std::fprintf(stderr, "demo: TLS context: %s\n", tls.error().message().c_str());
      return 1;
    }
    tls_ = *tls;
    std::thread io_thread([this] {
      auto guard = asio::make_work_guard(io_);
      io_.run();
    });
    int rc = scenario();
    for (auto& s : sims_) close_device(*s);
    io_.stop();
    io_thread.join();
    return rc;
  }

 private:
  static pushgw::client::TlsOptions tls_options() {
    pushgw::client::TlsOptions t;
    t.verify_peer = false;  // the local cluster uses a self-signed certificate
    return t;
  }

  int scenario() {
    // 1. connect
    const auto transports = parse_transports();
    if (transports.empty()) {
      std::fprintf(stderr, "demo: --transports must list tcp, ws, tls and/or wss\n");
      return 2;
    }
    for (int i = 0; i < o_.devices; ++i) {
      auto s = std::make_unique<Sim>();
      s->index = i;
      char id[32];
      std::snprintf(id, sizeof id, "demo-dev-%05d", i);
      s->device_id = id;
      std::snprintf(id, sizeof id, "demo-user-%05d", i / 2);
      s->user_id = id;
      s->news = i % 2 == 0;
      s->transport = transports[static_cast<size_t>(i) % transports.size()];
      sims_.push_back(std::move(s));
    }
    std::printf("\n%-10s connecting %d devices through GET /v1/dispatch (%s)\n", "connect",
                o_.devices, o_.transports.c_str());
    const auto t0 = std::chrono::steady_clock::now();
    std::atomic<int> done{0};
    std::atomic<int> failed{0};
    std::string first_error;
    std::mutex err_mu;
    // Dispatch over HTTP is blocking: a few threads resolve endpoints while
    // the io thread connects.
    std::vector<std::thread> ts;
    std::atomic<int> next{0};
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&] {
        for (int i = next++; i < o_.devices; i = next++) {
          auto r = connect_device(*sims_[static_cast<size_t>(i)], 0);
          if (!r.empty()) {
            ++failed;
            std::lock_guard l(err_mu);
            if (first_error.empty()) first_error = r;
          }
          ++done;
        }
      });
    }
    while (done.load() < o_.devices) {
      progress("connect", done.load(), o_.devices);
      std::this_thread::sleep_for(100ms);
    }
    for (auto& t : ts) t.join();
    const double connect_s = seconds_since(t0);
    progress_done("connect", static_cast<uint64_t>(done.load() - failed.load()),
                  static_cast<uint64_t>(o_.devices), connect_s);
    if (failed.load() > 0) {
      std::fprintf(stderr, "demo: %d of %d devices could not connect; first error: %s\n",
                   failed.load(), o_.devices, first_error.c_str());
      return 1;
    }
    std::map<std::string, int> per_node;
    for (auto& s : sims_) ++per_node[s->node_id];
    std::printf("%-10s %d links in %.2f s (%.0f links/s):", "", o_.devices, connect_s,
                o_.devices / std::max(connect_s, 1e-3));
    for (auto& [n, c] : per_node) std::printf("  %s=%d", n.c_str(), c);
    std::printf("\n");

    std::vector<PhaseResult> results;
    // 2. unicast, one message per device
    results.push_back(run_phase("unicast", [&](std::vector<Expect>& ex, PhaseResult& pr) {
      for (auto& s : sims_) {
        json::object body;
        body["to"] = json::object{{"device_ids", json::array{json::string(s->device_id)}}};
        body["payload"] = "hello " + s->device_id;
        push(body, {s->index}, ex, pr);
      }
    }));
    // 3. user: every user has two devices
    results.push_back(run_phase("user", [&](std::vector<Expect>& ex, PhaseResult& pr) {
      for (size_t i = 0; i < sims_.size(); i += 2) {
        json::object body;
        body["to"] = json::object{{"user_ids", json::array{json::string(sims_[i]->user_id)}}};
        body["payload"] = "to user " + sims_[i]->user_id;
        std::set<int> devs{static_cast<int>(i)};
        if (i + 1 < sims_.size()) devs.insert(static_cast<int>(i + 1));
        push(body, devs, ex, pr);
      }
    }));
    // 4. topic "news": the even devices subscribed in their Hello
    results.push_back(run_phase("topic", [&](std::vector<Expect>& ex, PhaseResult& pr) {
      json::object body;
      body["to"] = json::object{{"topic", "news"}};
      body["payload"] = "breaking news";
      body["ttl_s"] = 0;
      std::set<int> devs;
      for (auto& s : sims_) {
        if (s->news) devs.insert(s->index);
      }
      push(body, devs, ex, pr);
    }));
    // 5. broadcast to every device of the app
    results.push_back(run_phase("broadcast", [&](std::vector<Expect>& ex, PhaseResult& pr) {
      json::object body;
      body["to"] = json::object{{"broadcast", true}};
      body["payload"] = "to everyone";
      body["ttl_s"] = 0;
      std::set<int> devs;
      for (auto& s : sims_) devs.insert(s->index);
      push(body, devs, ex, pr);
    }));
    // 6. marketing lane (own router cluster, own quota, own per-node rate cap)
    results.push_back(run_phase("marketing", [&](std::vector<Expect>& ex, PhaseResult& pr) {
      for (size_t i = 0; i < sims_.size(); i += 4) {
        json::object body;
        body["to"] = json::object{{"device_ids", json::array{json::string(sims_[i]->device_id)}}};
        body["payload"] = "sale starts now";
        body["class"] = "marketing";
        push(body, {static_cast<int>(i)}, ex, pr);
      }
    }));
    // 7. offline device: stored, then replayed in order on reconnect
    results.push_back(offline_phase());

    print_summary(results, connect_s);
    if (!o_.json_out.empty()) write_json(results, connect_s);
    for (auto& r : results) {
      if (r.lost > 0 || r.rejected > 0) return 1;
    }
    return 0;
  }

  std::vector<Transport> parse_transports() const {
    std::vector<Transport> out;
    std::string s = o_.transports + ",";
    size_t at = 0;
    for (size_t c = s.find(','); c != std::string::npos; at = c + 1, c = s.find(',', at)) {
      auto t = s.substr(at, c - at);
      if (t == "tcp") out.push_back(Transport::kTcp);
      else if (t == "ws") out.push_back(Transport::kWs);
      else if (t == "tls") out.push_back(Transport::kTls);
      else if (t == "wss") out.push_back(Transport::kWss);
      else if (!t.empty()) return {};
    }
    return out;
  }

  static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  // A progress bar redrawn in place on a terminal; elsewhere (logs, CI) one
  // line per phase is printed by the caller instead.
  static void progress(const char* what, int n, int of) {
    static const bool tty = isatty(STDOUT_FILENO) != 0;
    if (!tty) return;
    const int width = 30;
    const int filled = of > 0 ? std::min(width, n * width / of) : width;
    std::printf("\r%-10s [%s%s] %d/%d", what, std::string(static_cast<size_t>(filled), '#').c_str(),
                std::string(static_cast<size_t>(width - filled), '.').c_str(), n, of);
    std::fflush(stdout);
  }

  static void progress_done(const char* what, uint64_t n, uint64_t of, double secs) {
    static const bool tty = isatty(STDOUT_FILENO) != 0;
    std::printf("%s%-10s %llu/%llu in %.2f s\n", tty ? "\r\033[K" : "", what,
                static_cast<unsigned long long>(n), static_cast<unsigned long long>(of), secs);
  }

  pushgw::result<pushgw::pushctl::ApiResponse> api(const std::string& method,
                                                   const std::string& path,
                                                   const std::string& body, bool sign = true) {
    Credentials c;
    if (sign) c = Credentials{app_.id, app_.api_secret};
    return pushgw::pushctl::call_api(api_, c, method, path, body, 10s);
  }

  // Dispatch, connect, Hello; "" on success, else the reason.
  std::string connect_device(Sim& s, uint64_t last_seq) {
    auto r = api("GET", "/v1/dispatch?app_id=" + app_.id + "&device_id=" + s.device_id, "",
                 false);
    if (!r) return "dispatch: " + r.error().message();
    if (r->status != 200) return "dispatch: HTTP " + std::to_string(r->status) + " " + r->body;
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("endpoints") ||
        !v.at("endpoints").is_array() || v.at("endpoints").as_array().empty()) {
      return "dispatch: no live node (" + r->body + ")";
    }
    const auto& ep = v.at("endpoints").as_array()[0].as_object();
    const char* key = pushgw::client::to_string(s.transport).data();
    auto* addr = ep.if_contains(key);
    if (!addr || !addr->is_string() || addr->as_string().empty()) {
      return std::string("dispatch: node has no ") + key + " listener";
    }
    std::string url = std::string(key) + "://" + std::string(addr->as_string());
    if (pushgw::client::uses_websocket(s.transport)) url += "/ws";
    auto endpoint = pushgw::client::parse_endpoint(url);
    if (!endpoint) return "bad endpoint " + url;
    pushgw::auth::DeviceClaims claims{app_.id, s.device_id, s.user_id,
                                      static_cast<uint64_t>(now_ms() / 1000 + 3600)};
    auto token = pushgw::auth::mint_device_token(claims, app_.device_secret);
    std::vector<std::string> topics;
    if (s.news) topics.push_back("news");
    auto fut = asio::co_spawn(io_, hello(&s, *endpoint, token, last_seq, topics),
                              asio::use_future);
    return fut.get();
  }

  asio::awaitable<std::string> hello(Sim* s, Endpoint ep, std::string token, uint64_t last_seq,
                                     std::vector<std::string> topics) {
    pushgw::client::ConnectOptions co;
    co.tls = tls_;
    auto link = co_await pushgw::client::Link::connect(io_.get_executor(), ep, co);
    if (!link) co_return "connect " + pushgw::client::to_url(ep) + ": " + link.error().message();
    auto dev = std::make_shared<Device>(std::move(*link));
    // Named locals moved in: GCC 12 mis-copies by-value string temporaries
    // created inside a co_await expression (their SSO buffer pointer keeps
    // pointing into this frame).
    std::string app_id = app_.id;
    std::string device_id = s->device_id;
    auto hello_op = dev->hello(std::move(app_id), std::move(device_id), std::move(token),
                               last_seq, std::move(topics));
    auto reply = co_await std::move(hello_op);
    if (!reply) co_return "hello: " + reply.error().message();
    if (!reply->welcome) {
      co_return "hello refused: " +
          (reply->error ? reply->error->message() : std::string("redirect"));
    }
    s->node_id = reply->welcome->node_id();
    s->dev = dev;
    s->connected = true;
    asio::co_spawn(io_, reader(s, dev), asio::detached);
    co_return "";
  }

  asio::awaitable<void> reader(Sim* s, std::shared_ptr<Device> dev) {
    for (;;) {
      auto f = co_await dev->recv(pushgw::client::kNoTimeout);
      if (!f) break;
      if (f->has_push()) {
        const auto& p = f->push();
        inbox_.add(p.message_id(), Receipt{s->index, now_ms() - static_cast<int64_t>(p.created_ms()),
                                           p.seq()});
        {
          std::lock_guard l(s->order_mu);
          s->order.push_back(p.message_id());
        }
        if (p.seq() > s->last_seq.load()) s->last_seq = p.seq();
        if (p.ack_required()) {
          std::vector<std::string> ids{p.message_id()};
          (void)co_await dev->ack(std::move(ids), s->last_seq.load());
        }
      } else if (f->has_error() || f->has_redirect() || f->has_bye()) {
        break;
      }
    }
    s->connected = false;
  }

  void close_device(Sim& s) {
    auto dev = std::move(s.dev);
    if (!dev) return;
    auto fut = asio::co_spawn(
        io_,
        [dev]() -> asio::awaitable<void> {
          (void)co_await dev->bye("demo done");
          co_await dev->close();
        },
        asio::use_future);
    fut.wait_for(5s);
  }

  void push(const json::object& body, std::set<int> devices, std::vector<Expect>& ex,
            PhaseResult& pr) {
    ++pr.requests;
    auto r = api("POST", "/v1/push", json::serialize(body));
    if (!r || r->status != 202) {
      ++pr.rejected;
      if (pr.note.empty()) {
        pr.note = r ? "HTTP " + std::to_string(r->status) + " " + r->body : r.error().message();
      }
      return;
    }
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("message_id")) {
      ++pr.rejected;
      pr.note = "unexpected answer " + r->body;
      return;
    }
    ex.push_back(Expect{std::string(v.at("message_id").as_string()), std::move(devices)});
  }

  // Runs `send`, then waits (bounded) until every expected receipt arrived.
  template <typename Send>
  PhaseResult run_phase(const std::string& name, Send send) {
    PhaseResult pr;
    pr.name = name;
    std::vector<Expect> ex;
    const auto t0 = std::chrono::steady_clock::now();
    send(ex, pr);
    for (auto& e : ex) pr.expected += e.devices.size();
    const auto deadline = t0 + std::chrono::seconds(o_.wait_s);
    for (;;) {
      tally(ex, pr);
      progress(name.c_str(), static_cast<int>(pr.delivered), static_cast<int>(pr.expected));
      if (pr.delivered >= pr.expected || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(50ms);
    }
    pr.seconds = seconds_since(t0);
    std::this_thread::sleep_for(200ms);  // late duplicates
    tally(ex, pr);
    progress_done(name.c_str(), pr.delivered, pr.expected, pr.seconds);
    return pr;
  }

  void tally(const std::vector<Expect>& ex, PhaseResult& pr) {
    pr.delivered = pr.duplicates = pr.lost = 0;
    pr.latencies.clear();
    for (const auto& e : ex) {
      std::map<int, int> seen;
      for (const auto& r : inbox_.of(e.message_id)) {
        if (!e.devices.count(r.device)) continue;  // not a target: counted elsewhere
        if (++seen[r.device] == 1) {
          pr.latencies.push_back(r.latency_ms);
        } else {
          ++pr.duplicates;
        }
      }
      pr.delivered += seen.size();
      pr.lost += e.devices.size() - seen.size();
    }
  }

  PhaseResult offline_phase() {
    PhaseResult pr;
    pr.name = "offline";
    Sim& s = *sims_[1];  // not subscribed to news: nothing else arrives meanwhile
    const auto t0 = std::chrono::steady_clock::now();
    close_device(s);
    // Wait until the status store says offline, so the router stores the messages.
    bool offline = false;
    for (int i = 0; i < 100 && !offline; ++i) {
      auto r = api("GET", "/v1/devices/" + s.device_id, "");
      offline = r && r->status == 200 && r->body.find("\"online\":false") != std::string::npos;
      if (!offline) std::this_thread::sleep_for(100ms);
    }
    if (!offline) {
      pr.note = "device still online after disconnect";
      return pr;
    }
    std::vector<Expect> ex;
    for (int i = 1; i <= 3; ++i) {
      json::object body;
      body["to"] = json::object{{"device_ids", json::array{json::string(s.device_id)}}};
      body["payload"] = "while you were away #" + std::to_string(i);
      body["ttl_s"] = 3600;
      push(body, {s.index}, ex, pr);
    }
    pr.expected = ex.size();
    std::printf("%-10s %s offline, %zu messages stored; reconnecting with last_seq %llu\n",
                "offline", s.device_id.c_str(), ex.size(),
                static_cast<unsigned long long>(s.last_seq.load()));
    {
      std::lock_guard l(s.order_mu);
      s.order.clear();
    }
    const auto reconnect_t0 = std::chrono::steady_clock::now();
    auto err = connect_device(s, s.last_seq.load());
    if (!err.empty()) {
      pr.note = "reconnect: " + err;
      pr.lost = ex.size();
      return pr;
    }
    const auto deadline = reconnect_t0 + std::chrono::seconds(o_.wait_s);
    for (;;) {
      tally(ex, pr);
      if (pr.delivered >= pr.expected || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(50ms);
    }
    pr.seconds = seconds_since(t0);
    // Order check: replayed in the order the messages were accepted.
    std::vector<std::string> got;
    {
      std::lock_guard l(s.order_mu);
      got = s.order;
    }
    std::vector<std::string> want;
    for (auto& e : ex) want.push_back(e.message_id);
    std::vector<std::string> got_expected;
    for (auto& id : got) {
      if (std::find(want.begin(), want.end(), id) != want.end()) got_expected.push_back(id);
    }
    pr.note = got_expected == want ? "replayed in order after " +
                                         std::to_string(static_cast<int>(
                                             1000 * seconds_since(reconnect_t0))) +
                                         " ms"
                                   : "OUT OF ORDER";
    if (got_expected != want) pr.lost = std::max<uint64_t>(pr.lost, 1);
    return pr;
  }

  void print_summary(const std::vector<PhaseResult>& rs, double connect_s) {
    std::printf("\n%-10s %8s %9s %9s %5s %5s %7s %7s %7s  %s\n", "phase", "requests", "expected",
                "delivered", "dup", "lost", "p50 ms", "p99 ms", "max ms", "note");
    std::printf("%s\n", std::string(96, '-').c_str());
    for (const auto& r : rs) {
      std::printf("%-10s %8d %9llu %9llu %5llu %5llu %7lld %7lld %7lld  %s\n", r.name.c_str(),
                  r.requests, static_cast<unsigned long long>(r.expected),
                  static_cast<unsigned long long>(r.delivered),
                  static_cast<unsigned long long>(r.duplicates),
                  static_cast<unsigned long long>(r.lost),
                  static_cast<long long>(percentile(r.latencies, 0.5)),
                  static_cast<long long>(percentile(r.latencies, 0.99)),
                  static_cast<long long>(percentile(r.latencies, 1.0)),
                  r.rejected ? ("REJECTED: " + r.note).c_str() : r.note.c_str());
    }
    uint64_t lost = 0;
    uint64_t delivered = 0;
    for (const auto& r : rs) {
      lost += r.lost;
      delivered += r.delivered;
    }
    std::printf("%s\n", std::string(96, '-').c_str());
    std::printf("%d devices connected in %.2f s; %llu messages delivered, %llu lost\n",
                o_.devices, connect_s, static_cast<unsigned long long>(delivered),
                static_cast<unsigned long long>(lost));
    std::printf("latency = device receive time - push-api accept time (Push.created_ms)\n");
  }

  void write_json(const std::vector<PhaseResult>& rs, double connect_s) {
    json::array phases;
    for (const auto& r : rs) {
      phases.push_back(json::object{{"phase", r.name},
                                    {"requests", r.requests},
                                    {"rejected", r.rejected},
                                    {"expected", r.expected},
                                    {"delivered", r.delivered},
                                    {"duplicates", r.duplicates},
                                    {"lost", r.lost},
                                    {"p50_ms", percentile(r.latencies, 0.5)},
                                    {"p99_ms", percentile(r.latencies, 0.99)},
                                    {"max_ms", percentile(r.latencies, 1.0)},
                                    {"seconds", r.seconds},
                                    {"note", r.note}});
    }
    json::object doc{{"devices", o_.devices}, {"connect_seconds", connect_s},
                     {"phases", std::move(phases)}};
    std::ofstream(o_.json_out) << json::serialize(doc) << "\n";
  }

  Options o_;
  ApiTarget api_;
  pushgw::auth::AppConfig app_;
  asio::io_context io_;
  std::shared_ptr<pushgw::client::ClientTls> tls_;
  std::vector<std::unique_ptr<Sim>> sims_;
  Inbox inbox_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"pushgw-demo: connects simulated devices to a running pushgw cluster, pushes "
               "through the signed push API (unicast, user, topic, broadcast, marketing, "
               "offline + reconnect) and prints what arrived and how fast. Exit code 1 if "
               "anything was lost or refused."};
  app.add_option("--api", o.api, "push-api base URL")->capture_default_str();
  app.add_option("--apps-file", o.apps_file, "apps file with the app's secrets")
      ->capture_default_str();
  app.add_option("--app", o.app, "app id")->capture_default_str();
  app.add_option("--devices", o.devices, "simulated devices (even count: two per user)")
      ->check(CLI::Range(2, 5000))
      ->capture_default_str();
  app.add_option("--transports", o.transports, "listeners to use, round robin (tcp,ws,tls,wss)")
      ->capture_default_str();
  app.add_option("--wait-s", o.wait_s, "longest wait for the deliveries of one phase")
      ->check(CLI::Range(1, 600))
      ->capture_default_str();
  app.add_option("--json", o.json_out, "also write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  auto target = pushgw::pushctl::parse_api_url(o.api);
  if (!target) {
    std::fprintf(stderr, "demo: --api must look like http://host:port (got '%s')\n",
                 o.api.c_str());
    return 2;
  }
  pushgw::auth::AppConfig cfg;
  try {
    auto apps = pushgw::auth::AppRegistry::load_file(o.apps_file);
    const auto* a = apps.find(o.app);
    if (!a) {
      std::fprintf(stderr, "demo: app '%s' is not in %s\n", o.app.c_str(), o.apps_file.c_str());
      return 2;
    }
    cfg = *a;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo: %s\n", e.what());
    return 2;
  }
  return Demo(o, *target, cfg).run();
}
