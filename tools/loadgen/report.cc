#include "report.h"

#include <cstdio>

namespace pushgw::loadgen {

void Tally::expect(const std::string& message_id, const std::vector<uint32_t>& devices) {
  auto& slots = by_message_[message_id];
  for (uint32_t d : devices) {
    Slot& s = slots[d];
    if (s.expected) continue;
    s.expected = true;
    ++expected_;
    if (s.received > 0) ++delivered_;
  }
}

void Tally::receive(const std::string& message_id, uint32_t device, int64_t latency_ms) {
  Slot& s = by_message_[message_id][device];
  if (++s.received == 1) {
    s.latency_ms = latency_ms;
    if (s.expected) ++delivered_;
  } else {
    ++duplicates_;
  }
}

uint64_t Tally::unexpected() const {
  uint64_t n = 0;
  for (const auto& [id, slots] : by_message_) {
    for (const auto& [d, s] : slots) {
      if (!s.expected && s.received > 0) ++n;
    }
  }
  return n;
}

Histogram Tally::latencies() const {
  Histogram h;
  for (const auto& [id, slots] : by_message_) {
    for (const auto& [d, s] : slots) {
      if (s.expected && s.received > 0) h.record(s.latency_ms);
    }
  }
  return h;
}

std::vector<std::pair<std::string, uint32_t>> Tally::lost_sample(size_t max) const {
  std::vector<std::pair<std::string, uint32_t>> out;
  for (const auto& [id, slots] : by_message_) {
    for (const auto& [d, s] : slots) {
      if (out.size() >= max) return out;
      if (s.expected && s.received == 0) out.emplace_back(id, d);
    }
  }
  return out;
}

boost::json::object to_json(const Report& r) {
  boost::json::object nodes;
  for (const auto& [n, c] : r.links_per_node) nodes[n] = c;
  boost::json::object rss;
  for (const auto& [n, v] : r.node_rss_kib) {
    rss[n] = boost::json::object{{"after_connect_kib", v.first}, {"at_end_kib", v.second}};
  }
  boost::json::array notes;
  for (const auto& n : r.notes) notes.emplace_back(n);
  return boost::json::object{
      {"passed", r.passed()},
      {"devices", r.devices},
      {"workers", r.workers},
      {"transports", r.transports},
      {"heartbeat", r.heartbeat},
      {"connected", r.connected},
      {"connect_failed", r.connect_failed},
      {"connect_seconds", r.connect_s},
      {"connect_per_s", r.connect_rate()},
      {"links_per_node", std::move(nodes)},
      {"links_dropped", r.dropped},
      {"links_held_at_end", r.held_at_end},
      {"pings", r.pings},
      {"pongs", r.pongs},
      {"push_requests", r.requests},
      {"push_rejected", r.rejected},
      {"push_retried", r.retried},
      {"push_seconds", r.push_s},
      {"deliver_seconds", r.deliver_s},
      {"expected", r.expected},
      {"delivered", r.delivered},
      {"delivered_per_s", r.delivered_rate()},
      {"duplicates", r.duplicates},
      {"lost", r.lost},
      {"unexpected", r.unexpected},
      {"latency_ms", r.latency.summary()},
      {"conn_node_rss", std::move(rss)},
      {"first_error", r.first_error},
      {"notes", std::move(notes)},
  };
}

namespace {

void line(std::string& out, const char* what, const std::string& value) {
  char b[256];
  std::snprintf(b, sizeof b, "%-34s %s\n", what, value.c_str());
  out += b;
}

std::string num(double v, int decimals = 0) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

std::string num(uint64_t v) { return std::to_string(v); }

}  // namespace

std::string format_table(const Report& r) {
  std::string out;
  line(out, "devices / workers", num(r.devices) + " / " + std::to_string(r.workers) + " (" +
                                     r.transports + ", heartbeat " + r.heartbeat + ")");
  line(out, "connected (failed)", num(r.connected) + " (" + num(r.connect_failed) + ")");
  line(out, "connect time / rate", num(r.connect_s, 2) + " s / " + num(r.connect_rate()) +
                                       " links/s (dispatch+connect+Hello+Welcome)");
  std::string per_node;
  for (const auto& [n, c] : r.links_per_node) per_node += n + "=" + num(c) + " ";
  line(out, "links per node", per_node);
  line(out, "links dropped / held at end", num(r.dropped) + " / " + num(r.held_at_end));
  line(out, "pings / pongs", num(r.pings) + " / " + num(r.pongs));
  line(out, "push requests (rejected, retried)",
       num(r.requests) + " (" + num(r.rejected) + ", " + num(r.retried) + ")");
  line(out, "pushing time", num(r.push_s, 2) + " s");
  line(out, "expected / delivered", num(r.expected) + " / " + num(r.delivered));
  line(out, "delivered msg/s", num(r.delivered_rate()) + " (over " + num(r.deliver_s, 2) +
                                   " s, first push -> last receipt)");
  line(out, "duplicates / lost / unexpected",
       num(r.duplicates) + " / " + num(r.lost) + " / " + num(r.unexpected));
  line(out, "latency ms p50/p90/p99/p99.9/max",
       num(static_cast<uint64_t>(r.latency.quantile(0.5))) + " / " +
           num(static_cast<uint64_t>(r.latency.quantile(0.9))) + " / " +
           num(static_cast<uint64_t>(r.latency.quantile(0.99))) + " / " +
           num(static_cast<uint64_t>(r.latency.quantile(0.999))) + " / " +
           num(static_cast<uint64_t>(r.latency.max())) + "  (mean " + num(r.latency.mean(), 1) +
           ")");
  for (const auto& [n, v] : r.node_rss_kib) {
    line(out, ("RSS " + n + " (MiB)").c_str(),
         num(static_cast<double>(v.first) / 1024, 1) + " after connect, " +
             num(static_cast<double>(v.second) / 1024, 1) + " at end");
  }
  if (!r.first_error.empty()) line(out, "first error", r.first_error);
  for (const auto& n : r.notes) line(out, "note", n);
  line(out, "result", r.passed() ? "PASS" : "FAIL");
  return out;
}

}  // namespace pushgw::loadgen
