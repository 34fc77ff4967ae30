#include "status_store/status_store.h"

#include <algorithm>

namespace pushgw::status_store {

namespace asio = boost::asio;

asio::awaitable<result<std::vector<std::string>>> StatusStore::user_known_devices(
    std::string app_id, std::string user_id) {
  co_return co_await user_devices(std::move(app_id), std::move(user_id));
}

asio::awaitable<result<std::vector<Resolved>>> StatusStore::resolve(
    std::vector<ResolveRequest> entries) {
  std::vector<Resolved> out(entries.size());
  // Lookups per app (in first-seen order), then the seqs in entry order.
  std::vector<std::string> apps;
  for (const auto& e : entries) {
    if (std::find(apps.begin(), apps.end(), e.app_id) == apps.end()) apps.push_back(e.app_id);
  }
  for (const auto& app : apps) {
    std::vector<std::string> devices;
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].app_id != app) continue;
      devices.push_back(entries[i].device_id);
      idx.push_back(i);
    }
    auto r = co_await lookup(app, std::move(devices));
    if (!r) co_return r.error();
    for (std::size_t k = 0; k < idx.size() && k < r->size(); ++k) {
      if (const auto& st = (*r)[k]) {
        out[idx[k]].route = DeviceRoute{st->node_id, st->epoch, st->connected_at_ms};
      }
    }
  }
  std::vector<DeviceRef> refs;
  std::vector<std::size_t> seq_idx;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (!entries[i].want_seq) continue;
    refs.push_back({entries[i].app_id, entries[i].device_id});
    seq_idx.push_back(i);
  }
  if (refs.empty()) co_return out;
  auto seqs = co_await next_seqs(std::move(refs));
  if (!seqs) co_return seqs.error();
  for (std::size_t k = 0; k < seq_idx.size() && k < seqs->size(); ++k) {
    out[seq_idx[k]].seq = (*seqs)[k];
  }
  co_return out;
}

asio::awaitable<result<std::uint64_t>> StatusStore::online_count(std::string) {
  co_return errc::unavailable;
}

asio::awaitable<result<std::optional<std::string>>> StatusStore::get_idempotency(std::string,
                                                                                 std::string) {
  co_return errc::unavailable;
}

asio::awaitable<result<bool>> StatusStore::replace_idempotency(std::string, std::string,
                                                               std::string, std::string,
                                                               std::chrono::milliseconds) {
  co_return result<bool>(boost::system::in_place_error, make_error_code(errc::unavailable));
}

}  // namespace pushgw::status_store
