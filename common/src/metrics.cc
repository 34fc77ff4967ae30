#include "common/metrics.h"

#include <dirent.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <sstream>

#include "common/version.h"

namespace pushgw::common {
namespace {

boost::system::error_code last_errno() { return {errno, boost::system::system_category()}; }

}  // namespace

result<ProcessStats> read_process_stats() {
  ProcessStats st;

  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return last_errno();
  uint64_t entries = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++entries;
  }
  ::closedir(dir);
  // The listing includes the descriptor opendir() itself used.
  st.open_fds = entries > 0 ? entries - 1 : 0;

  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return last_errno();
  st.max_fds = lim.rlim_cur == RLIM_INFINITY ? std::numeric_limits<uint64_t>::max() : lim.rlim_cur;

  const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  {
    std::ifstream statm("/proc/self/statm");
    uint64_t size_pages = 0;
    uint64_t resident_pages = 0;
    if (!(statm >> size_pages >> resident_pages)) {
      return boost::system::error_code(errc::protocol_error);
    }
    st.vsize_bytes = size_pages * page;
    st.rss_bytes = resident_pages * page;
  }
  {
    std::ifstream stat("/proc/self/stat");
    std::string line;
    if (!std::getline(stat, line)) return boost::system::error_code(errc::protocol_error);
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) return boost::system::error_code(errc::protocol_error);
    std::istringstream fields(line.substr(close + 1));
    std::string field;
    uint64_t utime = 0;
    uint64_t stime = 0;
    // Fields 3..: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
    // stime
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
      if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    st.cpu_seconds = ticks > 0 ? static_cast<double>(utime + stime) / ticks : 0;
  }
  return st;
}

struct Metrics::Impl {
  Impl(std::string_view binary, const Clock& c)
      : clock(c),
        start_ms(c.now_ms()),
        registry(std::make_shared<prometheus::Registry>()),
        uptime(prometheus::BuildGauge()
                   .Name("pushgw_uptime_seconds")
                   .Help("Seconds since this process started")
                   .Register(*registry)
                   .Add({})),
        start_time(prometheus::BuildGauge()
                       .Name("process_start_time_seconds")
                       .Help("Start time of the process since the Unix epoch in seconds")
                       .Register(*registry)
                       .Add({})),
        open_fds(prometheus::BuildGauge()
                     .Name("process_open_fds")
                     .Help("Number of open file descriptors")
                     .Register(*registry)
                     .Add({})),
        max_fds(prometheus::BuildGauge()
                    .Name("process_max_fds")
                    .Help("Maximum number of open file descriptors (soft limit)")
                    .Register(*registry)
                    .Add({})),
        rss(prometheus::BuildGauge()
                .Name("process_resident_memory_bytes")
                .Help("Resident memory size in bytes")
                .Register(*registry)
                .Add({})),
        vsize(prometheus::BuildGauge()
                  .Name("process_virtual_memory_bytes")
                  .Help("Virtual memory size in bytes")
                  .Register(*registry)
                  .Add({})),
        cpu(prometheus::BuildCounter()
                .Name("process_cpu_seconds_total")
                .Help("Total user and system CPU time spent in seconds")
                .Register(*registry)
                .Add({})) {
    prometheus::BuildGauge()
        .Name("pushgw_build_info")
        .Help("Build of this binary; the value is always 1")
        .Register(*registry)
        .Add({{"binary", std::string(binary)}, {"version", std::string(version())}})
        .Set(1);
    start_time.Set(static_cast<double>(start_ms) / 1000.0);
  }

  void refresh() {
    std::lock_guard<std::mutex> lock(mu);
    const uint64_t now = clock.now_ms();
    uptime.Set(now > start_ms ? static_cast<double>(now - start_ms) / 1000.0 : 0.0);
    if (auto st = read_process_stats()) {
      open_fds.Set(static_cast<double>(st->open_fds));
      max_fds.Set(static_cast<double>(st->max_fds));
      rss.Set(static_cast<double>(st->rss_bytes));
      vsize.Set(static_cast<double>(st->vsize_bytes));
      if (st->cpu_seconds > cpu_reported) {
        cpu.Increment(st->cpu_seconds - cpu_reported);
        cpu_reported = st->cpu_seconds;
      }
    }
  }

  const Clock& clock;
  const uint64_t start_ms;
  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Gauge& uptime;
  prometheus::Gauge& start_time;
  prometheus::Gauge& open_fds;
  prometheus::Gauge& max_fds;
  prometheus::Gauge& rss;
  prometheus::Gauge& vsize;
  prometheus::Counter& cpu;
  std::mutex mu;
  double cpu_reported = 0;
};

Metrics::Metrics(std::string_view binary, const Clock& clock)
    : impl_(std::make_unique<Impl>(binary, clock)) {}

Metrics::~Metrics() = default;

prometheus::Registry& Metrics::registry() { return *impl_->registry; }

std::string Metrics::scrape() {
  impl_->refresh();
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

}  // namespace pushgw::common
