#pragma once
/// A token bucket: `rate` tokens per second, at most `burst` stored.
/// Used for the accept-rate limit (reconnect storms) and the per-node
/// marketing rate cap. Not thread-safe: owned by one strand.
#include <algorithm>
#include <cstdint>

namespace pushgw::conn_node {

class TokenBucket {
 public:
  /// rate <= 0 means unlimited.
  TokenBucket(double rate_per_s, double burst, uint64_t now_ms)
      : rate_(rate_per_s), burst_(std::max(burst, 1.0)), tokens_(burst_), last_ms_(now_ms) {}

  bool unlimited() const noexcept { return rate_ <= 0; }

  /// Takes `n` tokens if available at `now_ms`.
  bool try_take(uint64_t now_ms, double n = 1.0) noexcept {
    if (unlimited()) return true;
    refill(now_ms);
    if (tokens_ + 1e-9 < n) return false;
    tokens_ -= n;
    return true;
  }

  /// Milliseconds until `n` tokens are available (0 if now).
  uint64_t wait_ms(uint64_t now_ms, double n = 1.0) noexcept {
    if (unlimited()) return 0;
    refill(now_ms);
    if (tokens_ >= n) return 0;
    return static_cast<uint64_t>((n - tokens_) * 1000.0 / rate_) + 1;
  }

  void set_rate(double rate_per_s) noexcept { rate_ = rate_per_s; }

 private:
  void refill(uint64_t now_ms) noexcept {
    if (now_ms > last_ms_) {
      tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ms - last_ms_) * rate_ / 1000.0);
      last_ms_ = now_ms;
    }
  }

  double rate_;
  double burst_;
  double tokens_;
  uint64_t last_ms_;
};

}  // namespace pushgw::conn_node
