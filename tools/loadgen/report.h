#pragma once
// Receipt matching and the final report of loadgen: what push-api accepted
// (message_id -> target devices) against what the devices received
// (message_id, device, latency), and the table / JSON forms of the result.
#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "histogram.h"

namespace pushgw::loadgen {

/// Matches receipts with accepted pushes. Receipts may arrive before the
/// push-api answer that names their message_id (the device is often faster
/// than the HTTP response), so both sides are kept until the end. Latency is
/// taken from the first receipt of each expected (message, device) pair.
class Tally {
 public:
  /// push-api accepted `message_id` for `devices` (repeats of a device count once).
  void expect(const std::string& message_id, const std::vector<uint32_t>& devices);
  /// Device `device` received `message_id`, `latency_ms` after push-api accepted it.
  void receive(const std::string& message_id, uint32_t device, int64_t latency_ms);

  uint64_t expected() const noexcept { return expected_; }
  /// Expected pairs received at least once.
  uint64_t delivered() const noexcept { return delivered_; }
  uint64_t lost() const noexcept { return expected_ - delivered_; }
  /// Receipts beyond the first of any (message, device) pair.
  uint64_t duplicates() const noexcept { return duplicates_; }
  /// Pairs received that were never expected (a wrong device, or a message
  /// whose push-api answer was lost). A scan: call at the end.
  uint64_t unexpected() const;
  /// Latencies of the first receipts of expected pairs. A scan.
  Histogram latencies() const;
  /// Up to `max` expected pairs never received.
  std::vector<std::pair<std::string, uint32_t>> lost_sample(size_t max) const;

 private:
  struct Slot {
    bool expected = false;
    uint32_t received = 0;
    int64_t latency_ms = 0;
  };
  std::unordered_map<std::string, std::unordered_map<uint32_t, Slot>> by_message_;
  uint64_t expected_ = 0;
  uint64_t delivered_ = 0;
  uint64_t duplicates_ = 0;
};

struct Report {
  // setup
  uint64_t devices = 0;
  uint32_t workers = 0;
  std::string transports;
  std::string heartbeat;
  // links
  uint64_t connected = 0;
  uint64_t connect_failed = 0;
  double connect_s = 0;
  std::map<std::string, uint64_t> links_per_node;
  uint64_t dropped = 0;        // links that closed before the end
  uint64_t held_at_end = 0;    // links still open when the workers stopped
  uint64_t pings = 0;
  uint64_t pongs = 0;
  // pushes
  uint64_t requests = 0;
  uint64_t rejected = 0;       // requests push-api did not accept (after retries)
  uint64_t retried = 0;        // 429/503 answers that were retried
  double push_s = 0;           // first push sent -> last push answered
  double deliver_s = 0;        // first push sent -> last expected receipt
  uint64_t expected = 0;
  uint64_t delivered = 0;
  uint64_t duplicates = 0;
  uint64_t lost = 0;
  uint64_t unexpected = 0;
  Histogram latency;           // ms, push-api accept -> device receive
  // conn-node processes: name -> VmRSS KiB (after connect, at the end)
  std::map<std::string, std::pair<uint64_t, uint64_t>> node_rss_kib;
  std::string first_error;
  std::vector<std::string> notes;

  double connect_rate() const noexcept {
    return connect_s > 0 ? static_cast<double>(connected) / connect_s : 0.0;
  }
  double delivered_rate() const noexcept {
    return deliver_s > 0 ? static_cast<double>(delivered) / deliver_s : 0.0;
  }
  /// Every device connected and held, every push accepted and delivered.
  bool passed() const noexcept {
    return connect_failed == 0 && dropped == 0 && rejected == 0 && lost == 0 && connected > 0;
  }
};

boost::json::object to_json(const Report& r);
std::string format_table(const Report& r);

}  // namespace pushgw::loadgen
