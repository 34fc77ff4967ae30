// loadgen: many simulated devices over tcp/tls/ws/wss, spread over worker
// processes and loopback source addresses, unicast pushes through the signed
// push API, and a latency / loss report. See tools/loadgen/README.md.
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api_client.h"
#include "common/auth/apps.h"
#include "report.h"
#include "worker.h"

namespace {

namespace json = boost::json;
namespace lg = pushgw::loadgen;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string api = "http://127.0.0.1:8080";
  std::string apps_file = "deploy/local/apps.toml";
  std::string app = "demo";
  uint32_t devices = 1000;
  uint32_t per_worker = 12500;
  std::string source_base = "127.0.0.";
  uint32_t source_first = 2;
  std::string transports = "tcp";
  uint32_t inflight = 64;
  uint32_t heartbeat_s = 0;
  std::string heartbeat = "random";
  uint32_t messages = 1;
  double rate = 20000;
  uint32_t batch = 1000;
  uint32_t pushers = 4;
  uint32_t ttl_s = 86400;
  uint32_t payload_bytes = 32;
  uint32_t wait_s = 60;
  uint32_t connect_timeout_s = 900;
  uint32_t hold_s = 0;
  std::string device_prefix;
  std::string json_out;
  std::string pid_dir;
  std::string pid_glob = "conn-node";
  // worker mode
  bool worker = false;
  uint32_t w_index = 0, w_first = 0, w_count = 0;
  std::string w_source;
  std::string w_secret_file;
};

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

uint64_t vm_rss_kib(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

// name -> pid of the conn-node processes to watch (pid files in --pid-dir).
std::map<std::string, long> watched_pids(const Options& o) {
  std::map<std::string, long> out;
  if (o.pid_dir.empty()) return out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(o.pid_dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.find(o.pid_glob) == std::string::npos || e.path().extension() != ".pid") continue;
    std::ifstream in(e.path());
    long pid = 0;
    if (in >> pid && pid > 0) out[e.path().stem().string()] = pid;
  }
  return out;
}

struct WorkerProc {
  uint32_t index = 0;
  pid_t pid = -1;
  FILE* to = nullptr;   // its stdin
  FILE* from = nullptr; // its stdout
  std::thread reader;
  // state from its events (guarded by Coordinator::mu_)
  bool connected_seen = false;
  bool done_seen = false;
  json::object connected;
  json::object last;  // newest progress/done
};

class Coordinator {
 public:
  Coordinator(Options o, pushgw::pushctl::ApiTarget api, pushgw::auth::AppConfig app)
      : o_(std::move(o)), api_(std::move(api)), app_(std::move(app)) {}

  int run() {
    ::signal(SIGPIPE, SIG_IGN);
    if (o_.device_prefix.empty()) {
      o_.device_prefix = "lg" + std::to_string(::time(nullptr) % 100000) + "-";
    }
    const uint32_t k = std::max<uint32_t>(1, (o_.devices + o_.per_worker - 1) / o_.per_worker);
    report_.devices = o_.devices;
    report_.workers = k;
    report_.transports = o_.transports;
    report_.heartbeat = (o_.heartbeat_s ? std::to_string(o_.heartbeat_s) + " s" : "Welcome's") +
                        std::string(" ") + o_.heartbeat;
    say("%u devices (prefix %s) over %u worker processes, %s", o_.devices,
        o_.device_prefix.c_str(), k, o_.transports.c_str());
    // Secret handed to workers through a file, not argv.
    secret_file_ = std::filesystem::temp_directory_path() /
                   ("loadgen-" + std::to_string(::getpid()) + ".secret");
    {
      std::ofstream f(secret_file_);
      f << app_.device_secret;
    }
    ::chmod(secret_file_.c_str(), 0600);
    uint32_t first = 0;
    for (uint32_t i = 0; i < k; ++i) {
      const uint32_t n = std::min(o_.per_worker, o_.devices - first);
      if (!spawn(i, first, n)) return 1;
      first += n;
    }
    const int rc = scenario();
    std::filesystem::remove(secret_file_);
    return rc;
  }

 private:
  template <typename... A>
  static void say(const char* fmt, A... a) {
    std::fprintf(stderr, "[loadgen] ");
    std::fprintf(stderr, fmt, a...);
    std::fprintf(stderr, "\n");
  }

  bool spawn(uint32_t index, uint32_t first, uint32_t count) {
    int in_pipe[2], out_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) return false;
    std::vector<std::string> args = {
        "/proc/self/exe",     "--worker",
        "--worker-index",     std::to_string(index),
        "--worker-first",     std::to_string(first),
        "--worker-count",     std::to_string(count),
        "--worker-source",    o_.source_base + std::to_string(o_.source_first + index),
        "--worker-secret-file", secret_file_.string(),
        "--api",              o_.api,
        "--app",              o_.app,
        "--transports",       o_.transports,
        "--inflight",         std::to_string(o_.inflight),
        "--heartbeat-s",      std::to_string(o_.heartbeat_s),
        "--heartbeat",        o_.heartbeat,
        "--device-prefix",    o_.device_prefix};
    // Built before fork: the child of a threaded process may only make
    // async-signal-safe calls until exec.
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      ::dup2(in_pipe[0], STDIN_FILENO);
      ::dup2(out_pipe[1], STDOUT_FILENO);
      ::execv("/proc/self/exe", argv.data());
      ::_exit(127);
    }
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    auto w = std::make_unique<WorkerProc>();
    w->index = index;
    w->pid = pid;
    w->to = ::fdopen(in_pipe[1], "w");
    w->from = ::fdopen(out_pipe[0], "r");
    WorkerProc* wp = w.get();
    w->reader = std::thread([this, wp] { read_worker(wp); });
    workers_.push_back(std::move(w));
    return true;
  }

  void read_worker(WorkerProc* w) {
    std::string line;
    char buf[65536];
    while (std::fgets(buf, sizeof buf, w->from)) {
      line += buf;
      if (line.empty() || line.back() != '\n') continue;
      boost::system::error_code ec;
      auto v = json::parse(line, ec);
      line.clear();
      if (ec || !v.is_object()) continue;
      auto& o = v.as_object();
      const auto ev = o["ev"].is_string() ? std::string(o["ev"].as_string()) : "";
      std::lock_guard l(mu_);
      if (ev == "rx") {
        const uint64_t before = tally_.delivered();
        for (const auto& r : o["r"].as_array()) {
          const auto& a = r.as_array();
          tally_.receive(std::string(a[0].as_string()), static_cast<uint32_t>(a[1].to_number<uint64_t>()),
                         a[2].to_number<int64_t>());
        }
        if (tally_.delivered() > before) last_delivery_ = Clock::now();
      } else if (ev == "connected") {
        w->connected_seen = true;
        w->connected = o;
      } else if (ev == "progress" || ev == "done") {
        w->last = o;
        if (ev == "done") w->done_seen = true;
      }
    }
    std::lock_guard l(mu_);
    w->done_seen = true;  // EOF: the worker exited
    if (!w->connected_seen) {
      w->connected_seen = true;
      w->connected = json::object{{"connected", 0}, {"failed", 0}};
      worker_died_ = true;
    }
  }

  uint64_t sum_last(const char* key) {
    uint64_t n = 0;
    for (auto& w : workers_) {
      if (auto* v = w->last.if_contains(key)) n += v->to_number<uint64_t>();
    }
    return n;
  }

  int scenario() {
    // 1. connect
    const auto t0 = Clock::now();
    auto last_say = t0;
    for (;;) {
      {
        std::lock_guard l(mu_);
        bool all = true;
        for (auto& w : workers_) all = all && w->connected_seen;
        if (all) break;
        if (since(last_say) >= 5) {
          last_say = Clock::now();
          say("connecting: %llu connected, %llu failed, %.0f s",
              static_cast<unsigned long long>(sum_last("connected")),
              static_cast<unsigned long long>(sum_last("failed")), since(t0));
        }
      }
      if (since(t0) > o_.connect_timeout_s) {
        say("connect phase timed out after %u s", o_.connect_timeout_s);
        report_.notes.push_back("connect phase timed out");
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    std::vector<uint32_t> targets;
    {
      std::lock_guard l(mu_);
      double slowest = 0;
      std::vector<bool> failed(o_.devices, false);
      uint32_t first = 0;
      for (auto& w : workers_) {
        auto& c = w->connected;
        report_.connected += c["connected"].to_number<uint64_t>();
        report_.connect_failed += c["failed"].to_number<uint64_t>();
        if (auto* s = c.if_contains("seconds")) slowest = std::max(slowest, s->to_number<double>());
        if (auto* n = c.if_contains("nodes")) {
          for (auto& [node, cnt] : n->as_object()) {
            report_.links_per_node[std::string(node)] += cnt.to_number<uint64_t>();
          }
        }
        if (auto* f = c.if_contains("failed_devices")) {
          for (auto& d : f->as_array()) failed[d.to_number<uint64_t>()] = true;
        }
        if (auto* e = c.if_contains("first_error"); e && report_.first_error.empty() &&
                                                     e->is_string() && !e->as_string().empty()) {
          report_.first_error = std::string(e->as_string());
        }
        const uint32_t n = std::min(o_.per_worker, o_.devices - first);
        if (!w->connected.contains("seconds")) {
          for (uint32_t i = first; i < first + n; ++i) failed[i] = true;
          report_.connect_failed += n;
        }
        first += n;
      }
      report_.connect_s = slowest > 0 ? slowest : since(t0);
      for (uint32_t i = 0; i < o_.devices; ++i) {
        if (!failed[i]) targets.push_back(i);
      }
      if (worker_died_) report_.notes.push_back("a worker process exited early");
    }
    say("connected %llu of %u in %.2f s (%.0f links/s), %llu failed",
        static_cast<unsigned long long>(report_.connected), o_.devices, report_.connect_s,
        report_.connect_rate(), static_cast<unsigned long long>(report_.connect_failed));
    std::this_thread::sleep_for(1s);  // let the last registrations settle
    for (auto& [name, pid] : watched_pids(o_)) report_.node_rss_kib[name].first = vm_rss_kib(pid);

    // 2. push: unicast, `messages` rounds over every connected device.
    std::vector<std::vector<uint32_t>> batches;
    for (uint32_t m = 0; m < o_.messages; ++m) {
      for (size_t at = 0; at < targets.size(); at += o_.batch) {
        batches.emplace_back(targets.begin() + static_cast<long>(at),
                             targets.begin() + static_cast<long>(std::min(targets.size(), at + o_.batch)));
      }
    }
    say("pushing %zu requests (%u device ids each at most) at %.0f targets/s", batches.size(),
        o_.batch, o_.rate);
    const auto push_t0 = Clock::now();
    std::atomic<size_t> next{0};
    std::vector<double> start_at(batches.size());
    double acc = 0;
    for (size_t i = 0; i < batches.size(); ++i) {
      start_at[i] = o_.rate > 0 ? acc / o_.rate : 0;
      acc += static_cast<double>(batches[i].size());
    }
    std::vector<std::thread> pushers;
    for (uint32_t p = 0; p < std::max<uint32_t>(o_.pushers, 1); ++p) {
      pushers.emplace_back([&] {
        for (size_t i = next++; i < batches.size(); i = next++) {
          const auto when = push_t0 + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(start_at[i]));
          std::this_thread::sleep_until(when);
          push(batches[i], i);
        }
      });
    }
    for (auto& t : pushers) t.join();
    report_.push_s = since(push_t0);
    say("pushes answered in %.2f s (%llu accepted requests, %llu rejected)", report_.push_s,
        static_cast<unsigned long long>(report_.requests - report_.rejected),
        static_cast<unsigned long long>(report_.rejected));

    // 3. wait for the receipts
    const auto deadline = Clock::now() + std::chrono::seconds(o_.wait_s);
    last_say = Clock::now();
    for (;;) {
      {
        std::lock_guard l(mu_);
        if (tally_.delivered() >= tally_.expected()) break;
        if (since(last_say) >= 5) {
          last_say = Clock::now();
          say("waiting: %llu of %llu delivered", static_cast<unsigned long long>(tally_.delivered()),
              static_cast<unsigned long long>(tally_.expected()));
        }
      }
      if (Clock::now() > deadline) {
        report_.notes.push_back("gave up waiting after --wait-s " + std::to_string(o_.wait_s));
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    {
      std::lock_guard l(mu_);
      report_.deliver_s =
          last_delivery_ > push_t0 ? std::chrono::duration<double>(last_delivery_ - push_t0).count()
                                   : 0;
    }
    if (o_.hold_s > 0) {
      say("holding the links %u s more", o_.hold_s);
      std::this_thread::sleep_for(std::chrono::seconds(o_.hold_s));
    } else {
      std::this_thread::sleep_for(500ms);  // late duplicates
    }
    for (auto& [name, pid] : watched_pids(o_)) report_.node_rss_kib[name].second = vm_rss_kib(pid);

    // 4. stop the workers
    for (auto& w : workers_) {
      std::fputs("stop\n", w->to);
      std::fflush(w->to);
    }
    for (auto& w : workers_) {
      w->reader.join();
      int st = 0;
      ::waitpid(w->pid, &st, 0);
      std::fclose(w->to);
      std::fclose(w->from);
    }
    {
      std::lock_guard l(mu_);
      std::string first_drop;
      for (auto& w : workers_) {
        auto& d = w->last;
        if (!d.contains("ev") || d["ev"] != "done") {
          report_.notes.push_back("worker " + std::to_string(w->index) + " sent no final stats");
        }
        auto get = [&](const char* k) {
          auto* v = d.if_contains(k);
          return v ? v->to_number<uint64_t>() : uint64_t{0};
        };
        report_.dropped += get("dropped");
        report_.held_at_end += get("open");
        report_.pings += get("pings");
        report_.pongs += get("pongs");
        if (auto* f = d.if_contains("first_drop");
            f && f->is_string() && !f->as_string().empty() && first_drop.empty()) {
          first_drop = std::string(f->as_string());
        }
      }
      if (!first_drop.empty()) report_.notes.push_back("first dropped link: " + first_drop);
      report_.expected = tally_.expected();
      report_.delivered = tally_.delivered();
      report_.lost = tally_.lost();
      report_.duplicates = tally_.duplicates();
      report_.unexpected = tally_.unexpected();
      report_.latency = tally_.latencies();
      for (auto& [id, dev] : tally_.lost_sample(3)) {
        report_.notes.push_back("lost: message " + id + " to " + lg::device_id(o_.device_prefix, dev));
      }
    }
    const std::string table = lg::format_table(report_);
    const std::string doc = json::serialize(lg::to_json(report_));
    if (o_.json_out == "-") {
      std::fputs(table.c_str(), stderr);
      std::printf("%s\n", doc.c_str());
    } else {
      std::fputs(table.c_str(), stdout);
      if (!o_.json_out.empty()) std::ofstream(o_.json_out) << doc << "\n";
    }
    return report_.passed() ? 0 : 1;
  }

  void push(const std::vector<uint32_t>& devices, size_t i) {
    json::array ids;
    for (uint32_t d : devices) ids.emplace_back(lg::device_id(o_.device_prefix, d));
    json::object to;
    to["device_ids"] = std::move(ids);
    json::object body;
    body["to"] = std::move(to);
    std::string payload = "loadgen #" + std::to_string(i) + " ";
    if (payload.size() < o_.payload_bytes) payload.resize(o_.payload_bytes, 'x');
    body["payload"] = payload;
    body["ttl_s"] = o_.ttl_s;
    const std::string text = json::serialize(body);
    pushgw::pushctl::Credentials c{app_.id, app_.api_secret};
    std::string err;
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto r = pushgw::pushctl::call_api(api_, c, "POST", "/v1/push", text, 30s);
      if (r && r->status == 202) {
        boost::system::error_code ec;
        auto v = json::parse(r->body, ec);
        if (!ec && v.is_object() && v.as_object().contains("message_id")) {
          std::lock_guard l(mu_);
          const uint64_t before = tally_.delivered();
          tally_.expect(std::string(v.at("message_id").as_string()), devices);
          if (tally_.delivered() > before) last_delivery_ = Clock::now();
          ++report_.requests;
          return;
        }
        err = "unexpected answer " + r->body;
        break;
      }
      if (r && (r->status == 429 || r->status == 503)) {
        std::lock_guard l(mu_);
        ++report_.retried;
        err = "HTTP " + std::to_string(r->status) + " " + r->body;
      } else {
        // A transport error may have come after push-api accepted: retrying
        // could send twice (no idempotency key here), so it is a rejection.
        err = r ? "HTTP " + std::to_string(r->status) + " " + r->body : r.error().message();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * (attempt + 1)));
    }
    std::lock_guard l(mu_);
    ++report_.requests;
    ++report_.rejected;
    if (report_.first_error.empty()) report_.first_error = "push: " + err;
  }

  Options o_;
  pushgw::pushctl::ApiTarget api_;
  pushgw::auth::AppConfig app_;
  std::filesystem::path secret_file_;
  std::vector<std::unique_ptr<WorkerProc>> workers_;
  std::mutex mu_;
  lg::Tally tally_;
  lg::Report report_;
  Clock::time_point last_delivery_{};
  bool worker_died_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "loadgen: N simulated devices (tcp/tls/ws/wss) spread over worker processes and loopback "
      "source addresses, connected through GET /v1/dispatch; unicast pushes through the signed "
      "push API; reports connect rate, delivered msg/s, latency percentiles (push-api accept -> "
      "device receive), duplicates and losses. Exit code 1 on any loss, refused push, failed "
      "or dropped link."};
  app.add_option("--api", o.api, "push-api base URL")->capture_default_str();
  app.add_option("--apps-file", o.apps_file, "apps file with the app's secrets")->capture_default_str();
  app.add_option("--app", o.app, "app id")->capture_default_str();
  app.add_option("--devices", o.devices, "simulated devices")->check(CLI::Range(1u, 2'000'000u))
      ->capture_default_str();
  app.add_option("--per-worker", o.per_worker, "devices per worker process (fd limit!)")
      ->check(CLI::Range(1u, 19'000u))->capture_default_str();
  app.add_option("--source-base", o.source_base, "source address prefix of the workers")
      ->capture_default_str();
  app.add_option("--source-first", o.source_first,
                 "worker k binds <source-base><source-first + k>")->capture_default_str();
  app.add_option("--transports", o.transports, "listeners used round robin: tcp,tls,ws,wss")
      ->capture_default_str();
  app.add_option("--inflight", o.inflight, "link setups in flight per worker")
      ->check(CLI::Range(1u, 10'000u))->capture_default_str();
  app.add_option("--heartbeat-s", o.heartbeat_s, "Ping interval (0: Welcome.heartbeat_s)")
      ->capture_default_str();
  app.add_option("--heartbeat", o.heartbeat,
                 "fixed: every interval; random: first Ping at a random point, then every "
                 "[interval/2, interval]")->check(CLI::IsMember({"fixed", "random"}))
      ->capture_default_str();
  app.add_option("--messages", o.messages, "unicast messages per device")->capture_default_str();
  app.add_option("--rate", o.rate, "push targets per second (0: as fast as the pushers go)")
      ->capture_default_str();
  app.add_option("--batch", o.batch, "device ids per push request")
      ->check(CLI::Range(1u, 1000u))->capture_default_str();
  app.add_option("--pushers", o.pushers, "concurrent push requests")
      ->check(CLI::Range(1u, 256u))->capture_default_str();
  app.add_option("--ttl-s", o.ttl_s, "ttl_s of the pushes (0: online only, no acks)")
      ->capture_default_str();
  app.add_option("--payload-bytes", o.payload_bytes, "payload size")
      ->check(CLI::Range(1u, 4096u))->capture_default_str();
  app.add_option("--wait-s", o.wait_s, "longest wait for receipts after the last push")
      ->capture_default_str();
  app.add_option("--connect-timeout-s", o.connect_timeout_s, "longest connect phase")
      ->capture_default_str();
  app.add_option("--hold-s", o.hold_s, "keep the links open this long after the deliveries "
                                       "(heartbeats keep running)")->capture_default_str();
  app.add_option("--device-prefix", o.device_prefix, "device id prefix (default: lg<time>-)");
  app.add_option("--json", o.json_out, "also write the report as JSON to this file ('-': stdout, "
                                       "table on stderr)");
  app.add_option("--pid-dir", o.pid_dir, "directory of pid files (e.g. .run/pids): VmRSS of the "
                                         "conn-node processes goes into the report");
  app.add_option("--pid-match", o.pid_glob, "pid files whose name contains this")
      ->capture_default_str();
  auto* wopt = app.add_flag("--worker", o.worker, "internal: run as a worker process");
  wopt->group("");
  app.add_option("--worker-index", o.w_index)->group("");
  app.add_option("--worker-first", o.w_first)->group("");
  app.add_option("--worker-count", o.w_count)->group("");
  app.add_option("--worker-source", o.w_source)->group("");
  app.add_option("--worker-secret-file", o.w_secret_file)->group("");
  CLI11_PARSE(app, argc, argv);

  auto target = pushgw::pushctl::parse_api_url(o.api);
  if (!target) {
    std::fprintf(stderr, "loadgen: --api must look like http://host:port (got '%s')\n",
                 o.api.c_str());
    return 2;
  }
  std::vector<std::string> transports;
  {
    std::string s = o.transports + ",";
    for (size_t at = 0, c = s.find(','); c != std::string::npos; at = c + 1, c = s.find(',', at)) {
      if (c > at) transports.push_back(s.substr(at, c - at));
    }
    for (const auto& t : transports) {
      if (t != "tcp" && t != "tls" && t != "ws" && t != "wss") {
        std::fprintf(stderr, "loadgen: --transports takes tcp, tls, ws, wss (got %s)\n", t.c_str());
        return 2;
      }
    }
    if (transports.empty()) transports.push_back("tcp");
  }

  if (o.worker) {
    lg::WorkerOptions w;
    w.index = o.w_index;
    w.first = o.w_first;
    w.count = o.w_count;
    w.device_prefix = o.device_prefix;
    w.source = o.w_source;
    w.api_host = target->host;
    w.api_port = target->port;
    w.app_id = o.app;
    std::ifstream in(o.w_secret_file);
    std::getline(in, w.device_secret);
    w.transports = transports;
    w.inflight = o.inflight;
    w.heartbeat_s = o.heartbeat_s;
    w.heartbeat_random = o.heartbeat == "random";
    return lg::run_worker(w);
  }

  pushgw::auth::AppConfig cfg;
  try {
    auto apps = pushgw::auth::AppRegistry::load_file(o.apps_file);
    const auto* a = apps.find(o.app);
    if (!a) {
      std::fprintf(stderr, "loadgen: app '%s' is not in %s\n", o.app.c_str(), o.apps_file.c_str());
      return 2;
    }
    cfg = *a;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loadgen: %s\n", e.what());
    return 2;
  }
  return Coordinator(o, *target, cfg).run();
}
