#pragma once
/// Injectable wall clock. Production code takes a `const Clock&` so unit tests
/// can drive time by hand (ManualClock) without sleeping.
#include <atomic>
#include <chrono>
#include <cstdint>

namespace pushgw {

class Clock {
 public:
  virtual ~Clock() = default;
  /// Unix time in milliseconds. Thread-safe.
  virtual uint64_t now_ms() const = 0;
  uint64_t now_s() const { return now_ms() / 1000; }
};

class SystemClock final : public Clock {
 public:
  uint64_t now_ms() const override {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  }
  static const SystemClock& instance() {
    static const SystemClock c;
    return c;
  }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(uint64_t start_ms = 1'700'000'000'000ULL) : now_(start_ms) {}
  uint64_t now_ms() const override { return now_.load(std::memory_order_relaxed); }
  void advance_ms(uint64_t d) { now_.fetch_add(d, std::memory_order_relaxed); }
  void set_ms(uint64_t t) { now_.store(t, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> now_;
};

}  // namespace pushgw
