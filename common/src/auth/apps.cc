#include "common/auth/apps.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <set>

namespace pushgw::auth {

namespace {

bool valid_app_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

const std::set<std::string, std::less<>> kKeys = {
    "id",
    "api_secret",
    "device_secret",
    "quota_normal_rps",
    "quota_normal_burst",
    "quota_marketing_rps",
    "quota_marketing_burst",
    "upstream_channels",
};

double number(const toml::table& t, std::string_view key, double def, std::string_view where) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return def;
  double v = 0;
  if (auto i = n->value_exact<int64_t>()) {
    v = static_cast<double>(*i);
  } else if (auto d = n->value_exact<double>()) {
    v = *d;
  } else {
    throw AppsError(fmt::format("{}: key '{}' must be a number", where, key));
  }
  if (!(v > 0)) throw AppsError(fmt::format("{}: key '{}' must be > 0, got {}", where, key, v));
  return v;
}

std::string string_key(const toml::table& t, std::string_view key, std::string_view where) {
  const toml::node* n = t.get(key);
  if (n == nullptr) throw AppsError(fmt::format("{}: missing key '{}'", where, key));
  auto s = n->value_exact<std::string>();
  if (!s) throw AppsError(fmt::format("{}: key '{}' must be a string", where, key));
  if (s->empty()) throw AppsError(fmt::format("{}: key '{}' must not be empty", where, key));
  return *s;
}

AppRegistry build(const toml::table& root, std::string_view origin, std::vector<AppConfig>& out) {
  for (auto&& [k, v] : root) {
    if (k.str() != "app") {
      throw AppsError(
          fmt::format("{}: unknown top-level key '{}' (expected [[app]] tables)", origin, k.str()));
    }
  }
  const toml::array* arr = root["app"].as_array();
  if (arr == nullptr) throw AppsError(fmt::format("{}: no [[app]] tables", origin));
  std::set<std::string> seen;
  size_t idx = 0;
  for (const toml::node& n : *arr) {
    const toml::table* t = n.as_table();
    std::string where = fmt::format("{}: app #{}", origin, idx + 1);
    if (t == nullptr) throw AppsError(where + " is not a table");
    for (auto&& [k, v] : *t) {
      if (!kKeys.contains(k.str())) {
        throw AppsError(fmt::format("{}: unknown key '{}'", where, k.str()));
      }
    }
    AppConfig a;
    a.id = string_key(*t, "id", where);
    where = fmt::format("{}: app '{}'", origin, a.id);
    if (!valid_app_id(a.id)) {
      throw AppsError(where + ": id must be 1..128 bytes of [A-Za-z0-9._:-]");
    }
    if (!seen.insert(a.id).second) throw AppsError(where + ": duplicate app id");
    a.api_secret = string_key(*t, "api_secret", where);
    a.device_secret = string_key(*t, "device_secret", where);
    a.quota_normal_rps = number(*t, "quota_normal_rps", a.quota_normal_rps, where);
    a.quota_normal_burst = number(*t, "quota_normal_burst", a.quota_normal_burst, where);
    a.quota_marketing_rps = number(*t, "quota_marketing_rps", a.quota_marketing_rps, where);
    a.quota_marketing_burst = number(*t, "quota_marketing_burst", a.quota_marketing_burst, where);
    if (const toml::node* ch = t->get("upstream_channels")) {
      const toml::array* list = ch->as_array();
      if (list == nullptr) throw AppsError(where + ": key 'upstream_channels' must be a list");
      for (const toml::node& c : *list) {
        auto s = c.value_exact<std::string>();
        if (!s || (*s != "*" && !valid_channel_name(*s))) {
          throw AppsError(where +
                          ": upstream_channels entries must be \"*\" or names of 1..64 "
                          "bytes of [A-Za-z0-9._:-]");
        }
        a.upstream_channels.push_back(*s);
      }
    }
    out.push_back(std::move(a));
    ++idx;
  }
  return {};
}

}  // namespace

bool valid_channel_name(std::string_view channel) noexcept {
  return channel.size() <= 64 && valid_app_id(channel);
}

bool AppConfig::upstream_allowed(std::string_view channel) const {
  if (!valid_channel_name(channel)) return false;
  for (const auto& c : upstream_channels) {
    if (c == "*" || c == channel) return true;
  }
  return false;
}

AppRegistry AppRegistry::load_toml(std::string_view text, std::string_view origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw AppsError(
        fmt::format("{}: {} (line {})", origin, e.description(), e.source().begin.line));
  }
  AppRegistry reg;
  build(root, origin, reg.apps_);
  for (size_t i = 0; i < reg.apps_.size(); ++i) reg.index_.emplace(reg.apps_[i].id, i);
  return reg;
}

AppRegistry AppRegistry::load_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw AppsError(fmt::format("apps file '{}' does not exist or is not a file", path.string()));
  }
  toml::table root;
  try {
    root = toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    throw AppsError(
        fmt::format("{}: {} (line {})", path.string(), e.description(), e.source().begin.line));
  }
  AppRegistry reg;
  build(root, path.string(), reg.apps_);
  for (size_t i = 0; i < reg.apps_.size(); ++i) reg.index_.emplace(reg.apps_[i].id, i);
  return reg;
}

const AppConfig* AppRegistry::find(std::string_view app_id) const {
  auto it = index_.find(std::string(app_id));
  return it == index_.end() ? nullptr : &apps_[it->second];
}

}  // namespace pushgw::auth
