#include "msg_store/message_store.h"

#include <utility>

namespace pushgw::msg_store {

bool is_resync_marker(const pushgw::v1::Push& push) {
  return push.message_id().starts_with(kResyncMarkerPrefix);
}

std::string_view outcome_name(StoreOutcome outcome) {
  switch (outcome) {
    case StoreOutcome::kStored:
      return "stored";
    case StoreOutcome::kDuplicate:
      return "duplicate";
    case StoreOutcome::kCollapsed:
      return "collapsed";
    case StoreOutcome::kSuperseded:
      return "superseded";
    case StoreOutcome::kBelowWatermark:
      return "below_watermark";
    case StoreOutcome::kAlreadyAcked:
      return "already_acked";
    case StoreOutcome::kExpired:
      return "expired";
    case StoreOutcome::kOverflowed:
      return "overflowed";
    case StoreOutcome::kInvalid:
      return "invalid";
  }
  return "unknown";
}

uint64_t StoreResult::count(StoreOutcome outcome) const {
  uint64_t n = 0;
  for (auto o : outcomes) n += (o == outcome) ? 1 : 0;
  return n;
}

result<StoreResult> MessageStore::store(std::span<const pushgw::bus::v1::DeliveryRecord> records,
                                        const WriteOptions& options) {
  auto r = apply(records, {}, options);
  if (!r) return r.error();
  return std::move(r->store);
}

result<AckResult> MessageStore::ack(std::span<const AckRequest> acks, const WriteOptions& options) {
  auto r = apply({}, acks, options);
  if (!r) return r.error();
  return r->ack;
}

result<AckResult> MessageStore::ack_seqs(std::string_view app_id, std::string_view device_id,
                                         std::vector<uint64_t> seqs) {
  AckRequest req;
  req.app_id = app_id;
  req.device_id = device_id;
  req.seqs = std::move(seqs);
  return ack({&req, 1});
}

result<AckResult> MessageStore::ack_ids(std::string_view app_id, std::string_view device_id,
                                        std::vector<std::string> message_ids) {
  AckRequest req;
  req.app_id = app_id;
  req.device_id = device_id;
  req.message_ids = std::move(message_ids);
  return ack({&req, 1});
}

result<AckResult> MessageStore::ack_up_to(std::string_view app_id, std::string_view device_id,
                                          uint64_t up_to_seq) {
  AckRequest req;
  req.app_id = app_id;
  req.device_id = device_id;
  req.up_to_seq = up_to_seq;
  return ack({&req, 1});
}

}  // namespace pushgw::msg_store
