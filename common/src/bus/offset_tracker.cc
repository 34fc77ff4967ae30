#include "common/bus/offset_tracker.h"

#include <algorithm>

namespace pushgw::bus {

bool OffsetTracker::handed_out(int64_t offset) {
  if (offset < 0 || (last_handed_out_ && offset <= *last_handed_out_)) {
    return false;
  }
  last_handed_out_ = offset;
  entries_.push_back({offset, false});
  return true;
}

bool OffsetTracker::processed(int64_t offset) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), offset,
                             [](const Entry& e, int64_t o) { return e.offset < o; });
  if (it == entries_.end() || it->offset != offset || it->done) {
    return false;
  }
  it->done = true;
  while (!entries_.empty() && entries_.front().done) {
    committable_ = entries_.front().offset + 1;
    entries_.pop_front();
  }
  return true;
}

}  // namespace pushgw::bus
