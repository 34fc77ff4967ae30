#include "msg_store/error.h"

#include <string>

namespace pushgw::msg_store {
namespace {

class StoreCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "msg_store"; }
  std::string message(int ev) const override {
    switch (static_cast<store_errc>(ev)) {
      case store_errc::ok:
        return "ok";
      case store_errc::io_error:
        return "message store I/O error";
      case store_errc::no_space:
        return "message store disk full";
      case store_errc::corruption:
        return "message store corrupted";
      case store_errc::locked:
        return "message store held by another instance";
      case store_errc::closed:
        return "message store closed";
      case store_errc::invalid_argument:
        return "invalid message store argument";
      case store_errc::busy:
        return "message store busy";
    }
    return "unknown message store error";
  }
};

}  // namespace

const boost::system::error_category& store_category() noexcept {
  static const StoreCategory category;
  return category;
}

}  // namespace pushgw::msg_store
