#include "push_api/message_id.h"

#include <fmt/format.h>

#include <random>

namespace pushgw::push_api {

uint64_t random_u64() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

MessageIdGenerator::MessageIdGenerator(const Clock& clock, uint64_t salt)
    : clock_(clock), salt_(salt != 0 ? salt : random_u64()) {}

std::string MessageIdGenerator::next() {
  const uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed);
  // salt ^ n is a bijection of n: ids of one process never repeat.
  return fmt::format("{:012x}{:016x}", clock_.now_ms() & 0xffffffffffffULL, salt_ ^ n);
}

}  // namespace pushgw::push_api
