#include "keys.h"

namespace pushgw::msg_store::keys {
namespace {

constexpr uint8_t kMessageFormat = 1;
constexpr uint8_t kStateFormat = 1;
constexpr std::size_t kStateSize = 1 + 8 + 4 + 4 + 8;

}  // namespace

std::string device_prefix(std::string_view app, std::string_view device) {
  std::string p;
  p.reserve(3 + app.size() + device.size());
  p.push_back(kDeviceSpace);
  p.push_back(static_cast<char>(app.size()));
  p.append(app);
  p.push_back(static_cast<char>(device.size()));
  p.append(device);
  return p;
}

std::string seq_key(std::string_view prefix, Kind kind, uint64_t seq) {
  std::string k;
  k.reserve(prefix.size() + 9);
  k.append(prefix);
  k.push_back(static_cast<char>(kind));
  put_be64(k, seq);
  return k;
}

std::string name_key(std::string_view prefix, Kind kind, std::string_view name) {
  std::string k;
  k.reserve(prefix.size() + 1 + name.size());
  k.append(prefix);
  k.push_back(static_cast<char>(kind));
  k.append(name);
  return k;
}

std::string state_key(std::string_view prefix) {
  std::string k(prefix);
  k.push_back(static_cast<char>(Kind::kState));
  return k;
}

std::string checkpoint_key(std::string_view name) {
  std::string k;
  k.push_back(kCheckpointSpace);
  k.append(name);
  return k;
}

std::size_t prefix_length(std::string_view key) {
  if (key.empty()) return 0;
  if (key.size() < 3 || key[0] != kDeviceSpace) return 1;
  const std::size_t app_len = static_cast<unsigned char>(key[1]);
  const std::size_t dev_pos = 2 + app_len;
  if (key.size() <= dev_pos) return 1;
  const std::size_t end = dev_pos + 1 + static_cast<unsigned char>(key[dev_pos]);
  return end <= key.size() ? end : 1;
}

std::optional<Kind> kind_of(std::string_view key) {
  if (key.size() < 3 || key[0] != kDeviceSpace) return std::nullopt;
  const std::size_t app_len = static_cast<unsigned char>(key[1]);
  const std::size_t dev_pos = 2 + app_len;
  if (key.size() <= dev_pos) return std::nullopt;
  const std::size_t dev_len = static_cast<unsigned char>(key[dev_pos]);
  const std::size_t kind_pos = dev_pos + 1 + dev_len;
  if (key.size() <= kind_pos) return std::nullopt;
  switch (key[kind_pos]) {
    case 'M':
      return Kind::kMessage;
    case 'S':
      return Kind::kState;
    case 'C':
      return Kind::kCollapse;
    case 'A':
      return Kind::kAckSeq;
    case 'X':
      return Kind::kAckId;
    default:
      return std::nullopt;
  }
}

uint64_t seq_of(std::string_view key) {
  if (key.size() < 8) return 0;
  return get_be64(key.data() + key.size() - 8);
}

std::string encode_message(uint64_t expires_ms, uint8_t flags, std::string_view message_id,
                           std::string_view collapse_key, std::string_view push_bytes) {
  std::string v;
  v.reserve(1 + 8 + 1 + 2 + message_id.size() + 2 + collapse_key.size() + push_bytes.size());
  v.push_back(static_cast<char>(kMessageFormat));
  put_be64(v, expires_ms);
  v.push_back(static_cast<char>(flags));
  put_be16(v, static_cast<uint16_t>(message_id.size()));
  v.append(message_id);
  put_be16(v, static_cast<uint16_t>(collapse_key.size()));
  v.append(collapse_key);
  v.append(push_bytes);
  return v;
}

std::optional<MessageHeader> decode_message(std::string_view value) {
  if (value.size() < 1 + 8 + 1 + 2 + 2 || static_cast<uint8_t>(value[0]) != kMessageFormat) {
    return std::nullopt;
  }
  MessageHeader h;
  h.expires_ms = get_be64(value.data() + 1);
  h.flags = static_cast<uint8_t>(value[9]);
  std::size_t pos = 10;
  const std::size_t id_len = get_be16(value.data() + pos);
  pos += 2;
  if (value.size() < pos + id_len + 2) return std::nullopt;
  h.message_id = value.substr(pos, id_len);
  pos += id_len;
  const std::size_t ck_len = get_be16(value.data() + pos);
  pos += 2;
  if (value.size() < pos + ck_len) return std::nullopt;
  h.collapse_key = value.substr(pos, ck_len);
  pos += ck_len;
  h.push_bytes = value.substr(pos);
  return h;
}

std::string encode_state(const DeviceState& s) {
  std::string v;
  v.reserve(kStateSize);
  v.push_back(static_cast<char>(kStateFormat));
  put_be64(v, s.watermark);
  put_be32(v, s.seq_tombstones);
  put_be32(v, s.id_tombstones);
  put_be64(v, s.keep_until_ms);
  return v;
}

std::optional<DeviceState> decode_state(std::string_view value) {
  if (value.size() != kStateSize || static_cast<uint8_t>(value[0]) != kStateFormat) {
    return std::nullopt;
  }
  const char* p = value.data() + 1;
  DeviceState s;
  s.watermark = get_be64(p);
  s.seq_tombstones = get_be32(p + 8);
  s.id_tombstones = get_be32(p + 12);
  s.keep_until_ms = get_be64(p + 16);
  return s;
}

std::string encode_index(uint64_t expires_ms, uint64_t seq) {
  std::string v;
  v.reserve(16);
  put_be64(v, expires_ms);
  put_be64(v, seq);
  return v;
}

std::optional<IndexEntry> decode_index(std::string_view value) {
  if (value.size() != 16) return std::nullopt;
  return IndexEntry{get_be64(value.data()), get_be64(value.data() + 8)};
}

std::string encode_expiry(uint64_t expires_ms) {
  std::string v;
  put_be64(v, expires_ms);
  return v;
}

std::optional<uint64_t> expiry_of(std::string_view key, std::string_view value) {
  auto kind = kind_of(key);
  if (!kind) return std::nullopt;
  switch (*kind) {
    case Kind::kMessage:
      if (value.size() < 9) return std::nullopt;
      return get_be64(value.data() + 1);
    case Kind::kState:
      if (value.size() != kStateSize) return std::nullopt;
      return get_be64(value.data() + kStateSize - 8);
    case Kind::kCollapse:
    case Kind::kAckSeq:
    case Kind::kAckId:
      if (value.size() < 8) return std::nullopt;
      return get_be64(value.data());
  }
  return std::nullopt;
}

}  // namespace pushgw::msg_store::keys
