#include "push_api/quota.h"

#include <algorithm>
#include <cmath>

namespace pushgw::push_api {

TokenBucket::TokenBucket(double rate, double burst, uint64_t now_ms)
    : rate_(std::max(rate, 1e-9)),
      burst_(std::max(burst, 1.0)),
      tokens_(burst_),
      last_ms_(now_ms) {}

void TokenBucket::refill(uint64_t now_ms) {
  if (now_ms <= last_ms_) return;  // the clock went back: wait for it
  tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ms - last_ms_) / 1000.0);
  last_ms_ = now_ms;
}

uint64_t TokenBucket::take(uint64_t now_ms) {
  refill(now_ms);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return 0;
  }
  const double wait_ms = std::ceil((1.0 - tokens_) * 1000.0 / rate_);
  return std::max<uint64_t>(1, static_cast<uint64_t>(std::min(wait_ms, 1e12)));
}

Quotas::Quotas(const auth::AppRegistry& apps, const Clock& clock) : clock_(clock) {
  const uint64_t now = clock_.now_ms();
  for (const auto& app : apps.apps()) {
    normal_.emplace(app.id,
                    std::make_unique<Slot>(app.quota_normal_rps, app.quota_normal_burst, now));
    marketing_.emplace(
        app.id, std::make_unique<Slot>(app.quota_marketing_rps, app.quota_marketing_burst, now));
  }
}

Quotas::Decision Quotas::take(std::string_view app_id, TrafficClass cls) {
  auto& table = cls == TrafficClass::kMarketing ? marketing_ : normal_;
  auto it = table.find(std::string(app_id));
  if (it == table.end()) return Decision{false, 1};
  uint64_t wait_ms;
  {
    std::lock_guard<std::mutex> lock(it->second->mu);
    wait_ms = it->second->bucket.take(clock_.now_ms());
  }
  if (wait_ms == 0) return Decision{true, 0};
  return Decision{false, std::max<uint64_t>(1, (wait_ms + 999) / 1000)};
}

}  // namespace pushgw::push_api
