#pragma once
/// The standard command line of every pushgw binary (CLI11):
///   --config FILE        TOML config file (must exist)
///   --set key=value      override one config key; repeatable; applied last
///   --help-config        list every config key with default and doc, exit 0
///   --print-config       print the effective config as TOML (secrets masked), exit 0
///   --version            print "<binary> <version>", exit 0
///   -h, --help           usage, exit 0
/// plus the binary's own flags, added through app() (include <CLI/CLI.hpp>).
///
///   pushgw::common::CommandLine cli("conn-node", "pushgw connection node");
///   cli.app().add_flag("--dry-run", dry_run, "...");
///   auto cfg = cli.parse(argc, argv, schema);
///   if (!cfg) return cli.exit_code();
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "common/config.h"

namespace CLI {
class App;
}

namespace pushgw::common {

class CommandLine {
 public:
  CommandLine(std::string binary, std::string description);
  ~CommandLine();
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;

  /// The CLI11 app, to add the binary's own options before parse().
  CLI::App& app();
  /// A config file read when present and --config is not given.
  void set_default_config_file(std::filesystem::path path);

  /// Parses argv, handles the standard flags and loads the config. Returns the
  /// config, or nullopt when the process should exit now with exit_code():
  /// help/version/--help-config/--print-config (0, written to `out`), a bad
  /// command line (CLI11's code, on `err`) or a config error (2, on `err`).
  template <class T>
  std::optional<T> parse(int argc, const char* const* argv, const ConfigSchema<T>& schema,
                         std::ostream& out = std::cout, std::ostream& err = std::cerr);

  int exit_code() const { return exit_code_; }
  /// The config inputs given on the command line (after parse()).
  ConfigSources sources() const;
  const std::string& binary() const { return binary_; }

 private:
  enum class Next { kContinue, kExit, kHelpConfig };
  Next parse_flags(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

  std::string binary_;
  std::unique_ptr<CLI::App> app_;
  std::string config_file_;
  std::optional<std::filesystem::path> default_config_file_;
  std::vector<std::string> overrides_;
  bool print_config_ = false;
  int exit_code_ = 0;
};

template <class T>
std::optional<T> CommandLine::parse(int argc, const char* const* argv,
                                    const ConfigSchema<T>& schema, std::ostream& out,
                                    std::ostream& err) {
  switch (parse_flags(argc, argv, out, err)) {
    case Next::kExit:
      return std::nullopt;
    case Next::kHelpConfig:
      out << schema.describe();
      exit_code_ = 0;
      return std::nullopt;
    case Next::kContinue:
      break;
  }
  try {
    T cfg = schema.load(sources());
    if (print_config_) {
      out << schema.to_toml(cfg, /*mask_secrets=*/true);
      exit_code_ = 0;
      return std::nullopt;
    }
    return cfg;
  } catch (const ConfigError& e) {
    err << binary_ << ": config error: " << e.what() << "\n";
    exit_code_ = 2;
    return std::nullopt;
  }
}

}  // namespace pushgw::common
