#include "common/version.h"

namespace pushgw {
std::string_view version() noexcept { return "0.1.0"; }
}  // namespace pushgw
