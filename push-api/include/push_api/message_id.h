#pragma once
/// Message ids: 28 lowercase hex characters, time-ordered by their first 12
/// (Unix ms), unique within a process by a counter and across processes by a
/// random 64-bit salt drawn at construction. Thread-safe.
#include <atomic>
#include <cstdint>
#include <string>

#include "common/clock.h"

namespace pushgw::push_api {

class MessageIdGenerator {
 public:
  /// `salt` 0 draws a random one.
  explicit MessageIdGenerator(const Clock& clock, uint64_t salt = 0);
  std::string next();

 private:
  const Clock& clock_;
  uint64_t salt_;
  std::atomic<uint64_t> counter_{0};
};

/// A random 64-bit value from the OS (std::random_device).
uint64_t random_u64();

}  // namespace pushgw::push_api
