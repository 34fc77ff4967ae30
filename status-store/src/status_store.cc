#include "status_store/status_store.h"

namespace pushgw::status_store {

namespace asio = boost::asio;

asio::awaitable<result<std::vector<std::string>>> StatusStore::user_known_devices(
    std::string app_id, std::string user_id) {
  co_return co_await user_devices(std::move(app_id), std::move(user_id));
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
