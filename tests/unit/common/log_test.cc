#include "common/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <fstream>
#include <regex>

#include "test_util.h"

namespace pushgw::common {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class Logging : public ::testing::Test {
 protected:
  void TearDown() override { setup_logging(LogConfig{}); }
};

boost::json::object parse_line(const std::string& line) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(line, ec);
  EXPECT_FALSE(ec) << "not JSON: " << line;
  EXPECT_TRUE(v.is_object()) << line;
  return v.is_object() ? v.as_object() : boost::json::object{};
}

TEST_F(Logging, JsonLinesParseAndCarryEveryField) {
  LogCapture capture(LogFormat::kJson);
  const std::string tricky = "quote \" backslash \\ newline \n tab \t bell \x07 caf\xc3\xa9";
  logger("unit")->info("message {} {}", 42, tricky);
  logger("unit")->error("second");
  const auto lines = capture.lines();
  ASSERT_THAT(lines, SizeIs(2));
  for (const auto& l : lines) EXPECT_EQ(l.find('\n'), std::string::npos) << l;

  const auto first = parse_line(lines[0]);
  EXPECT_EQ(first.at("level").as_string(), "info");
  EXPECT_EQ(first.at("logger").as_string(), "unit");
  EXPECT_EQ(first.at("msg").as_string(), "message 42 " + tricky);
  EXPECT_TRUE(first.at("thread").is_number());
  const std::string ts(first.at("ts").as_string());
  EXPECT_TRUE(std::regex_match(ts, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"))) << ts;
  EXPECT_EQ(parse_line(lines[1]).at("level").as_string(), "error");
}

TEST_F(Logging, JsonReplacesInvalidUtf8) {
  LogCapture capture(LogFormat::kJson);
  logger("unit")->warn("bad \xff\xfe bytes \xc3");
  const auto lines = capture.lines();
  ASSERT_THAT(lines, SizeIs(1));
  EXPECT_EQ(parse_line(lines[0]).at("msg").as_string(),
            "bad \xef\xbf\xbd\xef\xbf\xbd bytes \xef\xbf\xbd");
}

TEST_F(Logging, TextIsOneLinePerEvent) {
  LogCapture capture(LogFormat::kText);
  logger("redis")->warn("line one\nline two");
  const auto lines = capture.lines();
  ASSERT_THAT(lines, SizeIs(1));
  EXPECT_TRUE(std::regex_match(
      lines[0],
      std::regex(
          R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warn redis \[\d+\] line one\\nline two)")))
      << lines[0];
}

TEST_F(Logging, LevelsFilterAndComponentsOverride) {
  LogConfig cfg;
  cfg.level = "warn";
  cfg.components = {"chatty=debug"};
  setup_logging(cfg);
  LogCapture capture;
  logger("quiet")->info("hidden");
  logger("quiet")->warn("shown-quiet");
  logger("chatty")->debug("shown-chatty");
  logger("chatty")->trace("hidden-trace");
  const auto lines = capture.lines();
  ASSERT_THAT(lines, SizeIs(2));
  EXPECT_THAT(lines[0], HasSubstr("shown-quiet"));
  EXPECT_THAT(lines[1], HasSubstr("shown-chatty"));

  // Reconfiguring applies to loggers created before.
  cfg.level = "info";
  cfg.components.clear();
  setup_logging(cfg);
  logger("quiet")->info("now-shown");
  logger("chatty")->debug("now-hidden");
  EXPECT_TRUE(capture.contains("now-shown"));
  EXPECT_FALSE(capture.contains("now-hidden"));
}

TEST_F(Logging, CaptureFollowsConfiguredFormat) {
  LogConfig cfg;
  cfg.format = LogFormat::kJson;
  setup_logging(cfg);
  LogCapture capture;
  logger("unit")->info("as json");
  ASSERT_THAT(capture.lines(), SizeIs(1));
  EXPECT_EQ(parse_line(capture.lines()[0]).at("msg").as_string(), "as json");
}

TEST_F(Logging, CapturesAreIndependent) {
  auto outer = std::make_unique<LogCapture>();
  {
    LogCapture inner;
    logger("unit")->info("both");
    EXPECT_TRUE(inner.contains("both"));
  }
  logger("unit")->info("outer only");
  EXPECT_TRUE(outer->contains("both"));
  EXPECT_TRUE(outer->contains("outer only"));
}

TEST_F(Logging, FileSinkWritesJsonLines) {
  testing::ScratchDir dir;
  LogConfig cfg;
  cfg.format = LogFormat::kJson;
  cfg.file = (dir.path() / "out.log").string();
  setup_logging(cfg);
  logger("file")->info("to the file");
  logger("file")->warn("and more");
  flush_logs();
  setup_logging(LogConfig{});  // closes the file
  std::ifstream in(cfg.file);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_THAT(lines, SizeIs(2));
  EXPECT_EQ(parse_line(lines[0]).at("msg").as_string(), "to the file");
  EXPECT_EQ(parse_line(lines[1]).at("level").as_string(), "warn");
}

TEST_F(Logging, BadSettingsAreConfigErrors) {
  LogConfig bad_level;
  bad_level.level = "loud";
  EXPECT_THROW(setup_logging(bad_level), ConfigError);
  LogConfig bad_component;
  bad_component.components = {"redis"};
  EXPECT_THROW(setup_logging(bad_component), ConfigError);
  bad_component.components = {"redis=loud"};
  EXPECT_THROW(setup_logging(bad_component), ConfigError);
  // The parent is a regular file, so the log cannot be created (even as root).
  testing::ScratchDir dir;
  LogConfig bad_file;
  bad_file.file = (dir.write("plain", "") / "x.log").string();
  try {
    setup_logging(bad_file);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr(bad_file.file));
  }
  // A failed setup leaves logging working.
  LogCapture capture;
  logger("unit")->info("still logging");
  EXPECT_THAT(capture.lines(), ElementsAre(HasSubstr("still logging")));
}

TEST_F(Logging, SchemaFieldsLoadLogConfig) {
  struct Cfg {
    LogConfig log;
  };
  ConfigSchema<Cfg> s("");
  add_log_fields(s, &Cfg::log);
  ConfigSources src;
  src.toml_text = "[log]\nlevel = \"debug\"\nformat = \"json\"\ncomponents = [\"redis=trace\"]\n";
  const Cfg c = s.load(src);
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.log.format, LogFormat::kJson);
  EXPECT_EQ(c.log.components, std::vector<std::string>{"redis=trace"});
  src.toml_text = "[log]\nformat = \"xml\"\n";
  EXPECT_THROW(s.load(src), ConfigError);
}

}  // namespace
}  // namespace pushgw::common
