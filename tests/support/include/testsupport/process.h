#pragma once
/// Child processes for tests: spawn with posix_spawn, stop with SIGTERM then
/// SIGKILL, wait with a timeout. Never blocks without a bound.
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace pushgw::testsupport {

struct SpawnOptions {
  /// Files that receive the child's stdout / stderr (empty: /dev/null).
  std::string stdout_path;
  std::string stderr_path;
  /// Working directory of the child (empty: inherit).
  std::string cwd;
};

/// An owned child process. Destruction stops it (SIGTERM, then SIGKILL after
/// a grace period) and reaps it. Not thread-safe.
class Process {
 public:
  Process() = default;
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  /// Starts `argv[0]` (searched in PATH). Throws std::runtime_error if it
  /// cannot be started.
  static Process spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});

  pid_t pid() const { return pid_; }
  /// True while the child has not been reaped (polls without blocking).
  bool running();
  /// Waits up to `timeout` for the child to exit; its wait status, or nullopt.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// SIGTERM, wait up to `grace`, then SIGKILL and reap. Returns the wait status.
  std::optional<int> terminate(std::chrono::milliseconds grace = std::chrono::seconds(3));
  /// SIGKILL and reap.
  void kill();
  /// Sends `sig` without waiting.
  void signal(int sig);

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// Runs `argv` to completion (bounded by `timeout`, killed after it); returns
/// its exit code, or -1 if it did not finish or died from a signal. Output
/// goes to `output_path` if given.
int run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                const std::string& output_path = {});

}  // namespace pushgw::testsupport
