#pragma once
/// Error codes shared by the common layer (config, Redis client, bus).
/// Likely failures are returned as values: boost::system::result<T> with these
/// codes (or system/asio codes) inside; exceptions are reserved for startup.
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <type_traits>

namespace pushgw {

enum class errc {
  ok = 0,
  invalid_argument = 1,  // caller passed something malformed
  not_found = 2,         // the key / device / node does not exist
  stale_epoch = 3,       // a newer registration exists; the write was refused
  unavailable = 4,       // dependency (Redis, Kafka) unreachable or down
  timeout = 5,           // the dependency did not answer in time
  protocol_error = 6,    // the dependency answered something unexpected
  shutting_down = 7,     // the component is stopping
  queue_full = 8,        // a bounded queue refused the item
  redirect_limit = 9,    // Redis Cluster redirects did not converge
  bad_message = 10,      // undecodable record / frame
  rejected = 11,         // the peer refused the request (e.g. Kafka permanent error)
};

const boost::system::error_category& pushgw_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), pushgw_category()};
}

template <class T>
using result = boost::system::result<T>;

}  // namespace pushgw

namespace boost::system {
template <>
struct is_error_code_enum<pushgw::errc> : std::true_type {};
}  // namespace boost::system
