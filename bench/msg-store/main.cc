// bench_msg_store: writes devices x per_device messages into a fresh RocksDB
// message store in write batches (records of many devices interleaved, as
// they come from a Kafka partition), then replays every device's queue with
// read(), then acks everything cumulatively. Prints msg/s for each phase, for
// WAL without fsync and with one fsync per batch.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>
#include <string>
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

int run(const Args& a, bool sync, Figures& f) {
  const auto dir = std::filesystem::path(a.dir) / (sync ? "sync" : "wal");
  std::filesystem::remove_all(dir);
  ms::StoreOptions options;
  options.write_buffer_bytes = 64ULL << 20;
  options.block_cache_bytes = 64ULL << 20;
  auto opened = ms::open_rocksdb_store(dir, options);
  if (!opened) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), opened.error().message().c_str());
    return 1;
  }
  auto& store = **opened;
  const uint64_t expires =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count()) +
      86'400'000ULL;
  const std::string payload(static_cast<size_t>(a.payload), 'p');
  const uint64_t total = static_cast<uint64_t>(a.devices) * static_cast<uint64_t>(a.per_device);

  // Interleave devices: record i belongs to device i % devices, seq i / devices + 1.
  std::vector<pushgw::bus::v1::DeliveryRecord> batch;
  batch.reserve(static_cast<size_t>(a.batch));
  ms::WriteOptions wo;
  wo.sync = sync;
  auto t0 = Clock::now();
  double c0 = cpu_seconds();
  for (uint64_t i = 0; i < total; ++i) {
    const int device = static_cast<int>(i % static_cast<uint64_t>(a.devices));
    const int seq = static_cast<int>(i / static_cast<uint64_t>(a.devices)) + 1;
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
    batch.push_back(std::move(r));
    if (batch.size() == static_cast<size_t>(a.batch) || i + 1 == total) {
      auto res = store.store(batch, wo);
      if (!res) {
        std::fprintf(stderr, "store: %s\n", res.error().message().c_str());
        return 1;
      }
      f.stored += res->count(ms::StoreOutcome::kStored);
      batch.clear();
    }
  }
  f.store_rate = static_cast<double>(total) / seconds_since(t0);
  f.store_cpu_rate = static_cast<double>(total) / (cpu_seconds() - c0);

  // Replay: every device's queue, as the router does on connect.
  t0 = Clock::now();
  c0 = cpu_seconds();
  for (int d = 0; d < a.devices; ++d) {
    uint64_t after = 0;
    for (;;) {
      auto r = store.read("bench-app", "device-" + std::to_string(d), after,
                          static_cast<size_t>(a.read_limit));
      if (!r) {
        std::fprintf(stderr, "read: %s\n", r.error().message().c_str());
        return 1;
      }
      f.read += r->messages.size();
      if (!r->messages.empty()) after = r->messages.back().seq();
      if (!r->more) break;
    }
  }
  f.read_rate = static_cast<double>(f.read) / seconds_since(t0);
  f.read_cpu_rate = static_cast<double>(f.read) / (cpu_seconds() - c0);
  if (auto s = store.stats()) f.sst_bytes = s->sst_bytes + s->memtable_bytes;

  // Cumulative acks, one per device, in batches.
  t0 = Clock::now();
  c0 = cpu_seconds();
  std::vector<ms::AckRequest> acks;
  for (int d = 0; d < a.devices; ++d) {
    ms::AckRequest req;
    req.app_id = "bench-app";
    req.device_id = "device-" + std::to_string(d);
    req.up_to_seq = static_cast<uint64_t>(a.per_device);
    acks.push_back(std::move(req));
    if (acks.size() == 100 || d + 1 == a.devices) {
      if (auto r = store.ack(acks, wo); !r) {
        std::fprintf(stderr, "ack: %s\n", r.error().message().c_str());
        return 1;
      }
      acks.clear();
    }
  }
  f.ack_rate = static_cast<double>(total) / seconds_since(t0);
  f.ack_cpu_rate = static_cast<double>(total) / (cpu_seconds() - c0);
  (void)store.close();
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
  app.add_option("--dir", a.dir, "work directory (default: a temp dir)");
  app.add_flag("--keep", a.keep, "keep the databases");
  CLI11_PARSE(app, argc, argv);
  if (a.dir.empty()) {
    a.dir = (std::filesystem::temp_directory_path() / "pushgw-bench-msg-store").string();
  }
  std::printf("messages: %d devices x %d = %lld, payload %d B, batch %d\n", a.devices, a.per_device,
              static_cast<long long>(a.devices) * a.per_device, a.payload, a.batch);
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
