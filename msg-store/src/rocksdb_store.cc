// RocksDB MessageStore. One database per directory, default column family,
// keys as in keys.h. Writes build a WriteBatchWithIndex (read-your-writes
// inside one apply()) and commit it in one WAL-logged Write; TTL is enforced
// on reads and by a compaction filter.
#include "msg_store/rocksdb_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/io_status.h>
#include <rocksdb/iterator.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/write_batch_with_index.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <list>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "keys.h"

namespace pushgw::msg_store {
namespace {

using keys::Kind;

boost::system::error_code map_status(const rocksdb::Status& s) {
  if (s.IsNoSpace()) return store_errc::no_space;
  if (s.IsCorruption()) return store_errc::corruption;
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsAborted()) return store_errc::busy;
  if (s.IsInvalidArgument() || s.IsNotSupported()) return store_errc::invalid_argument;
  if (s.IsShutdownInProgress()) return store_errc::closed;
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) return store_errc::locked;
  return store_errc::io_error;
}

std::string_view view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// Drops every entry whose expiry (message TTL, index/tombstone/state
// retention) has passed. Stateless apart from the removal counter, so one
// instance serves every compaction thread.
class ExpiryFilter final : public rocksdb::CompactionFilter {
 public:
  explicit ExpiryFilter(const Clock& clock) : clock_(clock) {}

  bool Filter(int /*level*/, const rocksdb::Slice& key, const rocksdb::Slice& value,
              std::string* /*new_value*/, bool* /*value_changed*/) const override {
    auto expiry = keys::expiry_of(view(key), view(value));
    if (!expiry || *expiry == 0 || *expiry > clock_.now_ms()) return false;
    if (keys::kind_of(view(key)) == Kind::kMessage) {
      messages_removed_.fetch_add(1, std::memory_order_relaxed);
    }
    return true;
  }
  const char* Name() const override { return "pushgw.msg_store.ExpiryFilter"; }

  uint64_t messages_removed() const { return messages_removed_.load(std::memory_order_relaxed); }

 private:
  const Clock& clock_;
  mutable std::atomic<uint64_t> messages_removed_{0};
};

// The device part of a key ('d' len app len device): the memtable hashes
// on it (a small skiplist per device instead of one big one), and iterators
// stay within one device's keys. Other keys (checkpoints) share the prefix
// of their first byte.
class DevicePrefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "pushgw.msg_store.DevicePrefix.v1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return {key.data(), keys::prefix_length(view(key))};
  }
  bool InDomain(const rocksdb::Slice& /*key*/) const override { return true; }
};

// Fault injection: file writes fail with ENOSPC while the flag is set.
class FaultFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultFile(std::unique_ptr<rocksdb::FSWritableFile> file, std::shared_ptr<FaultInjection> faults)
      : FSWritableFileOwnerWrapper(std::move(file)), faults_(std::move(faults)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
    if (failing()) return rocksdb::IOStatus::NoSpace("injected");
    return FSWritableFileOwnerWrapper::Append(data, o, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (failing()) return rocksdb::IOStatus::NoSpace("injected");
    return FSWritableFileOwnerWrapper::Append(data, o, info, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* dbg) override {
    if (failing()) return rocksdb::IOStatus::NoSpace("injected");
    return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, o, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    if (failing()) return rocksdb::IOStatus::NoSpace("injected");
    return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, o, info, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (failing()) return rocksdb::IOStatus::NoSpace("injected");
    return FSWritableFileOwnerWrapper::Sync(o, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (failing()) return rocksdb::IOStatus::NoSpace("injected");
    return FSWritableFileOwnerWrapper::Fsync(o, dbg);
  }

 private:
  bool failing() const { return faults_->fail_writes.load(std::memory_order_relaxed); }
  std::shared_ptr<FaultInjection> faults_;
};

class FaultFs final : public rocksdb::FileSystemWrapper {
 public:
  FaultFs(const std::shared_ptr<rocksdb::FileSystem>& base, std::shared_ptr<FaultInjection> faults)
      : FileSystemWrapper(base), faults_(std::move(faults)) {}
  const char* Name() const override { return "PushgwFaultFs"; }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    if (faults_->fail_writes.load()) return rocksdb::IOStatus::NoSpace("injected");
    auto s = target()->NewWritableFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<FaultFile>(std::move(*r), faults_);
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override {
    if (faults_->fail_writes.load()) return rocksdb::IOStatus::NoSpace("injected");
    auto s = target()->ReopenWritableFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<FaultFile>(std::move(*r), faults_);
    return s;
  }

 private:
  std::shared_ptr<FaultInjection> faults_;
};

struct Settings {
  uint32_t max_plain;
  uint32_t max_collapsible;
  uint64_t ack_retention_ms;
  uint32_t max_message_bytes;
};

uint32_t sat_dec(uint32_t v) { return v == 0 ? 0 : v - 1; }
uint32_t sat_inc(uint32_t v) { return v == UINT32_MAX ? v : v + 1; }

// A device as the writer sees it: the persisted state plus figures derived
// from its queue ('M' entries), so that storing a message needs no read of
// the device's state and no write of it.
struct CachedDevice {
  keys::DeviceState persisted;
  uint64_t highest = 0;      // highest seq stored since the figures were derived
  uint32_t plain = 0;        // stored without collapse key (marker excluded)
  uint32_t collapsible = 0;  // stored with a collapse key
  uint64_t marker_seq = 0;   // 0 = no resync marker
};

// Bounded LRU of CachedDevice by device prefix. Used under the write mutex only.
class DeviceCache {
 public:
  explicit DeviceCache(std::size_t max) : max_(std::max<std::size_t>(max, 1)) {}

  std::optional<CachedDevice> find(const std::string& prefix) {
    auto it = map_.find(prefix);
    if (it == map_.end()) return std::nullopt;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  void clear() {
    map_.clear();
    lru_.clear();
  }
  void put(const std::string& prefix, const CachedDevice& d) {
    auto it = map_.find(prefix);
    if (it != map_.end()) {
      it->second->second = d;
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    lru_.emplace_front(prefix, d);
    map_.emplace(prefix, lru_.begin());
    if (map_.size() > max_) {
      map_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

 private:
  using Node = std::pair<std::string, CachedDevice>;
  std::size_t max_;
  std::list<Node> lru_;
  std::unordered_map<std::string, std::list<Node>::iterator> map_;
};

// One apply(): the write batch, copies of the devices it touched, and the
// result. Lookups read the batch first, then the database. The device copies
// go back into the cache only if the batch is written.
class BatchWriter {
 public:
  BatchWriter(rocksdb::DB* db, DeviceCache& cache, const Settings& settings, uint64_t now)
      : db_(db),
        cache_(cache),
        settings_(settings),
        now_(now),
        wb_(rocksdb::BytewiseComparator(), 0, true) {}

  const rocksdb::Status& status() const { return status_; }
  ApplyResult& result() { return result_; }

  StoreOutcome store(const pushgw::bus::v1::DeliveryRecord& record);
  void ack(const AckRequest& req);
  void checkpoint(const Checkpoint& c) {
    std::string v;
    keys::put_be64(v, static_cast<uint64_t>(c.value));
    wb_.Put(keys::checkpoint_key(c.name), v);
  }

  // Writes the changed device states into the batch; then it is ready.
  rocksdb::WriteBatch* finish() {
    for (auto& [prefix, dev] : devices_) {
      if (dev.persist) wb_.Put(keys::state_key(prefix), keys::encode_state(dev.d.persisted));
    }
    return wb_.GetWriteBatch();
  }
  // After a successful write: the cache learns the new figures.
  void commit_cache() {
    for (auto& [prefix, dev] : devices_) cache_.put(prefix, dev.d);
  }

 private:
  struct Device {
    CachedDevice d;
    bool persist = false;  // 'S' must be written
  };
  struct Entry {
    uint64_t seq = 0;
    uint64_t expires_ms = 0;
    uint8_t flags = 0;
    std::string message_id;
    std::string collapse_key;
  };

  bool get(const std::string& key, std::string* value) {
    if (!status_.ok()) return false;
    auto s = wb_.GetFromBatchAndDB(db_, rocksdb::ReadOptions(), key, value);
    if (s.ok()) return true;
    if (!s.IsNotFound()) status_ = s;
    return false;
  }

  Device& device(const std::string& prefix) {
    auto it = devices_.find(prefix);
    if (it != devices_.end()) return it->second;
    Device dev;
    if (auto cached = cache_.find(prefix)) {
      dev.d = *cached;
    } else {
      std::string v;
      if (get(keys::state_key(prefix), &v)) {
        if (auto s = keys::decode_state(v)) dev.d.persisted = *s;
      }
      for (const auto& e : entries(prefix, dev.d.persisted.watermark + 1, UINT64_MAX)) {
        count_in(dev.d, e);
        dev.d.highest = std::max(dev.d.highest, e.seq);
      }
    }
    return devices_.emplace(prefix, dev).first->second;
  }

  static void count_in(CachedDevice& d, const Entry& e) {
    if ((e.flags & keys::MessageHeader::kMarker) != 0) {
      d.marker_seq = e.seq;
    } else if ((e.flags & keys::MessageHeader::kCollapsible) != 0) {
      d.collapsible = sat_inc(d.collapsible);
    } else {
      d.plain = sat_inc(d.plain);
    }
  }

  // Visits the device's entries of `kind` with seq in [lo, hi] (batch + DB).
  template <class F>
  void scan(const std::string& prefix, Kind kind, uint64_t lo, uint64_t hi, F&& visit) {
    if (!status_.ok() || lo > hi) return;
    const std::string start = keys::seq_key(prefix, kind, lo);
    std::string end = prefix;
    end.push_back(static_cast<char>(static_cast<char>(kind) + 1));
    rocksdb::Slice upper(end);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(
        wb_.NewIteratorWithBase(db_->DefaultColumnFamily(), db_->NewIterator(ro), &ro));
    for (it->Seek(start); it->Valid(); it->Next()) {
      auto k = view(it->key());
      if (k.compare(end) >= 0) break;
      const uint64_t seq = keys::seq_of(k);
      if (seq > hi) break;
      visit(seq, view(it->value()));
    }
    if (!it->status().ok()) status_ = it->status();
  }

  static Entry entry_of(uint64_t seq, std::string_view value) {
    Entry e;
    e.seq = seq;
    if (auto h = keys::decode_message(value)) {
      e.expires_ms = h->expires_ms;
      e.flags = h->flags;
      e.message_id = h->message_id;
      e.collapse_key = h->collapse_key;
    }
    return e;
  }

  std::vector<Entry> entries(const std::string& prefix, uint64_t lo, uint64_t hi) {
    std::vector<Entry> out;
    scan(prefix, Kind::kMessage, lo, hi,
         [&](uint64_t seq, std::string_view v) { out.push_back(entry_of(seq, v)); });
    return out;
  }

  std::optional<Entry> message(const std::string& prefix, uint64_t seq) {
    std::string v;
    if (!get(keys::seq_key(prefix, Kind::kMessage, seq), &v)) return std::nullopt;
    return entry_of(seq, v);
  }

  // Deletes a stored message and the collapse index entry pointing at it.
  void remove(const std::string& prefix, Device& dev, const Entry& e) {
    wb_.Delete(keys::seq_key(prefix, Kind::kMessage, e.seq));
    if (!e.collapse_key.empty()) {
      std::string v;
      auto k = keys::name_key(prefix, Kind::kCollapse, e.collapse_key);
      if (get(k, &v)) {
        if (auto idx = keys::decode_index(v); idx && idx->seq == e.seq) wb_.Delete(k);
      }
    }
    if ((e.flags & keys::MessageHeader::kMarker) != 0) {
      if (dev.d.marker_seq == e.seq) dev.d.marker_seq = 0;
    } else if ((e.flags & keys::MessageHeader::kCollapsible) != 0) {
      dev.d.collapsible = sat_dec(dev.d.collapsible);
    } else {
      dev.d.plain = sat_dec(dev.d.plain);
    }
  }

  void trim(const std::string& prefix, Device& dev);
  void ack_seq(const std::string& prefix, Device& dev, uint64_t seq);

  rocksdb::DB* db_;
  DeviceCache& cache_;
  const Settings& settings_;
  const uint64_t now_;
  rocksdb::WriteBatchWithIndex wb_;
  std::unordered_map<std::string, Device> devices_;
  rocksdb::Status status_;
  ApplyResult result_;
};

StoreOutcome BatchWriter::store(const pushgw::bus::v1::DeliveryRecord& record) {
  if (!record.has_push() || !keys::valid_id(record.app_id()) ||
      !keys::valid_id(record.device_id())) {
    return StoreOutcome::kInvalid;
  }
  const auto& push = record.push();
  if (push.seq() == 0 || push.expires_ms() == 0 || !keys::valid_id(push.message_id()) ||
      push.collapse_key().size() > keys::kMaxCollapseKeyBytes ||
      push.ByteSizeLong() > settings_.max_message_bytes || is_resync_marker(push)) {
    return StoreOutcome::kInvalid;
  }
  if (push.expires_ms() <= now_) return StoreOutcome::kExpired;

  const std::string prefix = keys::device_prefix(record.app_id(), record.device_id());
  Device& dev = device(prefix);
  const uint64_t seq = push.seq();
  if (seq <= dev.d.persisted.watermark) return StoreOutcome::kBelowWatermark;
  std::string v;
  if (dev.d.persisted.seq_tombstones > 0 && get(keys::seq_key(prefix, Kind::kAckSeq, seq), &v)) {
    return StoreOutcome::kAlreadyAcked;
  }
  if (dev.d.persisted.id_tombstones > 0 &&
      get(keys::name_key(prefix, Kind::kAckId, push.message_id()), &v)) {
    return StoreOutcome::kAlreadyAcked;
  }
  if (seq <= dev.d.highest && message(prefix, seq)) return StoreOutcome::kDuplicate;

  StoreOutcome outcome = StoreOutcome::kStored;
  uint8_t flags = 0;
  if (!push.collapse_key().empty()) {
    flags |= keys::MessageHeader::kCollapsible;
    const auto ck_key = keys::name_key(prefix, Kind::kCollapse, push.collapse_key());
    std::optional<Entry> older;
    if (get(ck_key, &v)) {
      auto idx = keys::decode_index(v);
      if (idx && idx->expires_ms > now_) older = message(prefix, idx->seq);
    }
    if (older && older->seq > seq) return StoreOutcome::kSuperseded;
    if (older) {
      remove(prefix, dev, *older);
      ++result_.store.collapsed_away;
      outcome = StoreOutcome::kCollapsed;
    }
    dev.d.collapsible = sat_inc(dev.d.collapsible);
    wb_.Put(ck_key, keys::encode_index(push.expires_ms(), seq));
  } else {
    dev.d.plain = sat_inc(dev.d.plain);
  }
  wb_.Put(keys::seq_key(prefix, Kind::kMessage, seq),
          keys::encode_message(push.expires_ms(), flags, push.message_id(), push.collapse_key(),
                               push.SerializeAsString()));
  dev.d.highest = std::max(dev.d.highest, seq);

  if (dev.d.plain > settings_.max_plain || dev.d.collapsible > settings_.max_collapsible) {
    const uint64_t before = result_.store.overflow_dropped;
    trim(prefix, dev);
    if (result_.store.overflow_dropped > before) outcome = StoreOutcome::kOverflowed;
  }
  return outcome;
}

// Recounts the device's queue exactly (dropping expired messages on the
// way), then drops the oldest messages over the caps and puts the resync
// marker where the newest dropped one was.
void BatchWriter::trim(const std::string& prefix, Device& dev) {
  auto all = entries(prefix, dev.d.persisted.watermark + 1, UINT64_MAX);
  if (!status_.ok()) return;
  std::vector<Entry> live;
  for (auto& e : all) {
    if (e.expires_ms <= now_) {
      remove(prefix, dev, e);
      if ((e.flags & keys::MessageHeader::kMarker) == 0) ++result_.store.expired_removed;
    } else {
      live.push_back(std::move(e));
    }
  }
  dev.d.plain = 0;
  dev.d.collapsible = 0;
  dev.d.marker_seq = 0;
  std::optional<Entry> marker;
  for (const auto& e : live) {
    count_in(dev.d, e);
    if ((e.flags & keys::MessageHeader::kMarker) != 0) marker = e;
  }

  uint64_t dropped = 0;
  uint64_t drop_seq = 0;
  uint64_t drop_expires = 0;
  for (const auto& e : live) {
    if ((e.flags & keys::MessageHeader::kMarker) != 0) continue;
    const bool is_collapsible = (e.flags & keys::MessageHeader::kCollapsible) != 0;
    const bool over = is_collapsible ? dev.d.collapsible > settings_.max_collapsible
                                     : dev.d.plain > settings_.max_plain;
    if (!over) continue;
    remove(prefix, dev, e);
    ++dropped;
    drop_seq = std::max(drop_seq, e.seq);
    drop_expires = std::max(drop_expires, e.expires_ms);
  }
  if (dropped == 0) return;
  result_.store.overflow_dropped += dropped;

  uint64_t marker_seq = drop_seq;
  uint64_t marker_expires = drop_expires;
  if (marker) {
    marker_seq = std::max(marker_seq, marker->seq);
    marker_expires = std::max(marker_expires, marker->expires_ms);
    if (marker->seq != marker_seq) remove(prefix, dev, *marker);
  }
  pushgw::v1::Push m;
  m.set_message_id(std::string(kResyncMarkerPrefix) + std::to_string(marker_seq));
  m.set_seq(marker_seq);
  m.set_traffic_class(pushgw::v1::NORMAL);
  m.set_created_ms(now_);
  m.set_expires_ms(marker_expires);
  m.set_ack_required(true);
  wb_.Put(keys::seq_key(prefix, Kind::kMessage, marker_seq),
          keys::encode_message(marker_expires, keys::MessageHeader::kMarker, m.message_id(), {},
                               m.SerializeAsString()));
  dev.d.marker_seq = marker_seq;
  ++result_.store.markers_written;
}

void BatchWriter::ack_seq(const std::string& prefix, Device& dev, uint64_t seq) {
  if (seq == 0 || seq <= dev.d.persisted.watermark) return;
  if (auto e = message(prefix, seq)) {
    remove(prefix, dev, *e);
    ++result_.ack.deleted;
  }
  // The tombstone also covers a redelivered store of a message acked after
  // it was stored.
  wb_.Put(keys::seq_key(prefix, Kind::kAckSeq, seq),
          keys::encode_expiry(now_ + settings_.ack_retention_ms));
  dev.d.persisted.seq_tombstones = sat_inc(dev.d.persisted.seq_tombstones);
  dev.d.highest = std::max(dev.d.highest, seq);
  ++result_.ack.tombstones;
}

// The seq of a resync marker id ("pushgw.resync:<seq>"), or 0.
uint64_t marker_seq_of(std::string_view id) {
  if (!id.starts_with(kResyncMarkerPrefix)) return 0;
  id.remove_prefix(kResyncMarkerPrefix.size());
  uint64_t seq = 0;
  auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), seq);
  return (ec == std::errc() && end == id.data() + id.size()) ? seq : 0;
}

void BatchWriter::ack(const AckRequest& req) {
  if (!keys::valid_id(req.app_id) || !keys::valid_id(req.device_id)) {
    ++result_.ack.invalid;
    return;
  }
  const std::string prefix = keys::device_prefix(req.app_id, req.device_id);
  Device& dev = device(prefix);
  auto& st = dev.d.persisted;
  st.keep_until_ms = std::max(st.keep_until_ms, now_ + settings_.ack_retention_ms);
  dev.persist = true;
  if (req.up_to_seq > st.watermark) {
    for (const auto& e : entries(prefix, st.watermark + 1, req.up_to_seq)) {
      remove(prefix, dev, e);
      ++result_.ack.deleted;
    }
    scan(prefix, Kind::kAckSeq, st.watermark + 1, req.up_to_seq,
         [&](uint64_t seq, std::string_view) {
           wb_.Delete(keys::seq_key(prefix, Kind::kAckSeq, seq));
           st.seq_tombstones = sat_dec(st.seq_tombstones);
         });
    st.watermark = req.up_to_seq;
    dev.d.highest = std::max(dev.d.highest, req.up_to_seq);
    ++result_.ack.watermark_advanced;
  }
  for (uint64_t seq : req.seqs) ack_seq(prefix, dev, seq);
  // Ids without a seq: found by scanning the device's queue (bounded by the
  // caps), once per request.
  std::optional<std::unordered_map<std::string, uint64_t>> ids;
  for (const auto& id : req.message_ids) {
    if (!keys::valid_id(id)) {
      ++result_.ack.invalid;
      continue;
    }
    if (uint64_t m = marker_seq_of(id)) {
      ack_seq(prefix, dev, m);
      continue;
    }
    if (!ids) {
      ids.emplace();
      for (const auto& e : entries(prefix, st.watermark + 1, UINT64_MAX)) {
        ids->emplace(e.message_id, e.seq);
      }
    }
    if (auto it = ids->find(id); it != ids->end()) {
      ack_seq(prefix, dev, it->second);
      continue;
    }
    wb_.Put(keys::name_key(prefix, Kind::kAckId, id),
            keys::encode_expiry(now_ + settings_.ack_retention_ms));
    st.id_tombstones = sat_inc(st.id_tombstones);
    ++result_.ack.tombstones;
  }
}

class RocksStore final : public MessageStore {
 public:
  explicit RocksStore(const StoreOptions& options)
      : clock_(options.clock ? *options.clock : SystemClock::instance()),
        settings_{options.max_per_device, options.max_collapsible_per_device,
                  static_cast<uint64_t>(options.ack_retention.count()), options.max_message_bytes},
        options_(options),
        filter_(clock_),
        cache_(options.device_cache_entries) {}

  ~RocksStore() override { (void)close(); }

  result<void> open(const std::filesystem::path& dir) {
    dir_ = dir;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return ec == std::errc::no_space_on_device ? store_errc::no_space : store_errc::io_error;
    }
    rocksdb::Options o;
    o.create_if_missing = true;
    o.compaction_filter = &filter_;
    o.write_buffer_size = options_.write_buffer_bytes;
    o.max_background_jobs = options_.background_jobs;
    o.keep_log_file_num = 3;
    o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
    o.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
    o.prefix_extractor = std::make_shared<DevicePrefix>();
    // Bucket array (8 bytes each) well below the memtable size.
    o.memtable_factory.reset(rocksdb::NewHashSkipListRepFactory(static_cast<size_t>(
        std::clamp<uint64_t>(options_.write_buffer_bytes / 256, 1024, 1'000'000))));
    o.allow_concurrent_memtable_write = false;  // required by the hash memtable; one writer anyway
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = rocksdb::NewLRUCache(options_.block_cache_bytes);
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    if (options_.faults && !env_) {
      env_ = rocksdb::NewCompositeEnv(
          std::make_shared<FaultFs>(rocksdb::FileSystem::Default(), options_.faults));
    }
    if (env_) o.env = env_.get();
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(o, dir.string(), &raw);
    if (!s.ok()) return map_status(s);
    db_.reset(raw);
    return {};
  }

  result<ApplyResult> apply(std::span<const pushgw::bus::v1::DeliveryRecord> stores,
                            std::span<const AckRequest> acks,
                            const WriteOptions& options) override {
    std::lock_guard write_lock(write_mu_);
    if (failed_.load()) {
      if (auto r = recover(); !r) return r.error();
    }
    std::shared_lock life(life_mu_);
    if (!db_) return store_errc::closed;
    BatchWriter batch(db_.get(), cache_, settings_, clock_.now_ms());
    ApplyResult& out = batch.result();
    out.store.outcomes.reserve(stores.size());
    for (const auto& r : stores) out.store.outcomes.push_back(batch.store(r));
    for (const auto& a : acks) batch.ack(a);
    for (const auto& c : options.checkpoints) batch.checkpoint(c);
    if (!batch.status().ok()) return map_status(batch.status());
    rocksdb::WriteBatch* wb = batch.finish();
    rocksdb::WriteOptions wo;
    wo.sync = options.sync;
    rocksdb::Status s;
    if (wb->Count() > 0) {
      s = db_->Write(wo, wb);
    } else if (options.sync) {
      s = db_->SyncWAL();
    }
    if (!s.ok()) {
      failed_.store(true);
      return map_status(s);
    }
    batch.commit_cache();
    return std::move(out);
  }

  result<ReadResult> read(std::string_view app_id, std::string_view device_id, uint64_t after_seq,
                          std::size_t limit) override {
    if (!keys::valid_id(app_id) || !keys::valid_id(device_id) || limit == 0) {
      return store_errc::invalid_argument;
    }
    std::shared_lock life(life_mu_);
    if (!db_) return store_errc::closed;
    const std::string prefix = keys::device_prefix(app_id, device_id);
    auto state = load_state(prefix);
    if (!state) return state.error();
    ReadResult out;
    const uint64_t from = std::max(after_seq, state->watermark);
    if (from == UINT64_MAX) return out;
    const uint64_t now = clock_.now_ms();
    auto status = scan_messages(prefix, from + 1, [&](uint64_t, const keys::MessageHeader& h) {
      if (out.messages.size() >= limit) {
        out.more = true;
        return false;
      }
      if (h.expires_ms <= now) {
        ++out.expired_skipped;
        return true;
      }
      pushgw::v1::Push p;
      if (p.ParseFromArray(h.push_bytes.data(), static_cast<int>(h.push_bytes.size()))) {
        out.messages.push_back(std::move(p));
      }
      return true;
    });
    if (!status.ok()) return map_status(status);
    return out;
  }

  result<DeviceStats> device_stats(std::string_view app_id, std::string_view device_id) override {
    if (!keys::valid_id(app_id) || !keys::valid_id(device_id)) {
      return store_errc::invalid_argument;
    }
    std::shared_lock life(life_mu_);
    if (!db_) return store_errc::closed;
    const std::string prefix = keys::device_prefix(app_id, device_id);
    auto state = load_state(prefix);
    if (!state) return state.error();
    DeviceStats out;
    out.watermark = state->watermark;
    const uint64_t now = clock_.now_ms();
    auto status = scan_messages(prefix, state->watermark + 1,
                                [&](uint64_t seq, const keys::MessageHeader& h) {
                                  if (h.expires_ms <= now) {
                                    ++out.expired_pending;
                                    return true;
                                  }
                                  ++out.stored;
                                  if (h.marker()) out.resync_marker = true;
                                  if (h.collapsible()) ++out.collapsible;
                                  if (out.lowest_seq == 0) out.lowest_seq = seq;
                                  out.highest_stored_seq = seq;
                                  return true;
                                });
    if (!status.ok()) return map_status(status);
    return out;
  }

  result<StoreStats> stats() override {
    std::shared_lock life(life_mu_);
    if (!db_) return store_errc::closed;
    StoreStats out;
    db_->GetIntProperty("rocksdb.total-sst-files-size", &out.sst_bytes);
    db_->GetIntProperty("rocksdb.cur-size-all-mem-tables", &out.memtable_bytes);
    db_->GetIntProperty("rocksdb.estimate-live-data-size", &out.live_data_bytes);
    db_->GetIntProperty("rocksdb.estimate-num-keys", &out.estimated_keys);
    out.expired_compacted = filter_.messages_removed();
    return out;
  }

  result<std::optional<int64_t>> checkpoint(std::string_view name) override {
    std::shared_lock life(life_mu_);
    if (!db_) return store_errc::closed;
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), keys::checkpoint_key(name), &v);
    if (s.IsNotFound()) return std::optional<int64_t>();
    if (!s.ok()) return map_status(s);
    if (v.size() != 8) return store_errc::corruption;
    return std::optional<int64_t>(static_cast<int64_t>(keys::get_be64(v.data())));
  }

  result<void> sync_wal() override {
    std::shared_lock life(life_mu_);
    if (!db_) return store_errc::closed;
    if (failed_.load()) return store_errc::no_space;  // the WAL writer saw the error
    auto s = db_->SyncWAL();
    if (!s.ok()) return map_status(s);
    return {};
  }

  result<void> flush() override {
    std::shared_lock life(life_mu_);
    if (!db_) return store_errc::closed;
    if (failed_.load()) return store_errc::no_space;
    auto s = db_->Flush(rocksdb::FlushOptions());
    if (!s.ok()) return map_status(s);
    return {};
  }

  result<void> compact() override {
    std::shared_lock life(life_mu_);
    if (!db_) return store_errc::closed;
    rocksdb::CompactRangeOptions o;
    o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    auto s = db_->CompactRange(o, nullptr, nullptr);
    if (!s.ok()) return map_status(s);
    return {};
  }

  result<void> close() override {
    std::lock_guard write_lock(write_mu_);
    std::unique_lock life(life_mu_);
    if (!db_) {
      failed_.store(false);
      return {};
    }
    rocksdb::Status first;
    // The WAL already holds everything; flushing only shortens the next
    // recovery. After a failed write the WAL writer must not be touched again
    // (RocksDB asserts on it), so a failed store closes without either.
    if (!failed_.load()) {
      (void)db_->Flush(rocksdb::FlushOptions());
      first = db_->SyncWAL();
    }
    auto s = db_->Close();
    if (first.ok()) first = s;
    db_.reset();
    failed_.store(false);
    if (!first.ok()) return map_status(first);
    return {};
  }

 private:
  // Leaves the state a failed write put the database in, once the disk takes
  // writes again. Called with write_mu_ held. Resume() cannot leave every
  // such state (a WAL writer that saw the error stays failed), so when it
  // refuses, the database is closed and opened again: WAL replay restores
  // every write that was acknowledged, and the failed one was not.
  result<void> recover() {
    std::unique_lock life(life_mu_);
    if (!db_ && dir_.empty()) return store_errc::closed;
    if (!disk_writable()) return store_errc::no_space;
    if (db_) {
      // Resume() gets rid of the failed WAL writer only by flushing the
      // memtable (which switches to a new WAL); with nothing in the memtable
      // it skips the flush, reports success, and the next write hits the
      // old writer (an assertion in RocksDB 7.8). Then reopen instead.
      uint64_t active = 0;
      uint64_t immutable = 0;
      const bool has_data =
          db_->GetIntProperty(rocksdb::DB::Properties::kNumEntriesActiveMemTable, &active) &&
          db_->GetIntProperty(rocksdb::DB::Properties::kNumImmutableMemTable, &immutable) &&
          active + immutable > 0;
      if (has_data) {
        auto s = db_->Resume();
        if (s.ok()) {
          failed_.store(false);
          return {};
        }
      }
      (void)db_->Close();
      db_.reset();
    }
    cache_.clear();
    if (auto r = open(dir_); !r) return r.error();  // db_ stays null; the next write retries
    failed_.store(false);
    return {};
  }

  // Writes and syncs a small probe file beside the database, through the same
  // file system the database uses.
  bool disk_writable() {
    const auto& fs = env_ ? env_->GetFileSystem() : rocksdb::FileSystem::Default();
    const std::string path = (dir_ / ".space-probe").string();
    rocksdb::IOOptions io;
    std::unique_ptr<rocksdb::FSWritableFile> f;
    if (!fs->NewWritableFile(path, rocksdb::FileOptions(), &f, nullptr).ok()) return false;
    const std::string block(64 * 1024, '\0');
    bool ok = f->Append(block, io, nullptr).ok() && f->Fsync(io, nullptr).ok();
    ok = f->Close(io, nullptr).ok() && ok;
    (void)fs->DeleteFile(path, io, nullptr);
    return ok;
  }

  result<keys::DeviceState> load_state(const std::string& prefix) {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), keys::state_key(prefix), &v);
    if (s.IsNotFound()) return keys::DeviceState{};
    if (!s.ok()) return map_status(s);
    return keys::decode_state(v).value_or(keys::DeviceState{});
  }

  // Calls visit(seq, header) for the device's messages from seq `from` on,
  // in order, until it returns false.
  template <class F>
  rocksdb::Status scan_messages(const std::string& prefix, uint64_t from, F&& visit) {
    std::string end = prefix;
    end.push_back(static_cast<char>(static_cast<char>(Kind::kMessage) + 1));
    rocksdb::Slice upper(end);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    for (it->Seek(keys::seq_key(prefix, Kind::kMessage, from)); it->Valid(); it->Next()) {
      auto h = keys::decode_message(view(it->value()));
      if (!h) continue;
      if (!visit(keys::seq_of(view(it->key())), *h)) break;
    }
    return it->status();
  }

  const Clock& clock_;
  const Settings settings_;
  const StoreOptions options_;
  ExpiryFilter filter_;
  std::unique_ptr<rocksdb::Env> env_;
  std::mutex write_mu_;
  DeviceCache cache_;  // under write_mu_
  std::shared_mutex life_mu_;
  std::atomic<bool> failed_{false};  // a write failed; recover() before the next one
  std::filesystem::path dir_;
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace

result<std::unique_ptr<MessageStore>> open_rocksdb_store(const std::filesystem::path& dir,
                                                         const StoreOptions& options) {
  if (options.max_per_device == 0 || options.max_collapsible_per_device == 0 ||
      options.max_message_bytes == 0 || options.write_buffer_bytes < (1ULL << 16) ||
      options.background_jobs < 1 || options.ack_retention.count() <= 0 || dir.empty()) {
    return store_errc::invalid_argument;
  }
  auto store = std::make_unique<RocksStore>(options);
  if (auto r = store->open(dir); !r) return r.error();
  return std::unique_ptr<MessageStore>(std::move(store));
}

}  // namespace pushgw::msg_store
