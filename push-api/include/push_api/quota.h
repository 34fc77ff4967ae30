#pragma once
/// Per-app, per-class request quotas (push-api.md "429 rate_limited"): one
/// token bucket per app and traffic class, sized from the apps file
/// (quota_<class>_rps refill rate, quota_<class>_burst capacity). Marketing
/// has its own bucket, so exhausting it never blocks normal pushes.
///
/// Buckets are local to one push-api process: with N instances behind a load
/// balancer an app may get up to N times its configured rate.
/// Thread-safe; time comes from the injected Clock (unit tests drive it).
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/auth/apps.h"
#include "common/clock.h"
#include "push_api/push_request.h"

namespace pushgw::push_api {

/// A token bucket: `rate` tokens per second, at most `burst` (at least 1) held.
/// Not thread-safe on its own.
class TokenBucket {
 public:
  /// Starts full at `now_ms`.
  TokenBucket(double rate, double burst, uint64_t now_ms);

  /// Takes one token: 0 when taken, otherwise the milliseconds until one is
  /// available (nothing is taken then).
  uint64_t take(uint64_t now_ms);
  double tokens() const { return tokens_; }

 private:
  void refill(uint64_t now_ms);

  double rate_;
  double burst_;
  double tokens_;
  uint64_t last_ms_;
};

class Quotas {
 public:
  struct Decision {
    bool allowed = true;
    /// Seconds to put in Retry-After when refused (>= 1).
    uint64_t retry_after_s = 0;
  };

  /// One pair of buckets per app of `apps` (which must outlive this object).
  Quotas(const auth::AppRegistry& apps, const Clock& clock);

  /// Charges one request of `app_id` in `cls`. An unknown app is refused.
  Decision take(std::string_view app_id, TrafficClass cls);

 private:
  struct Slot {
    std::mutex mu;
    TokenBucket bucket;
    Slot(double rate, double burst, uint64_t now) : bucket(rate, burst, now) {}
  };
  const Clock& clock_;
  // app id -> {normal, marketing}
  std::unordered_map<std::string, std::unique_ptr<Slot>> normal_;
  std::unordered_map<std::string, std::unique_ptr<Slot>> marketing_;
};

}  // namespace pushgw::push_api
