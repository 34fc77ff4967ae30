#pragma once
/// Redis Cluster key slots: CRC16 (XMODEM) of the key, or of its hash tag,
/// modulo 16384.
#include <cstdint>
#include <string_view>

namespace pushgw::redis {

inline constexpr std::uint16_t kSlotCount = 16384;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster uses.
std::uint16_t crc16(std::string_view data) noexcept;

/// The part of `key` that is hashed: the text between the first '{' and the
/// first '}' after it, if that text is non-empty; otherwise the whole key.
std::string_view hash_tag(std::string_view key) noexcept;

/// The cluster slot of `key` (0..16383).
std::uint16_t key_slot(std::string_view key) noexcept;

}  // namespace pushgw::redis
