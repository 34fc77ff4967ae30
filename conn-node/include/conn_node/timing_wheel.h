#pragma once
/// A hashed timing wheel for per-link deadlines (Hello timeout, heartbeat
/// timeout, replay wait). One wheel per worker thread replaces a steady_timer
/// per link: a link pays one intrusive hook (24 bytes) instead of a timer and
/// its pending wait operation, and a tick costs only the deadlines that fall in it.
///
/// Deadlines are rounded up to the tick. Hooks whose deadline lies beyond one
/// revolution stay in their slot and are skipped until due ("lazy" wheel).
/// Callers usually keep a deadline loose: they schedule once, and when the
/// hook fires they check their real state and schedule again if needed.
///
/// Not thread-safe: owned by one worker thread. Time comes from the caller
/// (milliseconds of any monotonic clock), so unit tests drive it by hand.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pushgw::conn_node {

/// The intrusive part a scheduled object embeds. Destroying a linked hook
/// unlinks it.
class WheelHook {
 public:
  WheelHook() = default;
  ~WheelHook() { unlink(); }
  WheelHook(const WheelHook&) = delete;
  WheelHook& operator=(const WheelHook&) = delete;

  bool scheduled() const noexcept { return next_ != nullptr; }
  /// The tick this hook is due at (valid while scheduled).
  uint64_t due_tick() const noexcept { return due_tick_; }

 private:
  friend class TimingWheel;
  void unlink() noexcept {
    if (next_ == nullptr) return;
    prev_->next_ = next_;
    next_->prev_ = prev_;
    prev_ = next_ = nullptr;
  }
  void link_after(WheelHook& head) noexcept {
    prev_ = &head;
    next_ = head.next_;
    head.next_->prev_ = this;
    head.next_ = this;
  }
  void make_sentinel() noexcept { prev_ = next_ = this; }

  WheelHook* prev_ = nullptr;
  WheelHook* next_ = nullptr;
  uint64_t due_tick_ = 0;
};

class TimingWheel {
 public:
  /// `tick_ms` >= 1; `slots` is rounded up to a power of two.
  TimingWheel(uint32_t tick_ms, uint32_t slots, uint64_t now_ms)
      : tick_ms_(std::max<uint32_t>(tick_ms, 1)), slots_(round_up(slots)),
        heads_(slots_), current_(now_ms / tick_ms_) {
    for (auto& h : heads_) h.make_sentinel();
  }
  ~TimingWheel() {
    for (auto& h : heads_) {
      while (h.next_ != &h) h.next_->unlink();
      h.prev_ = h.next_ = nullptr;
    }
  }
  TimingWheel(const TimingWheel&) = delete;
  TimingWheel& operator=(const TimingWheel&) = delete;

  uint32_t tick_ms() const noexcept { return tick_ms_; }
  size_t size() const noexcept { return size_; }

  /// (Re)schedules `hook` to fire at the first tick at or after `due_ms`
  /// (never earlier than the next tick).
  void schedule(WheelHook& hook, uint64_t due_ms) {
    cancel(hook);
    const uint64_t tick = std::max((due_ms + tick_ms_ - 1) / tick_ms_, current_ + 1);
    hook.due_tick_ = tick;
    hook.link_after(heads_[tick & (slots_ - 1)]);
    ++size_;
  }

  void cancel(WheelHook& hook) noexcept {
    if (!hook.scheduled()) return;
    hook.unlink();
    --size_;
  }

  /// Fires every hook due at or before `now_ms`: each is unlinked before
  /// `on_due(WheelHook&)` runs, which may schedule it again or cancel others.
  template <class F>
  void advance(uint64_t now_ms, F&& on_due) {
    const uint64_t target = now_ms / tick_ms_;
    if (target <= current_) return;
    // After a long stall, one revolution visits every slot once.
    if (target - current_ > slots_) current_ = target - slots_;
    WheelHook local;
    while (current_ < target) {
      // current_ advances before callbacks run, so a hook they schedule
      // "now" lands in the next tick, never in the slot being emptied.
      ++current_;
      WheelHook& head = heads_[current_ & (slots_ - 1)];
      if (head.next_ == &head) continue;
      // Move the slot's list to `local` so callbacks may relink freely.
      local.make_sentinel();
      local.next_ = head.next_;
      local.prev_ = head.prev_;
      local.next_->prev_ = &local;
      local.prev_->next_ = &local;
      head.make_sentinel();
      while (local.next_ != &local) {
        WheelHook* h = local.next_;
        h->unlink();
        if (h->due_tick_ <= target) {
          --size_;
          on_due(*h);
        } else {
          h->link_after(heads_[h->due_tick_ & (slots_ - 1)]);
        }
      }
      local.prev_ = local.next_ = nullptr;
    }
  }

 private:
  static uint32_t round_up(uint32_t n) {
    uint32_t p = 1;
    while (p < n) p <<= 1;
    return p;
  }

  uint32_t tick_ms_;
  uint32_t slots_;
  std::vector<WheelHook> heads_;
  uint64_t current_;
  size_t size_ = 0;
};

}  // namespace pushgw::conn_node
