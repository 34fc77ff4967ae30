#pragma once
/// Per-link bounded send queue with two lanes. NORMAL frames are always taken
/// before MARKETING frames, so normal traffic never waits behind a marketing
/// backlog on a link. Bounded by bytes and by frame count over both lanes
/// (device protocol: default 1 MiB or 1024 frames); a push over the bound is
/// refused and the link must be closed with Error{SLOW_CONSUMER}.
///
/// Frames are stored already encoded (prefix included for tcp/tls), as shared
/// immutable buffers so a topic/broadcast frame is encoded once per node and
/// shared by every link. Not thread-safe: owned by the link's strand.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

namespace pushgw::conn_node {

using SharedFrame = std::shared_ptr<const std::string>;

enum class Lane : uint8_t { kNormal = 0, kMarketing = 1 };

class SendQueue {
 public:
  SendQueue(size_t max_bytes, size_t max_frames) : max_bytes_(max_bytes), max_frames_(max_frames) {}

  /// Appends a frame; false when the bound would be exceeded (nothing queued).
  bool push(Lane lane, SharedFrame frame) {
    const size_t n = frame->size();
    if (frames_ + 1 > max_frames_ || bytes_ + n > max_bytes_) return false;
    lane_of(lane).push_back(std::move(frame));
    bytes_ += n;
    ++frames_;
    return true;
  }

  bool empty() const noexcept { return frames_ == 0; }
  size_t bytes() const noexcept { return bytes_; }
  size_t frames() const noexcept { return frames_; }
  size_t frames(Lane lane) const noexcept {
    return lane == Lane::kNormal ? normal_.size() : marketing_.size();
  }

  /// Takes up to `max_frames` frames and about `max_bytes` (at least one
  /// frame), normal lane first, into `out` for one gathered write.
  template <class Out>
  void take(Out& out, size_t max_frames, size_t max_bytes) {
    size_t taken_bytes = 0;
    size_t taken = 0;
    for (auto* q : {&normal_, &marketing_}) {
      while (!q->empty() && taken < max_frames &&
             (taken == 0 || taken_bytes + q->front()->size() <= max_bytes)) {
        taken_bytes += q->front()->size();
        out.push_back(std::move(q->front()));
        q->pop_front();
        ++taken;
      }
    }
    bytes_ -= taken_bytes;
    frames_ -= taken;
  }

  /// Takes one frame of the given lane (the marketing rate cap takes marketing
  /// frames one by one); nullptr when that lane is empty.
  SharedFrame take_one(Lane lane) {
    auto& q = lane_of(lane);
    if (q.empty()) return nullptr;
    SharedFrame f = std::move(q.front());
    q.pop_front();
    bytes_ -= f->size();
    --frames_;
    return f;
  }

  void clear() noexcept {
    normal_.clear();
    marketing_.clear();
    bytes_ = 0;
    frames_ = 0;
  }

 private:
  std::deque<SharedFrame>& lane_of(Lane l) { return l == Lane::kNormal ? normal_ : marketing_; }

  size_t max_bytes_;
  size_t max_frames_;
  size_t bytes_ = 0;
  size_t frames_ = 0;
  std::deque<SharedFrame> normal_;
  std::deque<SharedFrame> marketing_;
};

}  // namespace pushgw::conn_node
