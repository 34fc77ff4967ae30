#pragma once
// Key and value encoding of the RocksDB message store (see README.md, "Key
// layout"). All integers are big-endian so that bytewise key order is
// numeric order: a device's messages iterate in seq order.
//
//   device prefix P = 'd' | u8 len(app) | app | u8 len(device) | device
//   P 'M' be64(seq)        message      [u8 fmt][be64 expires][u8 flags][be16 len id][id]
//                                        [be16 len ck][ck][serialized Push]
//   P 'S'                  device state [u8 fmt][be64 watermark][be32 seq_tombs]
//                                        [be32 id_tombs][be64 keep_until]
//   P 'C' collapse_key     collapse idx [be64 expires][be64 seq]
//   P 'A' be64(seq)        ack by seq before store   [be64 expires]
//   P 'X' message_id       ack by id before store    [be64 expires]
//   'c' name               checkpoint   [be64 value]
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pushgw::msg_store::keys {

inline constexpr char kDeviceSpace = 'd';
inline constexpr char kCheckpointSpace = 'c';
inline constexpr std::size_t kMaxIdBytes = 255;
inline constexpr std::size_t kMaxCollapseKeyBytes = 1024;

enum class Kind : char {
  kMessage = 'M',
  kState = 'S',
  kCollapse = 'C',
  kAckSeq = 'A',
  kAckId = 'X',
};

inline void put_be64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}
inline void put_be32(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}
inline void put_be16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
inline uint64_t get_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
inline uint32_t get_be32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
inline uint16_t get_be16(const char* p) {
  return static_cast<uint16_t>((static_cast<unsigned char>(p[0]) << 8) |
                               static_cast<unsigned char>(p[1]));
}

/// 1..255 bytes (the protocol allows 1..128 of [A-Za-z0-9._:-]; the store
/// only needs the length to fit its prefix encoding).
inline bool valid_id(std::string_view id) { return !id.empty() && id.size() <= kMaxIdBytes; }

/// Precondition: valid_id(app) && valid_id(device).
std::string device_prefix(std::string_view app, std::string_view device);
std::string seq_key(std::string_view prefix, Kind kind, uint64_t seq);
std::string name_key(std::string_view prefix, Kind kind, std::string_view name);
std::string state_key(std::string_view prefix);
std::string checkpoint_key(std::string_view name);

/// Length of the device prefix of a device-space key; 1 (or 0 for an empty
/// key) for any other key.
std::size_t prefix_length(std::string_view key);

/// The kind byte of a device-space key, or nullopt for other keys / garbage.
std::optional<Kind> kind_of(std::string_view key);
/// The seq of a P 'M'/'A' key (the last 8 bytes).
uint64_t seq_of(std::string_view key);

/// The header of a stored message value.
struct MessageHeader {
  uint64_t expires_ms = 0;
  uint8_t flags = 0;
  std::string_view message_id;
  std::string_view collapse_key;
  std::string_view push_bytes;  // serialized pushgw::v1::Push

  static constexpr uint8_t kCollapsible = 1;
  static constexpr uint8_t kMarker = 2;
  bool collapsible() const { return (flags & kCollapsible) != 0; }
  bool marker() const { return (flags & kMarker) != 0; }
};

std::string encode_message(uint64_t expires_ms, uint8_t flags, std::string_view message_id,
                           std::string_view collapse_key, std::string_view push_bytes);
/// nullopt for a malformed value. Views point into `value`.
std::optional<MessageHeader> decode_message(std::string_view value);

// What is persisted per device ('S'); written by acks only. The queue
// figures (counts, highest seq, marker) are derived from the 'M' entries and
// cached in memory by the store.
struct DeviceState {
  uint64_t watermark = 0;
  uint32_t seq_tombstones = 0;  // 'A' entries that may exist (upper bound)
  uint32_t id_tombstones = 0;   // 'X' entries that may exist (upper bound)
  uint64_t keep_until_ms = 0;   // state may be dropped by compaction after this

  friend bool operator==(const DeviceState&, const DeviceState&) = default;
};

std::string encode_state(const DeviceState& s);
std::optional<DeviceState> decode_state(std::string_view value);

/// [be64 expires][be64 seq] of the 'C' index.
std::string encode_index(uint64_t expires_ms, uint64_t seq);
struct IndexEntry {
  uint64_t expires_ms = 0;
  uint64_t seq = 0;
};
std::optional<IndexEntry> decode_index(std::string_view value);

std::string encode_expiry(uint64_t expires_ms);

/// The time after which the compaction filter may drop the entry (0: never).
/// nullopt: not a store key or malformed (kept).
std::optional<uint64_t> expiry_of(std::string_view key, std::string_view value);

}  // namespace pushgw::msg_store::keys
