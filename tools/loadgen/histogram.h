#pragma once
// A small HdrHistogram-like histogram of non-negative integer values
// (latencies in ms): exact below 2^kSubBits, then log-bucketed with
// 2^kSubBits sub-buckets per power of two, so any recorded value is reported
// within 1/2^kSubBits (< 0.8 %) of itself. Memory grows with the largest
// value (about 128 counters per power of two). Not thread-safe: keep one per
// thread and merge().
#include <cstdint>
#include <vector>

#include <boost/json/value.hpp>

namespace pushgw::loadgen {

class Histogram {
 public:
  static constexpr int kSubBits = 7;

  /// Records `value` `count` times; negative values are recorded as 0 and
  /// counted in clamped().
  void record(int64_t value, uint64_t count = 1);
  void merge(const Histogram& other);

  uint64_t count() const noexcept { return total_; }
  uint64_t clamped() const noexcept { return clamped_; }
  int64_t min() const noexcept { return total_ ? min_ : 0; }
  int64_t max() const noexcept { return total_ ? max_ : 0; }
  double mean() const noexcept;

  /// The value at quantile q (0..1): the highest value equivalent to the
  /// bucket holding the ceil(q * count)-th smallest value, capped at max().
  /// 0 when empty.
  int64_t quantile(double q) const;

  /// Bucket of `value` and the value range of a bucket (for tests).
  static size_t index_of(int64_t value) noexcept;
  static int64_t lowest_of(size_t index) noexcept;
  static int64_t highest_of(size_t index) noexcept;

  /// {"count","min","max","mean","p50","p90","p99","p999"} in ms.
  boost::json::object summary() const;

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  uint64_t clamped_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace pushgw::loadgen
