// bench_offline_router: the offline router end to end on one box. Preloads N
// store records (DeliveryRecord{push}, ttl > 0) for D devices into an
// in-process Kafka mock cluster, runs the router over them (real RocksDB in
// a temp dir, WAL fsync per batch unless --no-sync) and measures stored
// msg/s; then produces one CONNECTED per device and measures replayed msg/s
// (read from RocksDB and produced to the node's delivery topic). The mock,
// the router and the preloading producer share this process and the box.
//
//   bench_offline_router [--messages 50000] [--devices 2500] [--partitions 4]
//                        [--batch 2000] [--no-sync]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "common/bus/kafka.h"
#include "common/bus/mock_cluster.h"
#include "common/log.h"
#include "common/service.h"
#include "offline_router/partition_work.h"
#include "offline_router/router.h"
#include "proto/bus.pb.h"

namespace {

namespace asio = boost::asio;
namespace orr = pushgw::offline_router;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

template <class T>
T run(pushgw::common::IoRunner& io, asio::awaitable<T> aw) {
  return asio::co_spawn(io.executor(), std::move(aw), asio::use_future).get();
}

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

bool produce_all(pushgw::common::IoRunner& io, pushgw::bus::Producer& producer,
                 std::vector<pushgw::bus::OutRecord>& all) {
  constexpr std::size_t kChunk = 20'000;
  for (std::size_t base = 0; base < all.size(); base += kChunk) {
    std::vector<pushgw::bus::OutRecord> chunk(
        all.begin() + static_cast<std::ptrdiff_t>(base),
        all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), base + kChunk)));
    auto results = run(io, producer.produce_batch(std::move(chunk)));
    for (const auto& d : results) {
      if (!d) {
        std::fprintf(stderr, "produce: %s\n", d.error().message().c_str());
        return false;
      }
    }
  }
  return true;
}

// Waits until pred() or the timeout; the seconds it took, or -1.
template <class F>
double wait_until(SteadyClock::time_point t0, F pred, std::chrono::seconds timeout,
                  const orr::OfflineRouter* router = nullptr) {
  auto next_report = t0 + 5s;
  while (!pred()) {
    if (SteadyClock::now() - t0 > timeout) return -1;
    if (router != nullptr && SteadyClock::now() > next_report) {
      next_report += 5s;
      const auto s = router->stats();
      std::fprintf(stderr, "  ... batches %llu stored %llu replays %llu replayed %llu\n",
                   static_cast<unsigned long long>(s.batches),
                   static_cast<unsigned long long>(s.stored),
                   static_cast<unsigned long long>(s.replays),
                   static_cast<unsigned long long>(s.replayed));
    }
    std::this_thread::sleep_for(5ms);
  }
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int messages = 50'000;
  int devices = 2'500;
  int partitions = 4;
  uint32_t batch = 2'000;
  bool no_sync = false;
  CLI::App app{"offline router throughput: stored and replayed msg/s (Kafka mock, RocksDB)"};
  app.add_option("--messages", messages, "store records preloaded")->capture_default_str();
  app.add_option("--devices", devices, "devices (<= 100 messages each stay under the cap)")
      ->capture_default_str();
  app.add_option("--partitions", partitions, "partitions of the input topics (stores)")
      ->capture_default_str();
  app.add_option("--batch", batch, "batch.max_records")->capture_default_str();
  app.add_flag("--no-sync", no_sync, "store.sync = false (no fsync per batch)");
  CLI11_PARSE(app, argc, argv);
  pushgw::common::LogConfig lc;
  lc.level = "warn";
  pushgw::common::setup_logging(lc);

  auto cluster = pushgw::bus::MockCluster::start(1);
  if (!cluster) {
    std::fprintf(stderr, "mock cluster: %s\n", cluster.error().message().c_str());
    return 1;
  }
  auto& mock = **cluster;
  for (const char* t : {"pushgw.offline", "pushgw.presence", "pushgw.acks"}) {
    if (!mock.create_topic(t, partitions)) return 1;
  }
  if (!mock.create_topic("pushgw.deliver.node-0", partitions)) return 1;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("bench-offline-router-" + std::to_string(::getpid()));

  pushgw::common::IoRunner io(1);
  auto work = asio::make_work_guard(io.context());
  io.start();
  pushgw::bus::ProducerConfig pc;
  pc.kafka.bootstrap_servers = mock.bootstrap_servers();
  pc.kafka.client_id = "bench-preload";
  pc.linger = 5ms;
  pc.max_queue_messages = 1'000'000;
  auto producer = pushgw::bus::make_kafka_producer(pc);

  const uint64_t expires = now_ms() + 3'600'000;
  std::vector<pushgw::bus::OutRecord> stores;
  stores.reserve(static_cast<std::size_t>(messages));
  for (int i = 0; i < messages; ++i) {
    const std::string device = "dev-" + std::to_string(i % devices);
    pushgw::bus::v1::DeliveryRecord r;
    r.set_schema_version(1);
    r.set_app_id("bench");
    r.set_device_id(device);
    auto* p = r.mutable_push();
    p->set_message_id("msg-" + std::to_string(i));
    p->set_seq(static_cast<uint64_t>(i / devices + 1));
    p->set_payload(std::string(200, 'x'));
    p->set_expires_ms(expires);
    p->set_ack_required(true);
    stores.push_back({"pushgw.offline", orr::device_key("bench", device), r.SerializeAsString(),
                      {}, std::nullopt});
  }
  // The dev broker (librdkafka's mock) keeps at most 5 MiB per partition and
  // deletes older records: a preload above that would lose records before the
  // router reads them, and the bench would wait for them forever.
  {
    std::vector<uint64_t> bytes(static_cast<std::size_t>(partitions), 0);
    for (const auto& r : stores) {
      // Value, key and the record's own framing in a batch (~70 bytes).
      bytes[static_cast<std::size_t>(orr::partition_of_key(r.key, partitions))] +=
          r.value.size() + r.key.size() + 70;
    }
    const uint64_t most = *std::max_element(bytes.begin(), bytes.end());
    constexpr uint64_t kMockLimit = 5ULL << 20;
    if (most > kMockLimit * 9 / 10) {
      std::fprintf(stderr,
                   "--messages %d over %d partitions puts ~%.1f MiB in one partition; the dev "
                   "broker (librdkafka mock) keeps at most 5 MiB per partition and would delete "
                   "the oldest records before the router reads them. Use more --partitions "
                   "(or fewer --messages).\n",
                   messages, partitions, static_cast<double>(most) / (1 << 20));
      return 2;
    }
  }
  if (!produce_all(io, *producer, stores)) return 1;

  orr::RouterConfig cfg = orr::config_schema().defaults();
  cfg.kafka.bootstrap = mock.bootstrap_servers();
  cfg.kafka.partitions = partitions;
  cfg.kafka.session_timeout = 6s;
  cfg.kafka.heartbeat_interval = 1s;
  cfg.store.data_dir = dir.string();
  cfg.store.sync = !no_sync;
  cfg.batch.max_records = batch;
  cfg.admin.port = 0;
  orr::OfflineRouter router(io.executor(), cfg);
  const auto t_start = SteadyClock::now();
  if (auto r = router.start(); !r) {
    std::fprintf(stderr, "router: %s\n", r.error().message().c_str());
    return 1;
  }
  // Time from the first stored message, not from the group join.
  const auto join_s = wait_until(t_start, [&] { return router.stats().stored > 0; }, 120s, &router);
  const auto t_store = SteadyClock::now();
  const double store_s = wait_until(
      t_store, [&] { return router.stats().stored >= static_cast<uint64_t>(messages); }, 600s, &router);
  if (join_s < 0 || store_s < 0) {
    std::fprintf(stderr, "stored only %llu of %d\n",
                 static_cast<unsigned long long>(router.stats().stored), messages);
    return 1;
  }

  std::vector<pushgw::bus::OutRecord> connects;
  for (int d = 0; d < devices; ++d) {
    const std::string device = "dev-" + std::to_string(d);
    pushgw::bus::v1::Presence p;
    p.set_schema_version(1);
    p.set_kind(pushgw::bus::v1::Presence::CONNECTED);
    p.set_app_id("bench");
    p.set_device_id(device);
    p.set_node_id("node-0");
    p.set_epoch(1);
    connects.push_back({"pushgw.presence", orr::device_key("bench", device), p.SerializeAsString(),
                        {}, std::nullopt});
  }
  const auto t_replay = SteadyClock::now();
  if (!produce_all(io, *producer, connects)) return 1;
  const double replay_s = wait_until(
      t_replay, [&] { return router.stats().replays >= static_cast<uint64_t>(devices); }, 600s, &router);
  if (replay_s < 0) {
    std::fprintf(stderr, "replays: only %llu of %d\n",
                 static_cast<unsigned long long>(router.stats().replays), devices);
    return 1;
  }
  const auto s = router.stats();
  run(io, router.shutdown());
  producer->close(5s);
  std::filesystem::remove_all(dir);

  std::printf("offline router: %d messages, %d devices, %d partitions, batch %u, %s\n", messages,
              devices, partitions, batch, no_sync ? "WAL without fsync" : "WAL fsync per batch");
  std::printf("%-34s %12s %10s\n", "phase", "msg/s", "seconds");
  std::printf("%-34s %12.0f %10.2f\n", "stored (consume + RocksDB write)",
              static_cast<double>(messages) / store_s, store_s);
  std::printf("%-34s %12.0f %10.2f\n", "replayed (read + produce, acks=all)",
              static_cast<double>(s.replayed) / replay_s, replay_s);
  std::printf("batches %llu, replays %llu, replayed %llu, store failures %llu\n",
              static_cast<unsigned long long>(s.batches),
              static_cast<unsigned long long>(s.replays),
              static_cast<unsigned long long>(s.replayed),
              static_cast<unsigned long long>(s.store_failures));
  work.reset();
  io.stop();
  io.join();
  return s.replayed == static_cast<uint64_t>(messages) ? 0 : 1;
}
