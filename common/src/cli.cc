#include "common/cli.h"

#include <CLI/CLI.hpp>

#include "common/version.h"

namespace pushgw::common {
namespace {

/// Thrown by the --help-config callback so that the flag works even when the
/// binary's own required options are missing (like --help).
struct HelpConfigRequested {};

}  // namespace

CommandLine::CommandLine(std::string binary, std::string description)
    : binary_(std::move(binary)),
      app_(std::make_unique<CLI::App>(std::move(description), binary_)) {
  app_->add_option("-c,--config", config_file_, "TOML config file (must exist)");
  app_->add_option("--set", overrides_, "override one config key: key=value (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  app_->add_flag_callback(
      "--help-config", [] { throw HelpConfigRequested{}; },
      "list every config key with its default and doc, then exit");
  app_->add_flag("--print-config", print_config_,
                 "print the effective config as TOML (secrets masked), then exit");
  app_->set_version_flag("--version", binary_ + " " + std::string(version()));
}

CommandLine::~CommandLine() = default;

CLI::App& CommandLine::app() { return *app_; }

void CommandLine::set_default_config_file(std::filesystem::path path) {
  default_config_file_ = std::move(path);
}

CommandLine::Next CommandLine::parse_flags(int argc, const char* const* argv, std::ostream& out,
                                           std::ostream& err) {
  try {
    app_->parse(argc, argv);
  } catch (const HelpConfigRequested&) {
    return Next::kHelpConfig;
  } catch (const CLI::ParseError& e) {
    exit_code_ = app_->exit(e, out, err);
    return Next::kExit;
  }
  return Next::kContinue;
}

ConfigSources CommandLine::sources() const {
  ConfigSources s;
  if (!config_file_.empty()) s.file = config_file_;
  s.default_file = default_config_file_;
  s.overrides = overrides_;
  return s;
}

}  // namespace pushgw::common
