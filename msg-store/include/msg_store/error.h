#pragma once
/// Error codes of the message store, registered as a boost::system error
/// category ("msg_store"). Every MessageStore call returns them as values.
#include <boost/system/error_code.hpp>
#include <type_traits>

namespace pushgw::msg_store {

enum class store_errc {
  ok = 0,
  io_error = 1,          ///< the disk refused a read or write (retry later)
  no_space = 2,          ///< the disk is full: writes fail until space returns
  corruption = 3,        ///< the database is damaged; it needs an operator
  locked = 4,            ///< another process (or instance) holds the database
  closed = 5,            ///< the store was closed
  invalid_argument = 6,  ///< malformed ids or parameters
  busy = 7,              ///< RocksDB was busy or timed out; retry
};

const boost::system::error_category& store_category() noexcept;

inline boost::system::error_code make_error_code(store_errc e) noexcept {
  return {static_cast<int>(e), store_category()};
}

}  // namespace pushgw::msg_store

namespace boost::system {
template <>
struct is_error_code_enum<pushgw::msg_store::store_errc> : std::true_type {};
}  // namespace boost::system
