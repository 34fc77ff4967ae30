#include "common/error.h"

namespace pushgw {
namespace {

class PushgwCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "pushgw"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok: return "ok";
      case errc::invalid_argument: return "invalid argument";
      case errc::not_found: return "not found";
      case errc::stale_epoch: return "stale epoch: a newer registration exists";
      case errc::unavailable: return "dependency unavailable";
      case errc::timeout: return "timed out";
      case errc::protocol_error: return "protocol error";
      case errc::shutting_down: return "shutting down";
      case errc::queue_full: return "queue full";
      case errc::redirect_limit: return "too many cluster redirects";
      case errc::bad_message: return "bad message";
      case errc::rejected: return "rejected by peer";
    }
    return "unknown pushgw error";
  }
};

}  // namespace

const boost::system::error_category& pushgw_category() noexcept {
  static const PushgwCategory cat;
  return cat;
}

}  // namespace pushgw
