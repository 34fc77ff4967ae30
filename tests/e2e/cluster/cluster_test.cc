// End-to-end scenarios of issue 6: a fresh cluster of real processes per test
// (cluster.h), simulated devices (fleet.h), pushes through the signed API.
// No timed assertions: every wait is a bounded poll, and speed figures
// (latency percentiles, recovery times) are printed, not asserted.
// A failed test copies the process logs to $TMPDIR/pushgw-e2e-failed-<test>/
// (PUSHGW_E2E_KEEP_LOGS=1: for passing tests too).
#include "cluster.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fleet.h"

namespace pushgw::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = 60s;  // the longest single wait of a test

struct Expect {
  std::string message_id;
  int device;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

class E2E : public ::testing::Test {
 protected:
  void SetUp() override { start_cluster(options()); }
  virtual ClusterOptions options() const { return {}; }

  void start_cluster(ClusterOptions o) {
    const auto t0 = Clock::now();
    cluster_ = std::make_unique<Cluster>(o);
    std::printf("[e2e] cluster ready in %.1f s (%s)\n", seconds_since(t0),
                cluster_->dir().string().c_str());
    fleet_ = std::make_unique<Fleet>(*cluster_);
    warm_up();
    std::printf("[e2e] cluster warm in %.1f s\n", seconds_since(t0));
  }

  // /readyz turns 200 before the consumer groups have their partitions (the
  // mock broker takes about 3 s per join): a device that connects in that
  // window gets its live messages before its replay (replay_wait_ms runs
  // out). Tests start on a warm cluster: a probe device on each node gets a
  // normal and a marketing push, and the offline-router owns every partition.
  void warm_up() {
    Fleet probes(*cluster_);
    std::vector<Expect> ex;
    int i = 0;
    for (Proc node : {Proc::kConn1, Proc::kConn2}) {
      const int d = probes.add("probe-" + Cluster::node_id(node));
      ASSERT_EQ(probes.connect(d, 0, "tcp://127.0.0.1:" + std::to_string(cluster_->tcp_port(node))),
                "");
      for (bool marketing : {false, true}) {
        auto id = push({probes.device_id(d)}, "warm-up", 0, marketing);
        ASSERT_FALSE(id.empty());
        ex.push_back({id, d});
      }
      ++i;
    }
    ASSERT_TRUE(Fleet::eventually(
        [&] {
          for (const auto& e : ex) {
            if (probes.receipts(e.message_id).empty()) return false;
          }
          return true;
        },
        kWait, 50ms))
        << "warm-up pushes not delivered";
    ASSERT_TRUE(Fleet::eventually(
        [&] {
          auto r = cluster_->admin(Proc::kOffline, "GET", "/metrics");
          const std::string want =
              "pushgw_offline_partitions " + std::to_string(cluster_->options().partitions);
          return r && r->status == 200 && r->body.find(want) != std::string::npos;
        },
        kWait, 100ms))
        << "offline-router does not own every partition";
    for (int d = 0; d < i; ++d) probes.disconnect(d);
  }

  void TearDown() override {
    const bool keep_logs = std::getenv("PUSHGW_E2E_KEEP_LOGS") != nullptr;
    if ((HasFailure() || keep_logs) && cluster_) {
      if (HasFailure()) {
        std::printf("[e2e] logs of the failed test:\n%s\n", cluster_->logs_tail(40).c_str());
      }
      // Whole logs kept for a look after the test (the TempDir goes away).
      const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
      const auto keep = std::filesystem::temp_directory_path() /
                        (std::string("pushgw-e2e-failed-") + info->name());
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
      std::filesystem::create_directories(keep, ec);
      for (const auto& e : std::filesystem::directory_iterator(cluster_->dir(), ec)) {
        if (e.path().string().find(".log") != std::string::npos) {
          std::filesystem::copy_file(e.path(), keep / e.path().filename(), ec);
        }
      }
      std::printf("[e2e] full logs in %s\n", keep.string().c_str());
    }
    fleet_.reset();
    cluster_.reset();
  }

  Cluster& cluster() { return *cluster_; }
  Fleet& fleet() { return *fleet_; }

  // POST /v1/push to device_ids; the message_id on 202, else "" and `why`.
  std::string push(const std::vector<std::string>& devices, const std::string& payload, int ttl_s,
                   bool marketing = false, std::string* why = nullptr) {
    json::array ids;
    for (const auto& d : devices) ids.push_back(json::string(d));
    json::object body;
    body["to"] = json::object{{"device_ids", std::move(ids)}};
    body["payload"] = payload;
    body["ttl_s"] = ttl_s;
    if (marketing) body["class"] = "marketing";
    auto r = cluster().call("POST", "/v1/push", json::serialize(body));
    if (!r || r->status != 202) {
      if (why) *why = r ? "HTTP " + std::to_string(r->status) + " " + r->body : r.error().message();
      return "";
    }
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("message_id")) {
      if (why) *why = "unexpected answer " + r->body;
      return "";
    }
    return std::string(v.at("message_id").as_string());
  }

  std::string push_one(int device, const std::string& payload, int ttl_s, bool marketing = false,
                       std::string* why = nullptr) {
    return push({fleet().device_id(device)}, payload, ttl_s, marketing, why);
  }

  // Expectations not met yet (no receipt of the message by its device).
  std::vector<Expect> missing(const std::vector<Expect>& ex) const {
    std::vector<Expect> out;
    for (const auto& e : ex) {
      bool got = false;
      for (const auto& r : fleet_->receipts(e.message_id)) got = got || r.device == e.device;
      if (!got) out.push_back(e);
    }
    return out;
  }

  // Waits until every expectation is met; the ones still missing after kWait.
  std::vector<Expect> wait_delivered(const std::vector<Expect>& ex,
                                     std::chrono::milliseconds within = kWait) {
    std::vector<Expect> m;
    Fleet::eventually(
        [&] {
          m = missing(ex);
          return m.empty();
        },
        within, 100ms);
    return m;
  }

  std::string describe(const std::vector<Expect>& m) const {
    std::string out;
    for (size_t i = 0; i < m.size() && i < 20; ++i) {
      out += " " + m[i].message_id + "->" + fleet_->device_id(m[i].device);
    }
    if (m.size() > 20) out += " ...";
    return out;
  }

  // First-receipt latency of each expectation.
  std::vector<int64_t> latencies(const std::vector<Expect>& ex) const {
    std::vector<int64_t> out;
    for (const auto& e : ex) {
      for (const auto& r : fleet_->receipts(e.message_id)) {
        if (r.device == e.device) {
          out.push_back(r.latency_ms);
          break;
        }
      }
    }
    return out;
  }

  // Duplicate receipts (same message, same device) over `ex`.
  size_t duplicates(const std::vector<Expect>& ex) const {
    size_t d = 0;
    for (const auto& e : ex) {
      size_t n = 0;
      for (const auto& r : fleet_->receipts(e.message_id)) n += r.device == e.device;
      if (n > 1) d += n - 1;
    }
    return d;
  }

  // Within one link of one device, unicast seqs must increase; returns the
  // number of violations over all devices (printed by the kill tests).
  size_t order_violations() const {
    size_t v = 0;
    for (size_t i = 0; i < fleet_->size(); ++i) {
      std::map<int, uint64_t> last;  // connection -> last seq
      bool shown = false;
      for (const auto& r : fleet_->receipts_of(static_cast<int>(i))) {
        if (r.seq == 0) continue;
        auto& l = last[r.connection];
        if (r.seq <= l) {
          ++v;
          if (!shown && v <= 3) {
            shown = true;
            std::string seqs;
            for (const auto& x : fleet_->receipts_of(static_cast<int>(i))) {
              seqs += " " + std::to_string(x.connection) + ":" + std::to_string(x.seq);
            }
            std::printf("[e2e] order: %s got seq %llu after %llu on link %d; (link:seq)%s\n",
                        fleet_->device_id(static_cast<int>(i)).c_str(),
                        static_cast<unsigned long long>(r.seq), static_cast<unsigned long long>(l),
                        r.connection, seqs.c_str());
          }
        }
        l = r.seq;
      }
    }
    return v;
  }

  // GET /v1/devices/{id}: (online, node_id); nullopt when the call fails.
  std::optional<std::pair<bool, std::string>> device_status(const std::string& device_id) {
    auto r = cluster().call("GET", "/v1/devices/" + device_id);
    if (!r || r->status != 200) return std::nullopt;
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (ec || !v.is_object()) return std::nullopt;
    const auto& o = v.as_object();
    bool online = o.contains("online") && o.at("online").is_bool() && o.at("online").as_bool();
    std::string node;
    if (o.contains("node_id") && o.at("node_id").is_string()) {
      node = std::string(o.at("node_id").as_string());
    }
    return std::make_pair(online, node);
  }

  bool wait_status(const std::string& device_id, bool online, std::chrono::milliseconds within) {
    return Fleet::eventually(
        [&] {
          auto s = device_status(device_id);
          return s && s->first == online;
        },
        within, 100ms);
  }

  // Pushes `n` messages (ttl 3600) round robin over devices [0, devices),
  // one every `gap`, calling `at(k)` before push k (kills, drains). Records
  // the accepted ones; refused ones are counted (and printed).
  void push_stream(int n, int devices, std::chrono::milliseconds gap,
                   const std::function<void(int)>& at, std::vector<Expect>& ex, int& refused,
                   const std::string& tag) {
    for (int k = 0; k < n; ++k) {
      at(k);
      const int d = k % devices;
      std::string why;
      auto id = push_one(d, tag + " #" + std::to_string(k), 3600, false, &why);
      if (id.empty()) {
        ++refused;
        std::printf("[e2e] %s push %d refused: %s\n", tag.c_str(), k, why.c_str());
      } else {
        ex.push_back({id, d});
      }
      std::this_thread::sleep_for(gap);
    }
  }

  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<Fleet> fleet_;
};

// 1. Online unicast to 50 devices (tcp and ws), two rounds; latency printed.
TEST_F(E2E, OnlineUnicastReachesEveryDevice) {
  constexpr int kDevices = 50;
  fleet().add_many(kDevices, "uni", /*mix_transports=*/true);
  const auto t0 = Clock::now();
  ASSERT_EQ(fleet().connect_all(), "");
  std::printf("[e2e] %d devices connected in %.2f s\n", kDevices, seconds_since(t0));
  std::map<std::string, int> per_node;
  for (int i = 0; i < kDevices; ++i) ++per_node[fleet().node_of(i)];
  for (auto& [n, c] : per_node) std::printf("[e2e]   %s: %d links\n", n.c_str(), c);

  for (int round = 1; round <= 2; ++round) {
    std::vector<Expect> ex;
    for (int i = 0; i < kDevices; ++i) {
      std::string why;
      auto id = push_one(i, "hello " + std::to_string(round), 3600, false, &why);
      ASSERT_FALSE(id.empty()) << why;
      ex.push_back({id, i});
    }
    auto m = wait_delivered(ex);
    ASSERT_TRUE(m.empty()) << m.size() << " of " << ex.size() << " lost:" << describe(m);
    auto lat = latencies(ex);
    std::printf(
        "[e2e] round %d: %d unicast delivered, latency p50 %lld ms, p99 %lld ms, max %lld "
        "ms (Push.created_ms -> receive), %zu duplicates\n",
        round, kDevices, static_cast<long long>(percentile(lat, 0.5)),
        static_cast<long long>(percentile(lat, 0.99)), static_cast<long long>(percentile(lat, 1.0)),
        duplicates(ex));
  }
}

// 2. Offline device: stored messages arrive in seq order on reconnect
// (Hello.last_seq); acked ones are not sent again on the next connection.
TEST_F(E2E, OfflineMessagesReplayedInOrderAndAckedOnesNotResent) {
  const int d = fleet().add("offline-dev");
  const std::string dev = fleet().device_id(d);
  ASSERT_EQ(fleet().connect(d), "");
  // One online message first, so the device has a last_seq to resume from.
  auto first = push_one(d, "online", 3600);
  ASSERT_FALSE(first.empty());
  ASSERT_TRUE(wait_delivered({{first, d}}).empty());
  const uint64_t resume_seq = fleet().last_seq(d);
  ASSERT_GT(resume_seq, 0u);

  fleet().disconnect(d);
  ASSERT_TRUE(wait_status(dev, false, 10s)) << "device still online after its link closed";

  std::vector<Expect> ex;
  for (int k = 1; k <= 5; ++k) {
    std::string why;
    auto id = push_one(d, "stored #" + std::to_string(k), 3600, false, &why);
    ASSERT_FALSE(id.empty()) << why;
    ex.push_back({id, d});
  }

  // Reconnect with last_seq; no acks yet.
  fleet().set_auto_ack(false);
  const auto t0 = Clock::now();
  ASSERT_EQ(fleet().connect(d, resume_seq), "");
  auto m = wait_delivered(ex);
  ASSERT_TRUE(m.empty()) << m.size() << " stored messages not replayed:" << describe(m);
  std::printf("[e2e] 5 stored messages replayed %.0f ms after reconnect\n",
              1000 * seconds_since(t0));
  std::vector<std::string> got;
  std::vector<uint64_t> seqs;
  for (const auto& r : fleet().receipts_of(d)) {
    if (r.connection != 2) continue;
    got.push_back(r.message_id);
    seqs.push_back(r.seq);
  }
  std::vector<std::string> want;
  for (auto& e : ex) want.push_back(e.message_id);
  std::vector<std::string> got_sorted = got;
  std::vector<std::string> want_sorted = want;
  std::sort(got_sorted.begin(), got_sorted.end());
  std::sort(want_sorted.begin(), want_sorted.end());
  EXPECT_EQ(got_sorted, want_sorted) << "missing or extra messages on the new connection";
  int inversions = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (seqs[i] <= (i == 0 ? resume_seq : seqs[i - 1])) ++inversions;
  }
  std::printf("[e2e] replay order: %d seq inversion(s) (received %s)\n", inversions,
              got == want ? "in push order" : "OUT OF PUSH ORDER");
  // Stored messages come in seq order, before newer live ones (spec). A
  // store that reached the offline router after the device's replay comes
  // as a late forward; live messages that follow it (after_seq) wait for it,
  // at most replay_wait: only when that bounded wait ran out (the nodes
  // count it) may the order break, and then the test says so instead of
  // failing. PUSHGW_E2E_STRICT_ORDER=1 fails on any inversion.
  if (inversions > 0 || got != want) {
    double waits_expired = 0;
    for (Proc conn : {Proc::kConn1, Proc::kConn2}) {
      auto r = cluster().admin(conn, "GET", "/metrics");
      if (!r || r->status != 200) continue;
      for (const char* name : {"pushgw_conn_order_hold_total{event=\"timeout\"} ",
                               "pushgw_conn_replay_hold_total{event=\"timeout\"} "}) {
        auto at = r->body.find(name);
        if (at != std::string::npos) {
          waits_expired += std::strtod(r->body.c_str() + at + std::strlen(name), nullptr);
        }
      }
    }
    const char* strict = std::getenv("PUSHGW_E2E_STRICT_ORDER");
    if (waits_expired > 0 && !(strict && *strict == '1')) {
      std::printf("[e2e] NOTE: order broken after %.0f bounded wait(s) ran out (overloaded "
                  "machine)\n", waits_expired);
    } else {
      EXPECT_EQ(got, want) << "replay not in push order";
      EXPECT_EQ(inversions, 0) << "seq order";
    }
  }

  // Ack the first three by id only (no cumulative last_seq).
  ASSERT_TRUE(fleet().ack(d, {want[0], want[1], want[2]}, 0));
  // The offline-router's store shows two left once the acks are applied.
  int64_t stored = -1;
  const bool applied = Fleet::eventually(
      [&] {
        auto r =
            cluster().admin(Proc::kOffline, "GET",
                            "/admin/device?app_id=" + cluster().app().id + "&device_id=" + dev);
        if (!r || r->status != 200) return false;
        boost::system::error_code ec;
        auto v = json::parse(r->body, ec);
        if (ec || !v.is_object() || !v.as_object().contains("stored")) return false;
        stored = v.at("stored").to_number<int64_t>();
        return stored == 2;
      },
      kWait, 100ms);
  ASSERT_TRUE(applied) << "offline store still holds " << stored << " messages of the device";

  // Next connection with last_seq 0: only the two unacked ones, in order.
  fleet().disconnect(d);
  ASSERT_TRUE(wait_status(dev, false, 10s));
  ASSERT_EQ(fleet().connect(d, 0), "");
  m = wait_delivered({ex[3], ex[4]});
  ASSERT_TRUE(m.empty()) << "unacked messages not resent:" << describe(m);
  std::this_thread::sleep_for(500ms);  // anything else replayed arrives with them
  std::vector<std::string> third;
  for (const auto& r : fleet().receipts_of(d)) {
    if (r.connection == 3) third.push_back(r.message_id);
  }
  EXPECT_EQ(third, (std::vector<std::string>{want[3], want[4]}))
      << "third connection got acked messages again (or lost order)";
}

// 3. The same device connects to node 2 while on node 1: the old link gets
// Error{SESSION_REPLACED}; pushes go to the new link.
TEST_F(E2E, SessionReplacedAcrossNodes) {
  const int a = fleet().add("roaming-dev");
  const int b = fleet().add("roaming-dev");
  const std::string dev = fleet().device_id(a);
  const std::string node1 = "tcp://127.0.0.1:" + std::to_string(cluster().tcp_port(Proc::kConn1));
  const std::string node2 = "tcp://127.0.0.1:" + std::to_string(cluster().tcp_port(Proc::kConn2));
  ASSERT_EQ(fleet().connect(a, 0, node1), "");
  ASSERT_EQ(fleet().node_of(a), "node-1");
  auto m1 = push_one(a, "to the first link", 3600);
  ASSERT_FALSE(m1.empty());
  ASSERT_TRUE(wait_delivered({{m1, a}}).empty());

  ASSERT_EQ(fleet().connect(b, fleet().last_seq(a), node2), "");
  ASSERT_EQ(fleet().node_of(b), "node-2");
  ASSERT_TRUE(Fleet::eventually(
      [&] {
        auto e = fleet().errors(a);
        return !e.empty() && !fleet().connected(a);
      },
      kWait))
      << "old link still open or got no Error";
  EXPECT_EQ(fleet().errors(a), (std::vector<int>{v1::SESSION_REPLACED}));
  ASSERT_TRUE(Fleet::eventually(
      [&] {
        auto s = device_status(dev);
        return s && s->first && s->second == "node-2";
      },
      kWait))
      << "status store does not show the device on node-2";

  std::vector<Expect> ex;
  for (int k = 0; k < 5; ++k) {
    auto id = push_one(b, "to the new link #" + std::to_string(k), 3600);
    ASSERT_FALSE(id.empty());
    ex.push_back({id, b});
  }
  auto m = wait_delivered(ex);
  ASSERT_TRUE(m.empty()) << "pushes after the replacement lost:" << describe(m);
  for (const auto& e : ex) {
    for (const auto& r : fleet().receipts(e.message_id)) EXPECT_EQ(r.device, b);
  }
  // Node 1's cleanup of the old link must not have removed the new registration.
  std::this_thread::sleep_for(1s);
  auto s = device_status(dev);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->first);
  EXPECT_EQ(s->second, "node-2");
  EXPECT_TRUE(fleet().connected(b));
}

// 4. kill -9 of a conn-node while pushes (ttl > 0) flow: its devices
// reconnect to the other node through dispatch with last_seq; every accepted
// message arrives at least once.
TEST_F(E2E, ConnNodeKilledDevicesMoveWithoutLoss) {
  constexpr int kDevices = 30;
  fleet().add_many(kDevices, "kill-node");
  ASSERT_EQ(fleet().connect_all(), "");
  fleet().set_auto_reconnect(true);
  std::set<int> on_node1;
  for (int i = 0; i < kDevices; ++i) {
    if (fleet().node_of(i) == "node-1") on_node1.insert(i);
  }
  std::printf("[e2e] %zu of %d devices on node-1\n", on_node1.size(), kDevices);
  ASSERT_FALSE(on_node1.empty()) << "dispatch put no device on node-1";

  std::vector<Expect> ex;
  int refused = 0;
  Clock::time_point killed;
  push_stream(
      300, kDevices, 10ms,
      [&](int k) {
        if (k == 100) {
          cluster().kill9(Proc::kConn1);
          killed = Clock::now();
        }
      },
      ex, refused, "kill-node");
  EXPECT_EQ(refused, 0);
  ASSERT_TRUE(Fleet::eventually(
      [&] {
        for (int i = 0; i < kDevices; ++i) {
          if (fleet().node_of(i) != "node-2") return false;
        }
        return true;
      },
      kWait))
      << "not every device reconnected to node-2";
  std::printf("[e2e] every device on node-2 %.1f s after the kill\n", seconds_since(killed));
  auto m = wait_delivered(ex);
  EXPECT_TRUE(m.empty()) << m.size() << " of " << ex.size()
                         << " accepted messages lost:" << describe(m);
  auto lat = latencies(ex);
  std::printf(
      "[e2e] %zu accepted, %zu delivered, %zu duplicates, %zu seq order violations "
      "within a link, p50 %lld ms, p99 %lld ms, recovered in %.1f s after the kill\n",
      ex.size(), ex.size() - m.size(), duplicates(ex), order_violations(),
      static_cast<long long>(percentile(lat, 0.5)), static_cast<long long>(percentile(lat, 0.99)),
      seconds_since(killed));
}

// 5. kill -9 of the normal online-router mid-stream, restart: no loss.
TEST_F(E2E, OnlineRouterKilledAndRestartedWithoutLoss) {
  constexpr int kDevices = 20;
  fleet().add_many(kDevices, "kill-router");
  ASSERT_EQ(fleet().connect_all(), "");
  fleet().set_auto_reconnect(true);
  std::vector<Expect> ex;
  int refused = 0;
  Clock::time_point killed;
  push_stream(
      240, kDevices, 10ms,
      [&](int k) {
        if (k == 80) {
          cluster().kill9(Proc::kRouterNormal);
          killed = Clock::now();
        } else if (k == 120) {
          cluster().start(Proc::kRouterNormal);
          std::printf("[e2e] online-router restarted and ready %.1f s after the kill\n",
                      seconds_since(killed));
        }
      },
      ex, refused, "kill-router");
  EXPECT_EQ(refused, 0);
  auto m = wait_delivered(ex);
  EXPECT_TRUE(m.empty()) << m.size() << " of " << ex.size()
                         << " accepted messages lost:" << describe(m);
  std::printf(
      "[e2e] %zu accepted, %zu delivered, %zu duplicates, %zu seq order violations, "
      "all delivered %.1f s after the kill\n",
      ex.size(), ex.size() - m.size(), duplicates(ex), order_violations(), seconds_since(killed));
}

// 6. kill -9 of the offline-router while messages for offline devices are
// stored, restart: every message is in the store (GET /admin/device), then
// every stored message is replayed when the devices connect.
//
// `wait_for_store` false connects the devices right after the last push,
// while the restarted router may still be catching up. This reproduced a
// real loss: the node stopped holding live messages after replay_wait_ms and
// sent the newest seq before the replay; the client acked it with
// Ack.last_seq (a cumulative ack, device-protocol.md allows it) and the
// offline-router deleted the older, never delivered messages (38 of 200 lost
// in one run out of three). conn-node now leaves ack_required pushes to the
// replay while it is pending.
class E2EOffline : public E2E {
 protected:
  void run(bool wait_for_store) {
    constexpr int kDevices = 10;
    constexpr int kMessages = 200;
    fleet().add_many(kDevices, "kill-offline");  // never connected yet: offline
    std::vector<Expect> ex;
    int refused = 0;
    Clock::time_point killed;
    push_stream(
        kMessages, kDevices, 10ms,
        [&](int k) {
          if (k == 70) {
            cluster().kill9(Proc::kOffline);
            killed = Clock::now();
          } else if (k == 110) {
            cluster().start(Proc::kOffline);
            std::printf("[e2e] offline-router restarted and ready %.1f s after the kill\n",
                        seconds_since(killed));
          }
        },
        ex, refused, "kill-offline");
    EXPECT_EQ(refused, 0);
    if (wait_for_store) {
      std::map<int, int64_t> want;
      for (const auto& e : ex) ++want[e.device];
      std::map<int, int64_t> stored;
      const bool all = Fleet::eventually(
          [&] {
            for (const auto& [d, n] : want) {
              auto r = cluster().admin(Proc::kOffline, "GET",
                                       "/admin/device?app_id=" + cluster().app().id +
                                           "&device_id=" + fleet().device_id(d));
              if (!r || r->status != 200) return false;
              boost::system::error_code ec;
              auto v = json::parse(r->body, ec);
              if (ec || !v.is_object() || !v.as_object().contains("stored")) return false;
              stored[d] = v.at("stored").to_number<int64_t>();
              if (stored[d] != n) return false;
            }
            return true;
          },
          kWait, 200ms);
      std::string detail;
      for (const auto& [d, n] : want) {
        detail +=
            " " + fleet().device_id(d) + "=" + std::to_string(stored[d]) + "/" + std::to_string(n);
      }
      ASSERT_TRUE(all) << "the store does not hold every accepted message:" << detail;
      std::printf("[e2e] all %zu messages in the store %.1f s after the kill\n", ex.size(),
                  seconds_since(killed));
    }
    const auto t0 = Clock::now();
    ASSERT_EQ(fleet().connect_all(), "");
    fleet().set_auto_reconnect(true);
    auto m = wait_delivered(ex);
    EXPECT_TRUE(m.empty()) << m.size() << " of " << ex.size()
                           << " stored messages lost:" << describe(m);
    std::printf(
        "[e2e] %zu stored, %zu replayed, %zu duplicates, %zu seq order violations, "
        "replay done %.1f s after connecting\n",
        ex.size(), ex.size() - m.size(), duplicates(ex), order_violations(), seconds_since(t0));
  }
};

TEST_F(E2EOffline, OfflineRouterKilledAndRestartedKeepsStoredMessages) { run(true); }

// Was a real loss (see above; about one run in three) until conn-node stopped
// sending ack_required pushes live while a session's replay is still pending
// after replay_wait (conn-node/src/link.cc, replay_pending_).
TEST_F(E2EOffline, ConnectWhileCatchingUpLosesNothing) { run(false); }

// 7. Redis restarted on the same port (empty: no persistence): the nodes
// register their links again; the devices show online and receive pushes.
TEST_F(E2E, RedisRestartNodesReregisterLinks) {
  constexpr int kDevices = 20;
  fleet().add_many(kDevices, "redis-restart");
  ASSERT_EQ(fleet().connect_all(), "");
  fleet().set_auto_reconnect(true);
  for (int i = 0; i < kDevices; ++i) ASSERT_TRUE(wait_status(fleet().device_id(i), true, 10s));

  cluster().redis().kill();
  const auto t0 = Clock::now();
  cluster().redis().restart();
  std::printf("[e2e] redis restarted (empty) in %.1f s\n", seconds_since(t0));
  std::vector<std::string> not_online;
  const bool back = Fleet::eventually(
      [&] {
        not_online.clear();
        for (int i = 0; i < kDevices; ++i) {
          auto s = device_status(fleet().device_id(i));
          if (!s || !s->first) not_online.push_back(fleet().device_id(i));
        }
        return not_online.empty();
      },
      kWait, 200ms);
  ASSERT_TRUE(back) << not_online.size() << " devices not online again, e.g. "
                    << not_online.front();
  std::printf("[e2e] all %d devices online again %.1f s after the restart (%d reconnects)\n",
              kDevices, seconds_since(t0), [&] {
                int n = 0;
                for (int i = 0; i < kDevices; ++i) n += fleet().connections(i) - 1;
                return n;
              }());
  // And pushes reach them (routing reads the rebuilt registrations).
  std::vector<Expect> ex;
  for (int i = 0; i < kDevices; ++i) {
    std::string why;
    auto id = push_one(i, "after redis restart", 3600, false, &why);
    ASSERT_FALSE(id.empty()) << why;
    ex.push_back({id, i});
  }
  auto m = wait_delivered(ex);
  EXPECT_TRUE(m.empty()) << m.size() << " of " << ex.size()
                         << " pushes after the Redis restart lost:" << describe(m);
}

// 7b. The per-device seq counters live in Redis (INCR). After Redis comes
// back empty, a device that already received (and acked) messages must still
// get new ones, live and stored: the seqs of new messages must not fall at or
// below what the device (and the offline store's acked watermark) has seen.
// (Was a real bug: counters restarted at 1 and the reconnect with
// Hello.last_seq = N skipped seqs 1..N. A new counter now starts at a
// time-based seed, status_store::counter_seed.)
TEST_F(E2E, RedisRestartKeepsDeliveringToDevicesWithHistory) {
  constexpr int kDevices = 4;
  fleet().add_many(kDevices, "seq-history");
  ASSERT_EQ(fleet().connect_all(), "");
  fleet().set_auto_reconnect(true);
  std::vector<Expect> before;
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < kDevices; ++i) {
      auto id = push_one(i, "before #" + std::to_string(k), 3600);
      ASSERT_FALSE(id.empty());
      before.push_back({id, i});
    }
  }
  ASSERT_TRUE(wait_delivered(before).empty());
  std::this_thread::sleep_for(1s);  // acks reach the offline store

  cluster().redis().kill();
  cluster().redis().restart();
  ASSERT_TRUE(Fleet::eventually(
      [&] {
        for (int i = 0; i < kDevices; ++i) {
          auto s = device_status(fleet().device_id(i));
          if (!s || !s->first) return false;
        }
        return true;
      },
      kWait, 200ms))
      << "devices not registered again after the Redis restart";

  // Live: devices 0..2 stay connected.
  std::vector<Expect> live;
  for (int i = 0; i < kDevices - 1; ++i) {
    auto id = push_one(i, "live after restart", 3600);
    ASSERT_FALSE(id.empty());
    live.push_back({id, i});
  }
  // Stored: device 3 goes offline, gets two messages, comes back.
  const int off = kDevices - 1;
  fleet().disconnect(off);
  ASSERT_TRUE(wait_status(fleet().device_id(off), false, 10s));
  std::vector<Expect> stored;
  const uint64_t seq_before = fleet().last_seq(off);
  for (int k = 0; k < 5; ++k) {
    auto id = push_one(off, "stored after restart #" + std::to_string(k), 3600);
    ASSERT_FALSE(id.empty());
    stored.push_back({id, off});
  }
  std::printf("[e2e] device %s offline with last_seq %llu\n", fleet().device_id(off).c_str(),
              static_cast<unsigned long long>(seq_before));
  ASSERT_EQ(fleet().connect(off), "");
  auto m = wait_delivered(live);
  EXPECT_TRUE(m.empty()) << m.size() << " live pushes lost after the Redis restart:" << describe(m);
  m = wait_delivered(stored, 20s);
  for (const auto& e : stored) {
    for (const auto& r : fleet().receipts(e.message_id)) {
      std::printf("[e2e] stored-after-restart %s arrived with seq %llu\n", e.message_id.c_str(),
                  static_cast<unsigned long long>(r.seq));
    }
  }
  EXPECT_TRUE(m.empty()) << m.size() << " of " << stored.size()
                         << " stored pushes lost after the Redis restart (device last_seq "
                         << fleet().last_seq(off) << "):" << describe(m);
}

// 8. A marketing flood does not hurt normal traffic. Normal-class p99 idle
// and during the flood are printed. The 2x bound of DESIGN.md is NOT
// asserted by default: on a shared 2-core CI box under ASan a p99 over ~100
// samples swings by more than 2x from scheduling noise alone, so it would
// flake; set PUSHGW_E2E_STRICT_ISOLATION=1 to assert during <= max(2x idle,
// idle + 500 ms). Always asserted: no normal message is lost.
class E2EMarketing : public E2E {
 protected:
  // A per-node marketing cap below the flood's rate (two threads of
  // blocking API calls reach about 1000 marketing messages/s here), so
  // marketing frames queue in the nodes while normal ones must pass them.
  ClusterOptions options() const override {
    ClusterOptions o;
    o.marketing_rate = 300.0;
    return o;
  }
};

TEST_F(E2EMarketing, MarketingFloodKeepsNormalLatency) {
  constexpr int kDevices = 20;
  constexpr int kNormal = 100;
  fleet().add_many(kDevices, "flood");
  ASSERT_EQ(fleet().connect_all(), "");
  auto ids = [&] {
    std::vector<std::string> v;
    for (int i = 0; i < kDevices; ++i) v.push_back(fleet().device_id(i));
    return v;
  }();
  auto normal_round = [&](const std::string& tag) {
    std::vector<Expect> ex;
    for (int k = 0; k < kNormal; ++k) {
      std::string why;
      auto id = push_one(k % kDevices, tag + " #" + std::to_string(k), 3600, false, &why);
      EXPECT_FALSE(id.empty()) << why;
      if (!id.empty()) ex.push_back({id, k % kDevices});
      std::this_thread::sleep_for(20ms);
    }
    return ex;
  };
  // Warm-up (first pushes pay for connections and caches), then idle.
  auto warm = normal_round("warm-up");
  ASSERT_TRUE(wait_delivered(warm).empty());
  auto idle = normal_round("idle");
  auto m = wait_delivered(idle);
  ASSERT_TRUE(m.empty()) << describe(m);
  const int64_t idle_p99 = percentile(latencies(idle), 0.99);

  // Flood: every call targets all devices (kDevices marketing messages).
  std::atomic<bool> flooding{true};
  std::atomic<int> flood_calls{0};
  std::atomic<int> flood_refused{0};
  const auto flood_t0 = Clock::now();
  std::vector<std::thread> flood;
  for (int t = 0; t < 2; ++t) {
    flood.emplace_back([&] {
      // At most 300 calls (300 queued marketing frames per link, well under
      // the 1024-frame send queue; about 10 s for the nodes to drain).
      while (flooding && flood_calls.load() < 300) {
        std::string why;
        auto id = push(ids, "sale", 0, /*marketing=*/true, &why);
        if (id.empty())
          ++flood_refused;
        else
          ++flood_calls;
      }
    });
  }
  std::this_thread::sleep_for(1s);  // let the marketing queues fill
  auto during = normal_round("during");
  flooding = false;
  for (auto& t : flood) t.join();
  const double flood_s = seconds_since(flood_t0);
  m = wait_delivered(during);
  EXPECT_TRUE(m.empty()) << m.size() << " normal messages lost during the flood:" << describe(m);
  const int64_t during_p99 = percentile(latencies(during), 0.99);
  uint64_t marketing_received = 0;
  Fleet::eventually(
      [&] {
        uint64_t n = 0;
        for (int i = 0; i < kDevices; ++i) {
          for (const auto& r : fleet().receipts_of(i)) n += r.marketing;
        }
        marketing_received = n;
        return n >= static_cast<uint64_t>(flood_calls.load()) * kDevices;
      },
      kWait, 200ms);
  std::printf(
      "[e2e] normal p99 idle %lld ms, during the marketing flood %lld ms (p50 %lld -> "
      "%lld ms); flood: %d calls x %d devices accepted in %.1f s (cap %.0f/s per node), "
      "%d refused, %llu marketing received\n",
      static_cast<long long>(idle_p99), static_cast<long long>(during_p99),
      static_cast<long long>(percentile(latencies(idle), 0.5)),
      static_cast<long long>(percentile(latencies(during), 0.5)), flood_calls.load(), kDevices,
      flood_s, cluster().options().marketing_rate, flood_refused.load(),
      static_cast<unsigned long long>(marketing_received));
  const char* strict = std::getenv("PUSHGW_E2E_STRICT_ISOLATION");
  if (strict != nullptr && std::string(strict) == "1") {
    EXPECT_LE(during_p99, std::max<int64_t>(2 * idle_p99, idle_p99 + 500));
  }
}

// 9. Drain (POST /admin/drain) moves every link off node 1 without loss: the
// devices follow the Redirect to node 2 and resume with last_seq.
TEST_F(E2E, DrainMovesLinksWithoutLoss) {
  constexpr int kDevices = 30;
  fleet().add_many(kDevices, "drain");
  ASSERT_EQ(fleet().connect_all(), "");
  fleet().set_auto_reconnect(true);
  std::set<int> on_node1;
  for (int i = 0; i < kDevices; ++i) {
    if (fleet().node_of(i) == "node-1") on_node1.insert(i);
  }
  std::printf("[e2e] %zu of %d devices on node-1\n", on_node1.size(), kDevices);
  ASSERT_FALSE(on_node1.empty()) << "dispatch put no device on node-1";

  std::vector<Expect> ex;
  int refused = 0;
  Clock::time_point drained;
  push_stream(
      300, kDevices, 10ms,
      [&](int k) {
        if (k == 100) {
          auto r = cluster().admin(Proc::kConn1, "POST", "/admin/drain");
          ASSERT_TRUE(r && r->status / 100 == 2)
              << (r ? std::to_string(r->status) + " " + r->body : r.error().message());
          drained = Clock::now();
        }
      },
      ex, refused, "drain");
  EXPECT_EQ(refused, 0);
  ASSERT_TRUE(Fleet::eventually(
      [&] {
        for (int i = 0; i < kDevices; ++i) {
          if (fleet().node_of(i) != "node-2") return false;
        }
        return true;
      },
      kWait))
      << "not every device moved to node-2";
  std::printf("[e2e] every device on node-2 %.1f s after the drain began\n",
              seconds_since(drained));
  for (int i : on_node1) {
    EXPECT_GE(fleet().redirects(i), 1) << fleet().device_id(i) << " left node-1 without Redirect";
  }
  auto m = wait_delivered(ex);
  EXPECT_TRUE(m.empty()) << m.size() << " of " << ex.size()
                         << " accepted messages lost:" << describe(m);
  std::printf("[e2e] %zu accepted, %zu delivered, %zu duplicates, %zu seq order violations\n",
              ex.size(), ex.size() - m.size(), duplicates(ex), order_violations());
}

}  // namespace
}  // namespace pushgw::e2e
