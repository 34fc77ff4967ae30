// kafka-dev-broker: runs librdkafka's mock Kafka cluster until SIGTERM/SIGINT.
// flags -> start cluster -> pre-create topics -> publish bootstrap -> wait.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "common/bus/mock_cluster.h"
#include "common/bus/types.h"

namespace {

constexpr const char* kDescription =
    "kafka-dev-broker: librdkafka's mock Kafka cluster (a real Kafka protocol server on "
    "127.0.0.1) for tests and the single-box run.\n"
    "DATA IS KEPT IN MEMORY ONLY and lost when the process exits; nothing is replicated. "
    "Production uses a real Kafka cluster.\n"
    "Listen ports are chosen by librdkafka 2.0.2 (it cannot bind fixed ports): clients find the "
    "brokers through stdout or --bootstrap-file.";

// "name:partitions,name" -> specs; nullopt (and a message) on a bad item.
std::optional<std::vector<pushgw::bus::TopicSpec>> parse_topics(const std::string& text,
                                                                std::string& error) {
  std::vector<pushgw::bus::TopicSpec> out;
  std::size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    std::size_t end = text.find(',', start);
    std::string item =
        text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    pushgw::bus::TopicSpec spec;
    std::size_t colon = item.rfind(':');
    spec.name = item.substr(0, colon);
    if (colon != std::string::npos) {
      const std::string count = item.substr(colon + 1);
      auto [ptr, ec] = std::from_chars(count.data(), count.data() + count.size(), spec.partitions);
      if (ec != std::errc() || ptr != count.data() + count.size() || spec.partitions < 1 ||
          spec.partitions > 10'000) {
        error = "--topics: bad partition count in \"" + item + "\" (expected name:N, N >= 1)";
        return std::nullopt;
      }
    }
    if (spec.name.empty()) {
      error = "--topics: empty topic name in \"" + item + "\"";
      return std::nullopt;
    }
    out.push_back(std::move(spec));
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
  return out;
}

// Writes `content` to `path` atomically (temp file in the same directory, then
// rename), so readers never see a partial file.
bool write_atomically(const std::filesystem::path& path, const std::string& content,
                      std::string& error) {
  const std::filesystem::path tmp =
      path.string() + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content << '\n';
    out.flush();
    if (!out) {
      error = "cannot write " + tmp.string() + ": " + std::strerror(errno);
      return false;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    error = "cannot rename " + tmp.string() + " to " + path.string() + ": " + ec.message();
    std::filesystem::remove(tmp, ec);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{kDescription, "kafka-dev-broker"};
  int brokers = 1;
  std::string topics_text;
  std::string bootstrap_file;
  std::string log_level = "info";
  app.add_option("--brokers", brokers, "Number of mock brokers (ids 1..N)")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  app.add_option("--topics", topics_text,
                 "Topics to pre-create, comma separated: name[:partitions] (default 1 partition)");
  app.add_option("--bootstrap-file", bootstrap_file,
                 "Write the bootstrap servers to this file (atomically: temp file + rename); "
                 "removed on exit");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // stdout carries the bootstrap line for scripts; logs go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("kafka-dev-broker"));
  spdlog::set_level(spdlog::level::from_str(log_level));

  std::string error;
  auto topics = parse_topics(topics_text, error);
  if (!topics) {
    std::cerr << error << "\n";
    return 2;
  }

  // Block the stop signals before librdkafka starts its threads (they
  // inherit the mask), so only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto cluster = pushgw::bus::MockCluster::start(brokers);
  if (!cluster) {
    spdlog::error("cannot start the mock cluster: {}", cluster.error().message());
    return 1;
  }
  for (const auto& t : *topics) {
    if (auto r = (*cluster)->create_topic(t.name, t.partitions, brokers); !r) {
      spdlog::error("cannot create topic \"{}\": {}", t.name, r.error().message());
      return 2;
    }
    spdlog::info("topic {} with {} partition(s)", t.name, t.partitions);
  }
  const std::string& bootstrap = (*cluster)->bootstrap_servers();
  if (!bootstrap_file.empty() && !write_atomically(bootstrap_file, bootstrap, error)) {
    spdlog::error("{}", error);
    return 1;
  }
  std::cout << bootstrap << std::endl;
  spdlog::info("{} broker(s) at {} (in memory only; stop with SIGTERM or SIGINT)", brokers,
               bootstrap);

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  spdlog::info("signal {}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  if (!bootstrap_file.empty()) {
    std::error_code ec;
    std::filesystem::remove(bootstrap_file, ec);
    if (ec) {
      spdlog::warn("cannot remove {}: {}", bootstrap_file, ec.message());
    }
  }
  cluster->reset();
  spdlog::info("stopped");
  return 0;
}
