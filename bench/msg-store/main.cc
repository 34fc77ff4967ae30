// bench_msg_store: writes devices x per_device messages into a fresh RocksDB
// message store in write batches (records of many devices interleaved, as
// they come from a Kafka partition), then replays every device's queue with
// read(), then acks everything cumulatively. Prints msg/s for each phase, for
// WAL without fsync and with one fsync per batch. --stores N writes N stores
// (one per partition, devices spread over them) from N threads, as the
// offline router applies its partitions on its store pool. The records are
// built before the clock starts: the figures are the store's own.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "msg_store/rocksdb_store.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace ms = pushgw::msg_store;

struct Args {
  int devices = 10'000;
  int per_device = 50;
  int batch = 1'000;
  int payload = 200;
  int read_limit = 1'000;
  int stores = 1;
  std::string dir;
  bool keep = false;
};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// CPU seconds of the whole process (RocksDB's background threads included):
// on a shared machine the wall-clock rate depends on the neighbours, this
// figure much less.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string id_of(int device, int seq) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4bench-%012d", device, seq & 0xffff, seq);
  return buf;
}

struct Figures {
  double store_rate = 0;
  double read_rate = 0;
  double ack_rate = 0;
  double store_cpu_rate = 0;
  double read_cpu_rate = 0;
  double ack_cpu_rate = 0;
  uint64_t stored = 0;
  uint64_t read = 0;
  uint64_t sst_bytes = 0;
};

// Runs `fn(k)` for k in [0, n) on n threads and waits for all.
template <class F>
void on_threads(int n, F&& fn) {
  std::vector<std::thread> threads;
  for (int k = 1; k < n; ++k) threads.emplace_back([&fn, k] { fn(k); });
  fn(0);
  for (auto& t : threads) t.join();
}

int run(const Args& a, bool sync, Figures& f) {
  const auto dir = std::filesystem::path(a.dir) / (sync ? "sync" : "wal");
  std::filesystem::remove_all(dir);
  ms::StoreOptions options;
  options.write_buffer_bytes = 64ULL << 20;
  options.block_cache_bytes = 64ULL << 20;
  // One store per partition, as the offline router keeps them; device d
  // belongs to store d % stores.
  std::vector<std::unique_ptr<ms::MessageStore>> stores;
  for (int k = 0; k < a.stores; ++k) {
    auto opened = ms::open_rocksdb_store(dir / ("partition-" + std::to_string(k)), options);
    if (!opened) {
      std::fprintf(stderr, "open %s: %s\n", dir.c_str(), opened.error().message().c_str());
      return 1;
    }
    stores.push_back(std::move(*opened));
  }
  const uint64_t expires =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count()) +
      86'400'000ULL;
  const std::string payload(static_cast<size_t>(a.payload), 'p');
  const uint64_t total = static_cast<uint64_t>(a.devices) * static_cast<uint64_t>(a.per_device);

  // The records, built before the clock starts (the router gets them decoded
  // from Kafka): devices interleaved as they come from a partition; record i
  // belongs to device i % devices, seq i / devices + 1.
  using Batch = std::vector<pushgw::bus::v1::DeliveryRecord>;
  std::vector<std::vector<Batch>> batches(static_cast<size_t>(a.stores));
  for (uint64_t i = 0; i < total; ++i) {
    const int device = static_cast<int>(i % static_cast<uint64_t>(a.devices));
    const int seq = static_cast<int>(i / static_cast<uint64_t>(a.devices)) + 1;
    auto& mine = batches[static_cast<size_t>(device % a.stores)];
    if (mine.empty() || mine.back().size() == static_cast<size_t>(a.batch)) {
      mine.emplace_back().reserve(static_cast<size_t>(a.batch));
    }
    pushgw::bus::v1::DeliveryRecord r;
    r.set_schema_version(1);
    r.set_app_id("bench-app");
    r.set_device_id("device-" + std::to_string(device));
    auto* p = r.mutable_push();
    p->set_message_id(id_of(device, seq));
    p->set_seq(static_cast<uint64_t>(seq));
    p->set_payload(payload);
    p->set_expires_ms(expires);
    p->set_created_ms(expires - 86'400'000ULL);
    p->set_ack_required(true);
    mine.back().push_back(std::move(r));
  }

  ms::WriteOptions wo;
  wo.sync = sync;
  std::atomic<uint64_t> stored{0};
  std::atomic<bool> failed{false};
  auto t0 = Clock::now();
  double c0 = cpu_seconds();
  on_threads(a.stores, [&](int k) {
    for (const auto& b : batches[static_cast<size_t>(k)]) {
      auto res = stores[static_cast<size_t>(k)]->store(b, wo);
      if (!res) {
        std::fprintf(stderr, "store: %s\n", res.error().message().c_str());
        failed = true;
        return;
      }
      stored += res->count(ms::StoreOutcome::kStored);
    }
  });
  if (failed) return 1;
  f.stored = stored;
  f.store_rate = static_cast<double>(total) / seconds_since(t0);
  f.store_cpu_rate = static_cast<double>(total) / (cpu_seconds() - c0);
  batches.clear();

  // Replay: every device's queue, as the router does on connect.
  std::atomic<uint64_t> read{0};
  t0 = Clock::now();
  c0 = cpu_seconds();
  on_threads(a.stores, [&](int k) {
    for (int d = k; d < a.devices; d += a.stores) {
      uint64_t after = 0;
      for (;;) {
        auto r = stores[static_cast<size_t>(k)]->read("bench-app", "device-" + std::to_string(d),
                                                      after, static_cast<size_t>(a.read_limit));
        if (!r) {
          std::fprintf(stderr, "read: %s\n", r.error().message().c_str());
          failed = true;
          return;
        }
        read += r->messages.size();
        if (!r->messages.empty()) after = r->messages.back().seq();
        if (!r->more) break;
      }
    }
  });
  if (failed) return 1;
  f.read = read;
  f.read_rate = static_cast<double>(f.read) / seconds_since(t0);
  f.read_cpu_rate = static_cast<double>(f.read) / (cpu_seconds() - c0);
  for (auto& st : stores) {
    if (auto s = st->stats()) f.sst_bytes += s->sst_bytes + s->memtable_bytes;
  }

  // Cumulative acks, one per device, in batches.
  t0 = Clock::now();
  c0 = cpu_seconds();
  on_threads(a.stores, [&](int k) {
    std::vector<ms::AckRequest> acks;
    for (int d = k; d < a.devices; d += a.stores) {
      ms::AckRequest req;
      req.app_id = "bench-app";
      req.device_id = "device-" + std::to_string(d);
      req.up_to_seq = static_cast<uint64_t>(a.per_device);
      acks.push_back(std::move(req));
      if (acks.size() == 100 || d + a.stores >= a.devices) {
        if (auto r = stores[static_cast<size_t>(k)]->ack(acks, wo); !r) {
          std::fprintf(stderr, "ack: %s\n", r.error().message().c_str());
          failed = true;
          return;
        }
        acks.clear();
      }
    }
  });
  if (failed) return 1;
  f.ack_rate = static_cast<double>(total) / seconds_since(t0);
  f.ack_cpu_rate = static_cast<double>(total) / (cpu_seconds() - c0);
  for (auto& st : stores) (void)st->close();
  if (!a.keep) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"bench_msg_store: RocksDB message store throughput"};
  app.add_option("--devices", a.devices, "devices")->check(CLI::Range(1, 10'000'000));
  app.add_option("--per-device", a.per_device, "messages per device (<= cap 100 avoids overflow)")
      ->check(CLI::Range(1, 100));
  app.add_option("--batch", a.batch, "records per write batch")->check(CLI::Range(1, 100'000));
  app.add_option("--payload", a.payload, "payload bytes")->check(CLI::Range(0, 65'536));
  app.add_option("--read-limit", a.read_limit, "messages per read() call")
      ->check(CLI::Range(1, 100'000));
  app.add_option("--stores", a.stores,
                 "stores written in parallel, one thread each (the offline router keeps one per "
                 "partition and applies them on its store pool)")
      ->check(CLI::Range(1, 64));
  app.add_option("--dir", a.dir, "work directory (default: a temp dir)");
  app.add_flag("--keep", a.keep, "keep the databases");
  CLI11_PARSE(app, argc, argv);
  if (a.dir.empty()) {
    a.dir = (std::filesystem::temp_directory_path() / "pushgw-bench-msg-store").string();
  }
  std::printf("messages: %d devices x %d = %lld, payload %d B, batch %d, %d store(s)\n", a.devices,
              a.per_device, static_cast<long long>(a.devices) * a.per_device, a.payload, a.batch,
              a.stores);
  std::printf("rates: wall clock, and per CPU second of this process (shared machine)\n");
  std::printf("%-22s %22s %22s %22s %9s\n", "mode", "stored msg/s wall|cpu",
              "replayed msg/s wall|cpu", "acked msg/s wall|cpu", "size MiB");
  for (bool sync : {false, true}) {
    Figures f;
    if (run(a, sync, f) != 0) return 1;
    std::printf("%-22s %10.0f|%-11.0f %10.0f|%-11.0f %10.0f|%-11.0f %9.1f\n",
                sync ? "WAL + fsync per batch" : "WAL, no fsync", f.store_rate, f.store_cpu_rate,
                f.read_rate, f.read_cpu_rate, f.ack_rate, f.ack_cpu_rate,
                static_cast<double>(f.sst_bytes) / (1 << 20));
    if (f.stored != f.read) {
      std::fprintf(stderr, "mismatch: stored %llu, replayed %llu\n",
                   static_cast<unsigned long long>(f.stored),
                   static_cast<unsigned long long>(f.read));
      return 1;
    }
  }
  return 0;
}
