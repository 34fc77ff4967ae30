// The offline-router binary as a process: SIGKILL it at random points while
// it stores, then check that every message whose Kafka offset was committed
// is in the store and that every store opens. PUSHGW_CRASH_KILLS sets the
// number of kills (default 5; bench/msg-store/crash_loop.sh runs 100) and
// PUSHGW_CRASH_SEED the random seed.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/bus/kafka.h"
#include "common/service.h"
#include "msg_store/rocksdb_store.h"
#include "offline_router/partition_work.h"
#include "proto/bus.pb.h"
#include "testsupport/kafka_mock.h"
#include "testsupport/ports.h"
#include "testsupport/process.h"
#include "testsupport/temp_dir.h"

namespace pushgw::offline_router {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr int kPartitions = 2;
constexpr int kDevices = 20;
constexpr const char* kApp = "crash-app";

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Sent {
  int32_t partition;
  int64_t offset;
  std::string device;
  uint64_t seq;
};

class CrashHarness {
 public:
  CrashHarness() : dir_("offline-crash") {
    offline_ = kafka_.create_topic(kPartitions, "offline");
    presence_ = kafka_.create_topic(kPartitions, "presence");
    acks_ = kafka_.create_topic(kPartitions, "acks");
    group_ = kafka_.unique_name("crash-group");
    io_.start();  // work_ keeps it running
    producer_ = bus::make_kafka_producer(kafka_.producer_config("crash-producer"));
    std::ofstream cfg(config_path());
    cfg << "[kafka]\n"
        << "bootstrap = \"" << kafka_.bootstrap_servers() << "\"\n"
        << "group_id = \"" << group_ << "\"\n"
        << "offline_topic = \"" << offline_ << "\"\n"
        << "presence_topic = \"" << presence_ << "\"\n"
        << "acks_topic = \"" << acks_ << "\"\n"
        << "deliver_prefix = \"" << kafka_.unique_name("deliver") << ".\"\n"
        << "partitions = " << kPartitions << "\n"
        << "session_timeout_ms = 3000\n"
        << "heartbeat_interval_ms = 500\n"
        << "properties = [\"topic.metadata.refresh.interval.ms=500\"]\n"
        << "[store]\n"
        << "data_dir = \"" << data_dir().string() << "\"\n"
        << "write_buffer_mb = 4\n"
        // No cap: every message must stay (the cap would drop the oldest).
        << "max_per_device = 1000000\n"
        << "block_cache_mb = 4\n"
        << "open_wait_ms = 10000\n"
        << "[batch]\n"
        << "max_records = 100\n"
        << "poll_timeout_ms = 50\n"
        << "[admin]\n"
        << "port = " << admin_port_ << "\n"
        << "[log]\n"
        << "file = \"" << dir_.file("router.log").string() << "\"\n";
  }

  ~CrashHarness() {
    producer_->close(2s);
    work_.reset();
    io_.stop();
    io_.join();
  }

  std::filesystem::path config_path() const { return dir_.file("router.toml"); }
  uint16_t admin_port() const { return admin_port_; }
  std::filesystem::path file(const std::string& name) const { return dir_.file(name); }
  std::filesystem::path data_dir() const { return dir_.path() / "data"; }
  std::string log_text() const { return slurp(dir_.file("router.log")); }

  testsupport::Process spawn() {
    testsupport::SpawnOptions o;
    o.stdout_path = dir_.file("stdout").string();
    o.stderr_path = dir_.file("stderr").string();
    // PUSHGW_OFFLINE_ROUTER_BIN: another binary (crash_loop.sh runs a copy, so
    // that a rebuild during a long loop cannot swap it).
    const char* bin = std::getenv("PUSHGW_OFFLINE_ROUTER_BIN");
    return testsupport::Process::spawn(
        {bin != nullptr && *bin != '\0' ? bin : OFFLINE_ROUTER_BIN, "--config",
         config_path().string()},
        o);
  }

  // Produces `n` store records over the devices, each device's seqs increasing.
  void produce_round(int n) {
    std::vector<bus::OutRecord> out;
    std::vector<Sent> pending;
    const uint64_t expires = now_ms() + 3'600'000;
    for (int i = 0; i < n; ++i) {
      const std::string device = "d" + std::to_string(i % kDevices);
      const uint64_t seq = ++next_seq_[device];
      bus::v1::DeliveryRecord r;
      r.set_schema_version(1);
      r.set_app_id(kApp);
      r.set_device_id(device);
      auto* p = r.mutable_push();
      p->set_message_id(device + "-m" + std::to_string(seq));
      p->set_seq(seq);
      p->set_payload(std::string(100, 'x'));
      p->set_expires_ms(expires);
      p->set_ack_required(true);
      out.push_back({offline_, device_key(kApp, device), r.SerializeAsString(), {}, std::nullopt});
      pending.push_back({-1, -1, device, seq});
    }
    auto fut = asio::co_spawn(io_.executor(), producer_->produce_batch(std::move(out)),
                              asio::use_future);
    ASSERT_EQ(fut.wait_for(30s), std::future_status::ready);
    auto results = fut.get();
    for (std::size_t i = 0; i < results.size(); ++i) {
      ASSERT_TRUE(results[i]) << results[i].error().message();
      pending[i].partition = results[i]->partition;
      pending[i].offset = results[i]->offset;
      sent_.push_back(pending[i]);
    }
  }

  std::map<int32_t, int64_t> committed() { return kafka_.committed(group_, offline_, kPartitions); }

  bool all_committed() {
    auto c = committed();
    for (int p = 0; p < kPartitions; ++p) {
      if (c[p] != kafka_.high_watermark(offline_, p)) return false;
    }
    return true;
  }

  // Every message whose offset is below the committed offset of its
  // partition must be in that partition's store; every store must open.
  // Returns how many messages were checked.
  std::size_t verify(const std::string& when) {
    auto c = committed();
    std::map<int32_t, std::unique_ptr<msg_store::MessageStore>> stores;
    for (int p = 0; p < kPartitions; ++p) {
      const auto path = data_dir() / ("partition-" + std::to_string(p));
      if (!std::filesystem::exists(path)) {
        EXPECT_LT(c[p], 0) << when << ": partition " << p << " committed without a store";
        continue;
      }
      msg_store::StoreOptions o;
      o.max_per_device = 1'000'000;
      auto s = msg_store::open_rocksdb_store(path, o);
      EXPECT_TRUE(s) << when << ": store " << p
                     << " does not open: " << (s ? "" : s.error().message());
      if (s) stores[p] = std::move(*s);
    }
    std::size_t checked = 0;
    for (const auto& m : sent_) {
      if (c[m.partition] < 0 || m.offset >= c[m.partition]) continue;
      auto it = stores.find(m.partition);
      if (it == stores.end()) {
        ADD_FAILURE() << when << ": no store for partition " << m.partition;
        return checked;
      }
      auto r = it->second->read(kApp, m.device, m.seq - 1, 1);
      EXPECT_TRUE(r && r->messages.size() == 1 && r->messages[0].seq() == m.seq)
          << when << ": committed message " << m.device << "#" << m.seq << " (partition "
          << m.partition << " offset " << m.offset << ", committed " << c[m.partition]
          << ") is not in the store";
      ++checked;
    }
    return checked;
  }

  std::size_t sent() const { return sent_.size(); }

 private:
  testsupport::KafkaMock kafka_{1};
  testsupport::TempDir dir_;
  uint16_t admin_port_ = testsupport::free_port();
  std::string offline_;
  std::string presence_;
  std::string acks_;
  std::string group_;
  common::IoRunner io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.context().get_executor()};
  std::unique_ptr<bus::Producer> producer_;
  std::map<std::string, uint64_t> next_seq_;
  std::vector<Sent> sent_;
};

TEST(OfflineRouterProcess, CommittedMessagesSurviveSigkillAtRandomPoints) {
  const int kills = env_int("PUSHGW_CRASH_KILLS", 5);
  const unsigned seed =
      static_cast<unsigned>(env_int("PUSHGW_CRASH_SEED", static_cast<int>(std::random_device{}())));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(300, 7'000);
  SCOPED_TRACE("PUSHGW_CRASH_SEED=" + std::to_string(seed));

  CrashHarness h;
  std::size_t checked_total = 0;
  for (int k = 0; k < kills; ++k) {
    h.produce_round(300);
    auto proc = h.spawn();
    const int delay = delay_ms(rng);
    // Keep producing while the router runs, so that kills land in the middle
    // of store writes and commits, not only during startup or when idle.
    std::atomic<bool> producing{true};
    std::thread producer([&] {
      while (producing) {
        h.produce_round(20);
        std::this_thread::sleep_for(100ms);
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    const bool running = proc.running();
    proc.kill();
    producing = false;
    producer.join();
    ASSERT_TRUE(running) << "router exited on its own before kill " << k << ":\n"
                         << h.log_text();
    checked_total += h.verify("after kill " + std::to_string(k) + " at " + std::to_string(delay) +
                              " ms");
    if (::testing::Test::HasFailure()) return;
  }

  // A last run consumes everything and stops cleanly: then every message is stored.
  auto proc = h.spawn();
  const bool drained = [&] {
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (h.all_committed()) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }();
  auto status = proc.terminate(30s);
  ASSERT_TRUE(drained) << "the router did not commit everything:\n" << h.log_text();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status;
  const std::size_t final_checked = h.verify("after the final run");
  EXPECT_EQ(final_checked, h.sent()) << "every produced message is committed and stored";
  std::cout << "kills " << kills << ", messages " << h.sent() << ", committed-and-checked after kills "
            << checked_total << "\n";
}

// pushctl stored / device --offline-url read GET /admin/device of the
// running binary.
TEST(OfflineRouterProcess, PushctlShowsTheStoredMessagesOfADevice) {
  CrashHarness h;
  h.produce_round(3 * kDevices);  // three messages per device
  auto proc = h.spawn();
  const bool drained = [&] {
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (h.all_committed()) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }();
  ASSERT_TRUE(drained) << h.log_text();
  const std::string url = "http://127.0.0.1:" + std::to_string(h.admin_port());
  const auto out = h.file("pushctl.out");
  auto pushctl = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv = {PUSHCTL_BIN, "--app", kApp, "--timeout-ms", "20000"};
    argv.insert(argv.end(), args.begin(), args.end());
    return testsupport::run_command(argv, 60s, out.string());
  };
  ASSERT_EQ(pushctl({"--offline-url", url, "stored", "d3"}), 0) << slurp(out);
  const std::string answer = slurp(out);
  EXPECT_NE(answer.find("\"stored\":3"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\"highest_seq\":3"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\"owned\":true"), std::string::npos) << answer;
  ASSERT_EQ(pushctl({"--offline-url", url, "stored", "never-seen"}), 0) << slurp(out);
  EXPECT_NE(slurp(out).find("\"stored\":0"), std::string::npos) << slurp(out);
  // No router answers: exit 1 and say why.
  const std::string dead = "http://127.0.0.1:" + std::to_string(testsupport::free_port());
  EXPECT_EQ(pushctl({"--offline-url", dead, "stored", "d3"}), 1) << slurp(out);
  auto status = proc.terminate(30s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status;
}

}  // namespace
}  // namespace pushgw::offline_router
