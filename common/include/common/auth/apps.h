#pragma once
/// The apps of a cluster (push-api.md "Apps"): each has an app_id, an
/// api_secret (signs push API calls), a device_secret (signs device tokens),
/// per-class quotas and the upstream channels its devices may publish to.
///
/// Apps come from one TOML file shared by push-api and conn-node:
///
///   [[app]]
///   id = "demo"
///   api_secret = "..."
///   device_secret = "..."
///   quota_normal_rps = 5000        # requests/s accepted for class normal
///   quota_normal_burst = 10000
///   quota_marketing_rps = 500      # marketing has its own, lower budget
///   quota_marketing_burst = 1000
///   upstream_channels = ["chat", "receipts"]   # ["*"] allows any valid name
///
/// Loading validates everything and throws AppsError (startup only) naming
/// the app and the key. An AppRegistry is immutable after loading and safe to
/// read from any thread.
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pushgw::auth {

class AppsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct AppConfig {
  std::string id;
  std::string api_secret;
  std::string device_secret;
  double quota_normal_rps = 5000;
  double quota_normal_burst = 10000;
  double quota_marketing_rps = 500;
  double quota_marketing_burst = 1000;
  std::vector<std::string> upstream_channels;

  /// Whether devices of this app may publish upstream to `channel`.
  bool upstream_allowed(std::string_view channel) const;
};

class AppRegistry {
 public:
  AppRegistry() = default;
  static AppRegistry load_file(const std::filesystem::path& path);
  /// `origin` names the source in error messages.
  static AppRegistry load_toml(std::string_view toml_text, std::string_view origin = "<text>");

  /// nullptr when the app is unknown.
  const AppConfig* find(std::string_view app_id) const;
  const std::vector<AppConfig>& apps() const { return apps_; }
  size_t size() const { return apps_.size(); }

 private:
  std::vector<AppConfig> apps_;
  std::unordered_map<std::string, size_t> index_;
};

/// Channel names follow the id rule of the device protocol, at most 64 bytes
/// (they become Kafka topic suffixes: pushgw.upstream.<channel>).
bool valid_channel_name(std::string_view channel) noexcept;

}  // namespace pushgw::auth
