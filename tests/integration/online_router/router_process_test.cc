// The online-router binary as a process: the crash_after_consume failpoint
// makes it _exit between consuming a batch and producing its records; after a
// restart every message is routed, and only records the crashed process had
// not committed may appear twice.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "online_router/routing.h"
#include "router_fixture.h"
#include "testsupport/process.h"
#include "testsupport/temp_dir.h"

namespace pushgw::online_router::testing {
namespace {

class RouterProcessTest : public RouterFixture {
 protected:
  std::string write_config(const std::string& name, uint32_t crash_after,
                           int commit_interval_ms = 100) {
    const auto path = dir_.file(name);
    std::ofstream out(path);
    out << "class = \"normal\"\n"
        << "batch_size = 50\n"
        << "batch_wait_ms = 20\n"
        << "max_in_flight = 2\n"
        << "retry_backoff_min_ms = 20\n"
        << "retry_backoff_max_ms = 200\n"
        << "drain_timeout_ms = 5000\n"
        << "[redis]\nurl = \"" << redis_->url() << "\"\nkey_prefix = \"" << prefix_ << "\"\n"
        << "[kafka]\nbootstrap = \"" << kafka_->bootstrap_servers() << "\"\n"
        << "session_timeout_ms = 2500\nheartbeat_interval_ms = 300\n"
        << "commit_interval_ms = " << commit_interval_ms << "\n"
        << "linger_ms = 1\nensure_topics_timeout_ms = 2000\n"
        << "[failpoints]\ncrash_after_consume = " << crash_after << "\n"
        << "[admin]\nport = 0\n"
        << "[log]\nlevel = \"info\"\n";
    return path.string();
  }

  testsupport::Process spawn(const std::string& config, const std::string& log_name) {
    testsupport::SpawnOptions o;
    o.stderr_path = dir_.file(log_name).string();
    o.stdout_path = o.stderr_path;
    return testsupport::Process::spawn({ONLINE_ROUTER_BIN, "--config", config}, o);
  }

  std::string log_of(const std::string& name) {
    std::ifstream in(dir_.file(name));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  testsupport::TempDir dir_{"online-router-test"};
};

TEST_F(RouterProcessTest, CrashBetweenConsumeAndProduceRedeliversEverything) {
  constexpr int kMessages = 600;
  constexpr uint32_t kCrashAfter = 8;
  upsert_node("n1");
  for (int d = 0; d < 10; ++d) register_device("d" + std::to_string(d), "n1");
  std::vector<bus::v1::PushRequest> rs;
  for (int i = 0; i < kMessages; ++i) {
    rs.push_back(unicast("m" + std::to_string(i), "d" + std::to_string(i % 10), 600));
  }
  // Record where each message landed, to tell which ones the crashed
  // process had committed.
  std::map<std::string, std::pair<int32_t, int64_t>> where;
  const auto landed = push_all(rs);
  for (std::size_t i = 0; i < rs.size(); ++i) {
    where[rs[i].message_id()] = {landed[i].partition, landed[i].offset};
  }

  // Frequent commits, so some of the routed records are committed before the crash.
  auto crashing = spawn(write_config("crash.toml", kCrashAfter, 10), "crash.log");
  auto status = crashing.wait(30s);
  ASSERT_TRUE(status.has_value()) << "the failpoint did not fire\n" << log_of("crash.log");
  ASSERT_TRUE(WIFEXITED(*status)) << log_of("crash.log");
  EXPECT_EQ(WEXITSTATUS(*status), kFailpointExitCode) << log_of("crash.log");
  const auto topic = push_topic(TrafficClass::kNormal);
  const auto committed_at_crash = kafka_->committed("online-router.normal", topic, kPushPartitions);
  const auto before = count(deliver_topic("n1"), kDeliverPartitions);
  EXPECT_LT(before, kMessages) << "the crash happened before everything was routed";

  auto second = spawn(write_config("run.toml", 0), "run.log");
  // Done when the restarted router has committed every input record (it
  // commits only what it routed and had acknowledged).
  auto committed_total = [&] {
    int64_t total = 0;
    for (const auto& [p, off] : kafka_->committed("online-router.normal", topic, kPushPartitions)) {
      total += std::max<int64_t>(off, 0);
    }
    return total;
  };
  ASSERT_TRUE(wait_for([&] { return committed_total() == kMessages; }, 30s)) << log_of("run.log");
  // A graceful stop exits 0.
  const auto status2 = second.terminate(10s);
  ASSERT_TRUE(status2.has_value());
  EXPECT_TRUE(WIFEXITED(*status2) && WEXITSTATUS(*status2) == 0) << log_of("run.log");

  for (const auto& t : {deliver_topic("n1"), std::string(kOfflineTopic)}) {
    const int parts = t == kOfflineTopic ? kOfflinePartitions : kDeliverPartitions;
    std::map<std::string, int> seen;
    std::map<std::string, uint64_t> last_seq;  // per device, in topic order
    for (const auto& d : deliveries(t, parts)) {
      ++seen[d.push().message_id()];
      // A redelivered message gets a new, higher seq: a device's records stay
      // in increasing seq order across the crash.
      EXPECT_GT(d.push().seq(), last_seq[d.device_id()]) << t << " " << d.push().message_id();
      last_seq[d.device_id()] = d.push().seq();
    }
    ASSERT_EQ(seen.size(), static_cast<std::size_t>(kMessages)) << t << ": every message routed";
    int duplicates = 0;
    for (const auto& [id, n] : seen) {
      EXPECT_LE(n, 2) << id;
      if (n < 2) continue;
      ++duplicates;
      // Only records the crashed process had not committed come again.
      const auto [partition, offset] = where[id];
      EXPECT_GE(offset, committed_at_crash.at(partition))
          << id << " was committed before the crash but routed twice";
    }
    // The window: only what the crashed process produced and had not
    // committed yet (at most max_in_flight + 2 batches plus what was processed
    // since the last commit) comes twice; never the whole input.
    EXPECT_LE(duplicates, before) << t;
    EXPECT_LT(duplicates, kMessages) << t;
    std::printf(
        "%s: %lld record(s) on the node topic before the crash, %lld input record(s) "
        "committed, %d duplicate(s)\n",
        t.c_str(), static_cast<long long>(before),
        static_cast<long long>(std::max<int64_t>(committed_at_crash.at(0), 0) +
                               std::max<int64_t>(committed_at_crash.at(1), 0)),
        duplicates);
  }
  EXPECT_EQ(committed_total(), kMessages);
}

TEST_F(RouterProcessTest, ClassFlagSelectsTheConsumerGroupAndTopics) {
  upsert_node("n1");
  register_device("d1", "n1");
  push(unicast("normal-1", "d1", 60), TrafficClass::kNormal);
  push(unicast("mkt-1", "d1", 60), TrafficClass::kMarketing);
  const auto config = write_config("m.toml", 0);
  testsupport::SpawnOptions o;
  o.stderr_path = dir_.file("m.log").string();
  auto p = testsupport::Process::spawn(
      {ONLINE_ROUTER_BIN, "--config", config, "--class", "marketing"}, o);
  ASSERT_TRUE(wait_for([&] { return count(deliver_topic("n1"), kDeliverPartitions) >= 1; }, 20s))
      << log_of("m.log");
  const auto status = p.terminate(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << log_of("m.log");
  auto live = deliveries(deliver_topic("n1"), kDeliverPartitions);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].push().message_id(), "mkt-1");
  EXPECT_EQ(live[0].push().traffic_class(), pushgw::v1::MARKETING);
  auto committed = kafka_->committed("online-router.marketing",
                                     push_topic(TrafficClass::kMarketing), kPushPartitions);
  int64_t total = 0;
  for (const auto& [part, off] : committed) total += std::max<int64_t>(off, 0);
  EXPECT_EQ(total, 1);
}

TEST_F(RouterProcessTest, BadConfigExitsWithStatus2) {
  const auto path = dir_.file("bad.toml");
  std::ofstream(path) << "batch_size = 0\n[kafka]\nbootstrap = \"127.0.0.1:1\"\n";
  auto rc = testsupport::run_command({ONLINE_ROUTER_BIN, "--config", path.string()}, 10s);
  EXPECT_EQ(rc, 2);
  auto rc2 = testsupport::run_command({ONLINE_ROUTER_BIN, "--set", "class=bulk"}, 10s);
  EXPECT_EQ(rc2, 2);
  auto rc3 = testsupport::run_command({ONLINE_ROUTER_BIN}, 10s);
  EXPECT_EQ(rc3, 2) << "no bootstrap configured";
}

}  // namespace
}  // namespace pushgw::online_router::testing
