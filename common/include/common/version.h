#pragma once
#include <string_view>

namespace pushgw {
/// The pushgw release this binary was built from.
std::string_view version() noexcept;
}  // namespace pushgw
