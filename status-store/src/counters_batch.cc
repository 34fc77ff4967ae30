// The default StatusStore::incr_counters_batch() and start_counters(), for
// stores (and test doubles) without their own implementation.
#include "status_store/status_store.h"

namespace pushgw::status_store {

boost::asio::awaitable<result<void>> StatusStore::incr_counters_batch(
    std::vector<CounterUpdate> updates) {
  for (auto& u : updates) {
    if (u.set) {
      auto r = co_await start_counters(std::move(u.message_id), std::move(u.deltas), u.ttl);
      if (!r) co_return r.error();
      continue;
    }
    auto r = co_await incr_counters(std::move(u.message_id), std::move(u.deltas), u.ttl);
    if (!r) co_return r.error();
  }
  co_return result<void>{};
}

boost::asio::awaitable<result<void>> StatusStore::start_counters(
    std::string message_id, std::vector<std::pair<std::string, std::int64_t>> fields,
    std::chrono::milliseconds ttl) {
  auto r = co_await incr_counters(std::move(message_id), std::move(fields), ttl);
  if (!r) co_return r.error();
  co_return result<void>{};
}

}  // namespace pushgw::status_store
