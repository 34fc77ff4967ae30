#pragma once
/// Simulated devices for end-to-end tests: each connects through
/// GET /v1/dispatch (or to a given endpoint), sends Hello with its last_seq,
/// records every Push (message_id, seq, latency from Push.created_ms) and
/// acks it. With auto-reconnect on, a device whose link ends (node killed,
/// Redirect) reconnects by itself: to the Redirect's endpoint after
/// retry_after_ms, else through dispatch, always with Hello.last_seq = the
/// highest seq it received. Not after SESSION_REPLACED or disconnect().
///
/// One io thread runs every link; a few supervisor threads do the blocking
/// dispatch calls and reconnects. Public methods are called from the test's
/// thread.
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cluster.h"
#include "pushgw_client/device.h"

namespace pushgw::e2e {

int64_t now_ms();

struct Receipt {
  int device = 0;
  std::string message_id;
  uint64_t seq = 0;
  int64_t latency_ms = 0;  // receive time - Push.created_ms
  int connection = 0;      // 1 for the device's first link, 2 for the next, ...
  bool marketing = false;
};

class Fleet {
 public:
  explicit Fleet(const Cluster& cluster);
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  /// Adds a device (not connected yet); returns its index. Odd indexes use
  /// the ws listener when `mix_transports` is set, the others tcp.
  int add(const std::string& device_id, bool ws = false);
  /// Adds `n` devices "<prefix>-<i>".
  void add_many(int n, const std::string& prefix, bool mix_transports = false);
  size_t size() const { return sims_.size(); }
  const std::string& device_id(int i) const;

  /// Connects device i (blocking, bounded): through dispatch, or to
  /// `endpoint_url` ("tcp://127.0.0.1:7000") when given, with Hello.last_seq
  /// = `last_seq` (default: the highest seq the device received). "" on
  /// success, else why not.
  std::string connect(int i, std::optional<uint64_t> last_seq = std::nullopt,
                      const std::string& endpoint_url = {});
  /// Connects every device (a few in parallel); the first error, or "".
  std::string connect_all();
  /// Bye + close; the device stays offline until connect().
  void disconnect(int i);
  /// Reconnect automatically after a link ends (default off).
  void set_auto_reconnect(bool on) { auto_reconnect_ = on; }
  /// Ack every Push with ack_required at once (default on), with the
  /// device's highest seq as cumulative last_seq.
  void set_auto_ack(bool on) { auto_ack_ = on; }
  /// Sends one Ack for device i (must be connected).
  bool ack(int i, std::vector<std::string> message_ids, uint64_t last_seq);

  bool connected(int i) const;
  /// Links device i has had (1 after its first connect).
  int connections(int i) const;
  std::string node_of(int i) const;
  uint64_t last_seq(int i) const;
  /// Error codes received from the server (in order), and Redirects.
  std::vector<int> errors(int i) const;
  int redirects(int i) const;

  /// Every Push device i received, in arrival order.
  std::vector<Receipt> receipts_of(int i) const;
  /// Receipts of one message (any device).
  std::vector<Receipt> receipts(const std::string& message_id) const;
  uint64_t total_receipts() const;

  /// Polls until `pred` holds or `within` passes; returns pred's last value.
  template <typename Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds within,
                         std::chrono::milliseconds step = std::chrono::milliseconds(50)) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    for (;;) {
      if (pred()) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(step);
    }
  }

 private:
  struct Sim;
  std::string connect_locked(Sim& s, uint64_t last_seq, const std::string& endpoint_url);
  std::string hello(Sim& s, const std::string& url, uint64_t last_seq);
  void supervise(size_t shard, size_t shards);
  void close_link(Sim& s);

  const Cluster& cluster_;
  // Before io_: coroutine frames destroyed with io_ may still point at sims.
  std::vector<std::unique_ptr<Sim>> sims_;
  boost::asio::io_context io_;
  std::thread io_thread_;
  std::vector<std::thread> supervisors_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> auto_reconnect_{false};
  std::atomic<bool> auto_ack_{true};

  mutable std::mutex mu_;  // receipts
  std::map<std::string, std::vector<Receipt>> by_id_;
  uint64_t total_ = 0;
};

/// Percentile (0..1) of `v` (0 for an empty vector).
int64_t percentile(std::vector<int64_t> v, double p);

}  // namespace pushgw::e2e
