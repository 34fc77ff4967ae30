#include "metrics.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace pushgw::redis::detail {

Metrics::Metrics(prometheus::Registry* registry, const std::string& client) {
  if (registry == nullptr) return;
  const prometheus::Labels labels{{"client", client}};
  auto& commands = prometheus::BuildCounter()
                       .Name("pushgw_redis_commands_total")
                       .Help("Redis commands submitted")
                       .Register(*registry);
  p_commands_ = &commands.Add(labels);
  auto& errors = prometheus::BuildCounter()
                     .Name("pushgw_redis_errors_total")
                     .Help("Redis command failures by kind (transport, timeout, reply)")
                     .Register(*registry);
  p_transport_errors_ = &errors.Add({{"client", client}, {"kind", "transport"}});
  p_timeouts_ = &errors.Add({{"client", client}, {"kind", "timeout"}});
  p_error_replies_ = &errors.Add({{"client", client}, {"kind", "reply"}});
  p_reconnects_ = &prometheus::BuildCounter()
                       .Name("pushgw_redis_reconnects_total")
                       .Help("Redis connections re-established after a failure")
                       .Register(*registry)
                       .Add(labels);
  auto& redirects = prometheus::BuildCounter()
                        .Name("pushgw_redis_redirects_total")
                        .Help("Redis Cluster redirects followed")
                        .Register(*registry);
  p_moved_ = &redirects.Add({{"client", client}, {"kind", "moved"}});
  p_ask_ = &redirects.Add({{"client", client}, {"kind", "ask"}});
  p_latency_ = &prometheus::BuildHistogram()
                    .Name("pushgw_redis_request_duration_seconds")
                    .Help("Time from sending a Redis command or pipeline to its last reply")
                    .Register(*registry)
                    .Add(labels, prometheus::Histogram::BucketBoundaries{
                                     0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05, 0.1, 0.25, 0.5, 1, 2.5});
}

void Metrics::commands(std::uint64_t n) {
  commands_.fetch_add(n, std::memory_order_relaxed);
  if (p_commands_) p_commands_->Increment(static_cast<double>(n));
}

void Metrics::request() { requests_.fetch_add(1, std::memory_order_relaxed); }

void Metrics::transport_error(std::uint64_t n) {
  if (p_transport_errors_ && n) p_transport_errors_->Increment(static_cast<double>(n));
}

void Metrics::timeout(std::uint64_t n) {
  if (p_timeouts_ && n) p_timeouts_->Increment(static_cast<double>(n));
}

void Metrics::error_reply() {
  if (p_error_replies_) p_error_replies_->Increment();
}

void Metrics::reconnect() {
  reconnects_.fetch_add(1, std::memory_order_relaxed);
  if (p_reconnects_) p_reconnects_->Increment();
}

void Metrics::moved() {
  moved_.fetch_add(1, std::memory_order_relaxed);
  if (p_moved_) p_moved_->Increment();
}

void Metrics::ask() {
  ask_.fetch_add(1, std::memory_order_relaxed);
  if (p_ask_) p_ask_->Increment();
}

void Metrics::noscript() { noscript_.fetch_add(1, std::memory_order_relaxed); }

void Metrics::slot_refresh() { slot_refreshes_.fetch_add(1, std::memory_order_relaxed); }

void Metrics::latency(std::chrono::steady_clock::duration d) {
  if (p_latency_) p_latency_->Observe(std::chrono::duration<double>(d).count());
}

ClientStats Metrics::stats() const {
  ClientStats s;
  s.commands = commands_.load(std::memory_order_relaxed);
  s.requests = requests_.load(std::memory_order_relaxed);
  s.moved = moved_.load(std::memory_order_relaxed);
  s.ask = ask_.load(std::memory_order_relaxed);
  s.noscript = noscript_.load(std::memory_order_relaxed);
  s.slot_refreshes = slot_refreshes_.load(std::memory_order_relaxed);
  s.reconnects = reconnects_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace pushgw::redis::detail
