#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace pushgw::loadgen {

namespace {
constexpr int64_t kSub = int64_t{1} << Histogram::kSubBits;
}

size_t Histogram::index_of(int64_t value) noexcept {
  if (value < 2 * kSub) return static_cast<size_t>(std::max<int64_t>(value, 0));
  const auto v = static_cast<uint64_t>(value);
  const int msb = 63 - std::countl_zero(v);
  const int shift = msb - kSubBits;
  return (static_cast<size_t>(shift + 1) << kSubBits) +
         static_cast<size_t>((v >> shift) - static_cast<uint64_t>(kSub));
}

int64_t Histogram::lowest_of(size_t index) noexcept {
  if (index < static_cast<size_t>(2 * kSub)) return static_cast<int64_t>(index);
  const int shift = static_cast<int>(index >> kSubBits) - 1;
  const auto mant = static_cast<int64_t>(index & static_cast<size_t>(kSub - 1)) + kSub;
  return mant << shift;
}

int64_t Histogram::highest_of(size_t index) noexcept { return lowest_of(index + 1) - 1; }

void Histogram::record(int64_t value, uint64_t count) {
  if (count == 0) return;
  if (value < 0) {
    clamped_ += count;
    value = 0;
  }
  const size_t i = index_of(value);
  if (i >= counts_.size()) counts_.resize(i + 1, 0);
  counts_[i] += count;
  if (total_ == 0 || value < min_) min_ = value;
  if (total_ == 0 || value > max_) max_ = value;
  total_ += count;
  sum_ += static_cast<long double>(value) * static_cast<long double>(count);
}

void Histogram::merge(const Histogram& o) {
  if (o.total_ == 0) return;
  if (o.counts_.size() > counts_.size()) counts_.resize(o.counts_.size(), 0);
  for (size_t i = 0; i < o.counts_.size(); ++i) counts_[i] += o.counts_[i];
  if (total_ == 0 || o.min_ < min_) min_ = o.min_;
  if (total_ == 0 || o.max_ > max_) max_ = o.max_;
  total_ += o.total_;
  clamped_ += o.clamped_;
  sum_ += o.sum_;
}

double Histogram::mean() const noexcept {
  return total_ ? static_cast<double>(sum_ / static_cast<long double>(total_)) : 0.0;
}

int64_t Histogram::quantile(double q) const {
  if (total_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total_)));
  rank = std::clamp<uint64_t>(rank, 1, total_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(highest_of(i), min_, max_);
  }
  return max_;
}

boost::json::object Histogram::summary() const {
  return boost::json::object{{"count", total_},          {"min", min()},
                             {"max", max()},             {"mean", mean()},
                             {"p50", quantile(0.5)},     {"p90", quantile(0.9)},
                             {"p99", quantile(0.99)},    {"p999", quantile(0.999)}};
}

}  // namespace pushgw::loadgen
