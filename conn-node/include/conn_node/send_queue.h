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
///
/// Memory: an empty queue holds no heap memory (each lane is a small ring that
/// allocates on first use and gives its storage back once it drains), so an
/// idle link pays only sizeof(SendQueue).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace pushgw::conn_node {

using SharedFrame = std::shared_ptr<const std::string>;

enum class Lane : uint8_t { kNormal = 0, kMarketing = 1 };

namespace detail {

/// A growable FIFO ring of frames that owns no storage while empty.
class FrameRing {
 public:
  bool empty() const noexcept { return size_ == 0; }
  uint32_t size() const noexcept { return size_; }
  const SharedFrame& front() const noexcept { return buf_[head_]; }

  void push_back(SharedFrame f) {
    if (size_ == cap_) grow();
    buf_[(head_ + size_) & (cap_ - 1)] = std::move(f);
    ++size_;
  }
  SharedFrame pop_front() noexcept {
    SharedFrame f = std::move(buf_[head_]);
    head_ = (head_ + 1) & (cap_ - 1);
    if (--size_ == 0) release();
    return f;
  }
  void clear() noexcept {
    while (size_ > 0) pop_front();
  }

 private:
  void grow() {
    const uint32_t cap = cap_ == 0 ? 4 : cap_ * 2;
    std::unique_ptr<SharedFrame[]> b(new SharedFrame[cap]);
    for (uint32_t i = 0; i < size_; ++i) b[i] = std::move(buf_[(head_ + i) & (cap_ - 1)]);
    buf_ = std::move(b);
    cap_ = cap;
    head_ = 0;
  }
  void release() noexcept {
    buf_.reset();
    cap_ = 0;
    head_ = 0;
  }

  std::unique_ptr<SharedFrame[]> buf_;
  uint32_t cap_ = 0;  // a power of two, or 0
  uint32_t head_ = 0;
  uint32_t size_ = 0;
};

}  // namespace detail

class SendQueue {
 public:
  SendQueue(size_t max_bytes, size_t max_frames)
      : max_bytes_(static_cast<uint32_t>(std::min<size_t>(max_bytes, UINT32_MAX))),
        max_frames_(static_cast<uint32_t>(std::min<size_t>(max_frames, UINT32_MAX))) {}

  /// Appends a frame; false when the bound would be exceeded (nothing queued).
  bool push(Lane lane, SharedFrame frame) {
    const size_t n = frame->size();
    if (!has_room(n)) return false;
    lane_of(lane).push_back(std::move(frame));
    bytes_ += n;
    ++frames_;
    return true;
  }

  /// Appends a frame ignoring the bounds (the final Error frame of a link).
  void push_unbounded(Lane lane, SharedFrame frame) {
    bytes_ += frame->size();
    ++frames_;
    lane_of(lane).push_back(std::move(frame));
  }

  /// Whether a frame of `n` bytes fits within the bounds now.
  bool has_room(size_t n) const noexcept {
    return frames_ + 1 <= max_frames_ && bytes_ + n <= max_bytes_;
  }
  /// The next frame of `lane` without taking it; nullptr when the lane is empty.
  const SharedFrame* peek(Lane lane) const noexcept {
    const auto& q = lane == Lane::kNormal ? normal_ : marketing_;
    return q.empty() ? nullptr : &q.front();
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
        out.push_back(q->pop_front());
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
    SharedFrame f = q.pop_front();
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
  detail::FrameRing& lane_of(Lane l) { return l == Lane::kNormal ? normal_ : marketing_; }

  uint32_t max_bytes_;
  uint32_t max_frames_;
  size_t bytes_ = 0;
  uint32_t frames_ = 0;
  detail::FrameRing normal_;
  detail::FrameRing marketing_;
};

}  // namespace pushgw::conn_node
