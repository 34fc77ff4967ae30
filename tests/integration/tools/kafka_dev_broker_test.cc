// kafka-dev-broker as a process: it publishes its bootstrap servers, serves
// a produce/consume round trip with the pre-created topics, and stops cleanly
// on SIGTERM (removing the bootstrap file).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "../bus/run_util.h"
#include "common/bus/kafka.h"
#include "testsupport/process.h"
#include "testsupport/temp_dir.h"

namespace pushgw {
namespace {

using namespace std::chrono_literals;
using bus::testing::await_for;
using Clock = std::chrono::steady_clock;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool wait_for_file(const std::filesystem::path& p, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (std::filesystem::exists(p)) {
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  return std::filesystem::exists(p);
}

TEST(KafkaDevBroker, ServesARoundTripAndStopsOnSigterm) {
  testsupport::TempDir dir("kafka-dev-broker");
  const auto bootstrap_file = dir.file("bootstrap");
  const auto stdout_file = dir.file("stdout");
  testsupport::SpawnOptions options;
  options.stdout_path = stdout_file.string();
  options.stderr_path = dir.file("stderr").string();
  auto proc = testsupport::Process::spawn(
      {KAFKA_DEV_BROKER_BIN, "--brokers", "2", "--topics", "devtest.a:3,devtest.b",
       "--bootstrap-file", bootstrap_file.string()},
      options);

  ASSERT_TRUE(wait_for_file(bootstrap_file, 10s)) << slurp(dir.file("stderr"));
  std::string bootstrap = slurp(bootstrap_file);
  ASSERT_FALSE(bootstrap.empty());
  ASSERT_EQ(bootstrap.back(), '\n');
  bootstrap.pop_back();
  EXPECT_TRUE(std::regex_match(bootstrap, std::regex(R"(127\.0\.0\.1:\d+,127\.0\.0\.1:\d+)")))
      << bootstrap;
  // The same line is printed on stdout.
  EXPECT_EQ(slurp(stdout_file), bootstrap + "\n");

  bus::KafkaConfig kafka;
  kafka.bootstrap_servers = bootstrap;
  kafka.client_id = "dev-broker-test";
  auto topics = bus::ensure_topics(kafka, {{"devtest.a", 3}, {"devtest.b", 1}});
  ASSERT_TRUE(topics) << topics.error().message();
  EXPECT_EQ(*topics,
            (std::vector<bus::TopicInfo>{{"devtest.a", 3, false}, {"devtest.b", 1, false}}));

  boost::asio::io_context ctx;
  bus::ProducerConfig pcfg;
  pcfg.kafka = kafka;
  pcfg.message_timeout = 10s;
  auto producer = bus::make_kafka_producer(pcfg);
  auto delivered =
      await_for(ctx, producer->produce(bus::OutRecord{"devtest.a", "dev", "hello", {}, 2}), 15s);
  ASSERT_TRUE(delivered && *delivered) << (delivered ? delivered->error().message() : "timeout");
  EXPECT_EQ((*delivered)->partition, 2);
  EXPECT_EQ((*delivered)->offset, 0);
  producer->close(1s);

  bus::ConsumerConfig ccfg;
  ccfg.kafka = kafka;
  ccfg.kafka.properties = {{"topic.metadata.refresh.interval.ms", "500"}};
  ccfg.group_id = "dev-broker-test";
  ccfg.session_timeout = 3s;
  ccfg.heartbeat_interval = 500ms;
  auto consumer = bus::make_kafka_consumer(ccfg, ctx.get_executor());
  ASSERT_TRUE(consumer->subscribe({"devtest.a"}));
  std::vector<bus::Record> got;
  const auto deadline = Clock::now() + 20s;
  while (got.empty() && Clock::now() < deadline) {
    auto batch = await_for(ctx, consumer->next_batch(10, 200ms), 5s);
    ASSERT_TRUE(batch && *batch);
    got = std::move(**batch);
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "hello");
  EXPECT_EQ(got[0].partition, 2);
  consumer->mark_processed(got);
  ASSERT_TRUE(await_for(ctx, consumer->close(), 15s));

  proc.signal(SIGTERM);
  auto status = proc.wait(10s);
  ASSERT_TRUE(status.has_value()) << "did not stop on SIGTERM";
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_FALSE(std::filesystem::exists(bootstrap_file));
  // No temp file left behind either.
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find("bootstrap"), std::string::npos) << e.path();
  }
}

TEST(KafkaDevBroker, SigintStopsItToo) {
  testsupport::TempDir dir("kafka-dev-broker");
  const auto bootstrap_file = dir.file("bs");
  auto proc = testsupport::Process::spawn(
      {KAFKA_DEV_BROKER_BIN, "--bootstrap-file", bootstrap_file.string()});
  ASSERT_TRUE(wait_for_file(bootstrap_file, 10s));
  proc.signal(SIGINT);
  auto status = proc.wait(10s);
  ASSERT_TRUE(status && WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_FALSE(std::filesystem::exists(bootstrap_file));
}

TEST(KafkaDevBroker, BadArgumentsFailFastWithoutAFile) {
  testsupport::TempDir dir("kafka-dev-broker");
  const auto bootstrap_file = dir.file("bs");
  const auto out = dir.file("out").string();
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--topics", "x:0"},
                                               {"--topics", "x:many"},
                                               {"--topics", ",x"},
                                               {"--topics", "bad/name:1"},
                                               {"--brokers", "0"},
                                               {"--no-such-flag"}}) {
    std::vector<std::string> argv{KAFKA_DEV_BROKER_BIN, "--bootstrap-file",
                                  bootstrap_file.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    const int code = testsupport::run_command(argv, 10s, out);
    EXPECT_NE(code, 0) << args.front() << " " << args.back();
    EXPECT_NE(code, -1) << "did not exit by itself";
    EXPECT_FALSE(std::filesystem::exists(bootstrap_file));
  }
  // --help says the data is in memory only.
  ASSERT_EQ(testsupport::run_command({KAFKA_DEV_BROKER_BIN, "--help"}, 10s, out), 0);
  EXPECT_NE(slurp(out).find("IN MEMORY ONLY"), std::string::npos) << slurp(out);
}

}  // namespace
}  // namespace pushgw
