#pragma once
/// Per-partition bookkeeping of which handed-out records are processed, and
/// so which offset may be committed. Pure logic, no Kafka: the consumer uses
/// it under its own lock, and it is unit-tested alone.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

namespace pushgw::bus {

/// Tracks the records of one partition from hand-out to processed.
///
/// The committable offset is one past the longest prefix of handed-out
/// records that are all processed, so an out-of-order mark never lets a
/// commit skip an unprocessed record. Offsets may have gaps (compaction,
/// transaction markers): only offsets actually handed out count.
/// Not thread-safe (the owner locks).
class OffsetTracker {
 public:
  /// A record at `offset` was handed out. Offsets must increase; a repeated
  /// or lower offset is ignored and returns false.
  bool handed_out(int64_t offset);

  /// The record at `offset` is processed. Returns false (and changes
  /// nothing) for an offset that was not handed out or is already marked.
  /// committable() advances only once every earlier record is marked too.
  bool processed(int64_t offset);

  /// One past the last record of the processed prefix; nullopt before the
  /// first record is processed.
  std::optional<int64_t> committable() const { return committable_; }

  /// Handed out and not yet part of the processed prefix.
  std::size_t open() const { return entries_.size(); }

 private:
  struct Entry {
    int64_t offset;
    bool done;
  };
  std::deque<Entry> entries_;  // increasing offsets
  std::optional<int64_t> committable_;
  std::optional<int64_t> last_handed_out_;
};

}  // namespace pushgw::bus
