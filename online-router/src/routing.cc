#include "online_router/routing.h"

#include <algorithm>
#include <cstring>

#include "status_store/redis_keys.h"

namespace pushgw::online_router {

namespace v1 = pushgw::v1;
using bus::v1::DeliveryRecord;
using bus::v1::PushRequest;

namespace {

constexpr std::size_t kMaxTopicName = 249;
constexpr std::string_view kDeliverPrefix = "pushgw.deliver.";

v1::TrafficClass wire_class(TrafficClass c) {
  return c == TrafficClass::kMarketing ? v1::MARKETING : v1::NORMAL;
}

}  // namespace

std::string push_topic(TrafficClass c) { return "pushgw.push." + std::string(class_name(c)); }

std::string fanout_topic(TrafficClass c) { return "pushgw.fanout." + std::string(class_name(c)); }

std::string deliver_topic(std::string_view node_id) {
  std::string t;
  t.reserve(kDeliverPrefix.size() + node_id.size());
  t.append(kDeliverPrefix).append(node_id);
  return t;
}

bool valid_node_topic(std::string_view node_id) {
  if (node_id.empty() || kDeliverPrefix.size() + node_id.size() > kMaxTopicName) return false;
  return std::all_of(node_id.begin(), node_id.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
  });
}

std::string device_key(std::string_view app_id, std::string_view device_id) {
  std::string k;
  k.reserve(app_id.size() + 1 + device_id.size());
  k.append(app_id).push_back('/');
  k.append(device_id);
  return k;
}

std::string_view bad_reason_name(BadReason r) noexcept {
  switch (r) {
    case BadReason::kUndecodable:
      return "undecodable";
    case BadReason::kSchemaVersion:
      return "schema_version";
    case BadReason::kInvalid:
      return "invalid";
  }
  return "invalid";
}

std::variant<Decoded, BadReason> decode_request(std::string_view value,
                                                google::protobuf::Arena& arena) {
  auto* req = google::protobuf::Arena::CreateMessage<PushRequest>(&arena);
  if (!req->ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return BadReason::kUndecodable;
  }
  Decoded d;
  d.request = req;
  const PushRequest& r = *req;
  if (r.schema_version() > kSchemaVersion) return BadReason::kSchemaVersion;
  if (!status_store::validate_id(r.message_id()) || !status_store::validate_app_id(r.app_id())) {
    return BadReason::kInvalid;
  }
  const int targets =
      (r.device_id().empty() ? 0 : 1) + (r.topic().empty() ? 0 : 1) + (r.broadcast() ? 1 : 0);
  if (targets != 1) return BadReason::kInvalid;
  if (!r.device_id().empty()) {
    if (!status_store::validate_id(r.device_id())) return BadReason::kInvalid;
    d.kind = TargetKind::kDevice;
  } else if (!r.topic().empty()) {
    if (!status_store::validate_id(r.topic())) return BadReason::kInvalid;
    d.kind = TargetKind::kTopic;
  } else {
    d.kind = TargetKind::kBroadcast;
  }
  return d;
}

uint64_t expires_at_ms(const PushRequest& r) {
  if (r.expires_ms() != 0) return r.expires_ms();
  return r.created_ms() + uint64_t{r.ttl_s()} * 1000;
}

bool is_expired(const PushRequest& r, uint64_t now_ms) {
  if (r.ttl_s() == 0) return false;
  return now_ms > expires_at_ms(r);
}

UnicastPlan plan_unicast(const PushRequest& r, bool online, bool node_live, uint64_t now_ms) {
  UnicastPlan p;
  if (is_expired(r, now_ms)) {
    p.expired = true;
    return p;
  }
  p.live = online && node_live;
  p.unknown_node = online && !node_live;
  p.store = r.ttl_s() > 0;
  p.expired = !p.live && !p.store;
  return p;
}

v1::Push make_push(const PushRequest& r, uint64_t seq, TrafficClass c) {
  v1::Push p;
  p.set_message_id(r.message_id());
  p.set_seq(seq);
  p.set_payload(r.payload());
  p.set_traffic_class(wire_class(c));
  if (!r.topic().empty()) p.set_topic(r.topic());
  if (!r.collapse_key().empty()) p.set_collapse_key(r.collapse_key());
  p.set_created_ms(r.created_ms());
  p.set_expires_ms(expires_at_ms(r));
  p.set_ack_required(r.ttl_s() > 0);
  return p;
}

namespace {

// Protobuf wire format (encoding.md): a field is its tag (number << 3 |
// wire type) and its value; proto3 leaves out zero and empty scalars. Fields
// written in number order give the bytes libprotobuf writes (the tests
// compare them); parsers also accept fields in any order and merge them, so
// appending a field to serialized bytes sets it.
std::size_t varint_size(uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

char* put_varint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

constexpr uint64_t tag(uint32_t field, uint32_t wire_type) {
  return (uint64_t{field} << 3) | wire_type;
}
constexpr uint32_t kVarint = 0;
constexpr uint32_t kLengthDelimited = 2;

// Size and writer of one field; empty strings and zeros are left out.
std::size_t bytes_field_size(uint32_t field, std::string_view v) {
  return v.empty() ? 0 : varint_size(tag(field, kLengthDelimited)) + varint_size(v.size()) + v.size();
}
char* put_bytes_field(char* p, uint32_t field, std::string_view v) {
  if (v.empty()) return p;
  p = put_varint(p, tag(field, kLengthDelimited));
  p = put_varint(p, v.size());
  std::memcpy(p, v.data(), v.size());
  return p + v.size();
}
std::size_t uint_field_size(uint32_t field, uint64_t v) {
  return v == 0 ? 0 : varint_size(tag(field, kVarint)) + varint_size(v);
}
char* put_uint_field(char* p, uint32_t field, uint64_t v) {
  if (v == 0) return p;
  p = put_varint(p, tag(field, kVarint));
  return put_varint(p, v);
}

// Appends node_id and after_seq (the live record's own fields) to `out`.
void append_live_fields(std::string& out, std::string_view node_id, uint64_t after_seq) {
  const std::size_t at = out.size();
  out.resize(at + bytes_field_size(DeliveryRecord::kNodeIdFieldNumber, node_id) +
             uint_field_size(DeliveryRecord::kAfterSeqFieldNumber, after_seq));
  char* p = out.data() + at;
  p = put_bytes_field(p, DeliveryRecord::kNodeIdFieldNumber, node_id);
  put_uint_field(p, DeliveryRecord::kAfterSeqFieldNumber, after_seq);
}

// DeliveryRecord{schema_version, app_id, device_id, push, epoch} as
// libprotobuf serializes what make_push() builds (without node_id and
// after_seq), written directly into one exactly sized string: building and
// destroying the two messages cost the router more than the rest of planning.
std::string encode_unicast(const PushRequest& r, uint64_t seq, uint64_t epoch, TrafficClass c,
                           std::size_t spare) {
  using P = pushgw::v1::Push;
  using D = DeliveryRecord;
  const uint64_t cls = static_cast<uint64_t>(wire_class(c));
  const uint64_t expires = expires_at_ms(r);
  const uint64_t ack = r.ttl_s() > 0 ? 1 : 0;
  const std::size_t push_size =
      bytes_field_size(P::kMessageIdFieldNumber, r.message_id()) +
      uint_field_size(P::kSeqFieldNumber, seq) +
      bytes_field_size(P::kPayloadFieldNumber, r.payload()) +
      uint_field_size(P::kTrafficClassFieldNumber, cls) +
      bytes_field_size(P::kTopicFieldNumber, r.topic()) +
      bytes_field_size(P::kCollapseKeyFieldNumber, r.collapse_key()) +
      uint_field_size(P::kCreatedMsFieldNumber, r.created_ms()) +
      uint_field_size(P::kExpiresMsFieldNumber, expires) +
      uint_field_size(P::kAckRequiredFieldNumber, ack);
  // A set sub-message is written even when empty.
  const std::size_t size = uint_field_size(D::kSchemaVersionFieldNumber, kSchemaVersion) +
                           bytes_field_size(D::kAppIdFieldNumber, r.app_id()) +
                           bytes_field_size(D::kDeviceIdFieldNumber, r.device_id()) +
                           varint_size(tag(D::kPushFieldNumber, kLengthDelimited)) +
                           varint_size(push_size) + push_size +
                           uint_field_size(D::kEpochFieldNumber, epoch);
  std::string out;
  out.reserve(size + spare);
  out.resize(size);
  char* p = out.data();
  p = put_uint_field(p, D::kSchemaVersionFieldNumber, kSchemaVersion);
  p = put_bytes_field(p, D::kAppIdFieldNumber, r.app_id());
  p = put_bytes_field(p, D::kDeviceIdFieldNumber, r.device_id());
  p = put_varint(p, tag(D::kPushFieldNumber, kLengthDelimited));
  p = put_varint(p, push_size);
  p = put_bytes_field(p, P::kMessageIdFieldNumber, r.message_id());
  p = put_uint_field(p, P::kSeqFieldNumber, seq);
  p = put_bytes_field(p, P::kPayloadFieldNumber, r.payload());
  p = put_uint_field(p, P::kTrafficClassFieldNumber, cls);
  p = put_bytes_field(p, P::kTopicFieldNumber, r.topic());
  p = put_bytes_field(p, P::kCollapseKeyFieldNumber, r.collapse_key());
  p = put_uint_field(p, P::kCreatedMsFieldNumber, r.created_ms());
  p = put_uint_field(p, P::kExpiresMsFieldNumber, expires);
  p = put_uint_field(p, P::kAckRequiredFieldNumber, ack);
  put_uint_field(p, D::kEpochFieldNumber, epoch);
  return out;
}

}  // namespace

UnicastRecords unicast_records(const PushRequest& r, uint64_t seq,
                               std::optional<std::string_view> node_id, uint64_t epoch, bool store,
                               TrafficClass c, uint64_t after_seq) {
  UnicastRecords out;
  if (!node_id && !store) return out;
  // Encoded once: the offline copy is the record without node_id and
  // after_seq; the live one is the same bytes with those two fields appended.
  const std::size_t spare = node_id ? node_id->size() + 16 : 0;
  std::string common = encode_unicast(r, seq, epoch, c, spare);
  std::string key = device_key(r.app_id(), r.device_id());
  if (node_id) {
    bus::OutRecord rec;
    rec.topic = deliver_topic(*node_id);
    rec.key = store ? key : std::move(key);
    if (store) {
      rec.value.reserve(common.size() + spare);
      rec.value = common;
    } else {
      rec.value = std::move(common);
    }
    append_live_fields(rec.value, *node_id, after_seq);
    out.deliver = std::move(rec);
  }
  if (store) {
    bus::OutRecord rec;
    rec.topic = std::string(kOfflineTopic);
    rec.key = std::move(key);
    rec.value = std::move(common);
    out.offline = std::move(rec);
  }
  return out;
}

void OfflineOnlyMemo::routed_offline_only(const std::string& device_key, uint64_t seq,
                                          uint64_t epoch, uint64_t expires_ms) {
  if (max_ == 0) return;
  auto it = map_.find(device_key);
  if (it != map_.end()) {
    if (seq > it->second.seq) it->second = Entry{seq, epoch, expires_ms, next_order_++};
    return;
  }
  if (map_.size() >= max_) {
    // Forget the older half (one pass; amortised over max_/2 inserts).
    const uint64_t cut = next_order_ - map_.size() / 2;
    std::erase_if(map_, [cut](const auto& kv) { return kv.second.order < cut; });
  }
  map_.emplace(device_key, Entry{seq, epoch, expires_ms, next_order_++});
}

uint64_t OfflineOnlyMemo::take_after_seq(const std::string& device_key, uint64_t epoch,
                                         uint64_t now_ms) {
  auto it = map_.find(device_key);
  if (it == map_.end() || it->second.epoch >= epoch) return 0;
  const uint64_t seq = it->second.expires_ms > now_ms ? it->second.seq : 0;
  map_.erase(it);
  return seq;
}

bus::OutRecord fanout_record(const PushRequest& r, std::string_view node_id, TrafficClass c) {
  DeliveryRecord dr;
  dr.set_schema_version(kSchemaVersion);
  dr.set_app_id(r.app_id());
  if (r.broadcast()) {
    dr.set_broadcast(true);
  } else {
    dr.set_topic(r.topic());
  }
  *dr.mutable_push() = make_push(r, 0, c);
  dr.set_node_id(std::string(node_id));
  bus::OutRecord rec;
  rec.topic = deliver_topic(node_id);
  rec.key = r.broadcast() ? r.message_id() : r.topic();
  rec.value = dr.SerializeAsString();
  return rec;
}

void NodeView::update(std::vector<std::string> nodes, uint64_t read_at_ms) {
  list_ = std::move(nodes);
  set_.clear();
  set_.insert(list_.begin(), list_.end());
  read_at_ms_ = read_at_ms;
}

bool NodeView::fresh(uint64_t now_ms, std::chrono::milliseconds max_age) const {
  if (!read_at_ms_) return false;
  const uint64_t age = now_ms > *read_at_ms_ ? now_ms - *read_at_ms_ : 0;
  return age <= static_cast<uint64_t>(max_age.count());
}

NodeView::Liveness NodeView::check(std::string_view node_id, uint64_t connected_at_ms) const {
  if (!read_at_ms_) return Liveness::kUnknown;
  if (set_.count(std::string(node_id)) != 0) return Liveness::kLive;
  if (connected_at_ms <= UINT64_MAX - kClockSlack &&
      *read_at_ms_ >= connected_at_ms + kClockSlack) {
    return Liveness::kDead;
  }
  return Liveness::kUnknown;
}

void CounterBatch::add(std::string_view message_id, uint64_t expires_ms, int64_t routed,
                       int64_t stored, int64_t expired, uint64_t covered_until_ms,
                       bool sole_target) {
  auto [it, inserted] = counts_.try_emplace(message_id);
  if (inserted) order_.push_back(message_id);
  Counts& c = it->second;
  c.sole = inserted && sole_target;
  c.routed += routed;
  c.stored += stored;
  c.expired += expired;
  c.expires_ms = std::max(c.expires_ms, expires_ms);
  c.covered_until_ms = std::min(c.covered_until_ms, covered_until_ms);
}

std::vector<status_store::CounterUpdate> CounterBatch::updates(uint64_t now_ms,
                                                               std::chrono::seconds min_ttl) const {
  std::vector<status_store::CounterUpdate> out;
  out.reserve(order_.size());
  const auto min_ms = std::chrono::duration_cast<std::chrono::milliseconds>(min_ttl);
  for (const auto& id : order_) {
    const Counts& c = counts_.at(id);
    status_store::CounterUpdate u;
    u.message_id = std::string(id);
    u.set = c.sole;
    if (c.routed != 0) u.deltas.emplace_back("routed", c.routed);
    if (c.stored != 0) u.deltas.emplace_back("stored", c.stored);
    if (c.expired != 0) u.deltas.emplace_back("expired", c.expired);
    if (u.deltas.empty()) continue;
    const auto left = std::chrono::milliseconds(
        c.expires_ms > now_ms ? static_cast<int64_t>(c.expires_ms - now_ms) : 0);
    u.ttl = std::max(min_ms, left);
    u.keep_ttl = c.covered_until_ms != UINT64_MAX && c.covered_until_ms != 0 &&
                 c.covered_until_ms >= now_ms + static_cast<uint64_t>(u.ttl.count());
    out.push_back(std::move(u));
  }
  return out;
}

}  // namespace pushgw::online_router
