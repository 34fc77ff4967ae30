#include "testsupport/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace pushgw::testsupport {
namespace {

using namespace std::chrono_literals;

class FileActions {
 public:
  FileActions() { posix_spawn_file_actions_init(&fa_); }
  ~FileActions() { posix_spawn_file_actions_destroy(&fa_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  posix_spawn_file_actions_t* get() { return &fa_; }

 private:
  posix_spawn_file_actions_t fa_;
};

void redirect(FileActions& fa, int fd, const std::string& path) {
  const char* target = path.empty() ? "/dev/null" : path.c_str();
  int flags = path.empty() ? O_WRONLY : (O_WRONLY | O_CREAT | O_APPEND);
  posix_spawn_file_actions_addopen(fa.get(), fd, target, flags, 0644);
}

}  // namespace

Process::~Process() {
  if (pid_ > 0 && !status_) terminate(2s);
}

Process::Process(Process&& other) noexcept : pid_(other.pid_), status_(other.status_) {
  other.pid_ = -1;
  other.status_.reset();
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) terminate(2s);
    pid_ = other.pid_;
    status_ = other.status_;
    other.pid_ = -1;
    other.status_.reset();
  }
  return *this;
}

Process Process::spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) throw std::runtime_error("Process::spawn: empty argv");
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  FileActions fa;
  posix_spawn_file_actions_addopen(fa.get(), 0, "/dev/null", O_RDONLY, 0);
  redirect(fa, 1, options.stdout_path);
  redirect(fa, 2, options.stderr_path.empty() ? options.stdout_path : options.stderr_path);
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(fa.get(), options.cwd.c_str());

  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], fa.get(), nullptr, args.data(), environ);
  if (rc != 0) {
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  Process p;
  p.pid_ = pid;
  return p;
}

bool Process::running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    return false;
  }
  return r == 0;
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  if (status_) return status_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = st;
      return status_;
    }
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

void Process::signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

std::optional<int> Process::terminate(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return std::nullopt;
  if (status_) return status_;
  signal(SIGTERM);
  if (auto st = wait(grace)) return st;
  kill();
  return status_;
}

void Process::kill() {
  if (pid_ <= 0 || status_) return;
  ::kill(pid_, SIGKILL);
  // SIGKILL cannot be caught: the child is gone within moments.
  wait(10s);
}

int run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                const std::string& output_path) {
  auto p = Process::spawn(argv, SpawnOptions{output_path, output_path, {}});
  auto st = p.wait(timeout);
  if (!st) {
    p.kill();
    return -1;
  }
  if (WIFEXITED(*st)) return WEXITSTATUS(*st);
  return -1;
}

}  // namespace pushgw::testsupport
