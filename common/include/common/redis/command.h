#pragma once
/// Commands and Lua scripts as values. A Command owns its arguments (packed in
/// one buffer) and knows which argument is its key, which the cluster client
/// uses to route it. A Script carries its source and SHA1 so the client can
/// send EVALSHA and fall back to EVAL when a node answers NOSCRIPT.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pushgw::redis {

class Command;

/// A Lua script. Cheap to copy (shared immutable data). Thread-safe.
/// Two Scripts are equal when their SHA1s are.
class Script {
 public:
  explicit Script(std::string source);
  const std::string& source() const { return data_->source; }
  /// Lower-case hex SHA1 of the source, as Redis computes it.
  const std::string& sha1() const { return data_->sha1; }
  /// `SCRIPT LOAD <source>`.
  Command load_command() const;
  bool operator==(const Script& o) const { return sha1() == o.sha1(); }

 private:
  struct Data {
    std::string source;
    std::string sha1;
  };
  std::shared_ptr<const Data> data_;
};

class Command {
 public:
  Command() = default;
  /// `Command{"SET", key, value}`.
  Command(std::initializer_list<std::string_view> args);

  /// `EVALSHA <sha> <num_keys>`; append the keys, then the arguments, with arg().
  /// If a node answers NOSCRIPT the client sends `SCRIPT LOAD <source>` there
  /// and retries (see client.h).
  static Command evalsha(const Script& script, std::size_t num_keys);

  Command& arg(std::string_view a);
  template <std::integral T>
  Command& arg(T v) {
    if constexpr (std::is_same_v<T, bool>) {
      return arg(std::string_view(v ? "1" : "0"));
    } else if constexpr (std::is_signed_v<T>) {
      return arg_int(static_cast<std::int64_t>(v));
    } else {
      return arg_uint(static_cast<std::uint64_t>(v));
    }
  }
  Command& arg(const char* a) { return arg(std::string_view(a)); }
  Command& arg(const std::string& a) { return arg(std::string_view(a)); }
  /// Decimal integer arguments.
  Command& arg_int(std::int64_t v);
  Command& arg_uint(std::uint64_t v);

  std::size_t size() const { return ends_.size(); }
  bool empty() const { return ends_.empty(); }
  std::string_view operator[](std::size_t i) const;

  /// The key this command is routed by in a cluster: the first key of EVAL /
  /// EVALSHA (if numkeys > 0), nothing for key-less commands (PING, INFO,
  /// CLUSTER, SCRIPT, ...), otherwise the first argument. Multi-key commands
  /// are routed by their first key; Redis answers CROSSSLOT if the others
  /// live elsewhere.
  std::optional<std::string_view> key() const;

  /// The script of an evalsha() command.
  const std::optional<Script>& script() const { return script_; }

  /// `SET k v` style rendering for logs (long arguments are shortened).
  std::string to_string() const;

 private:
  std::string buf_;
  std::vector<std::uint32_t> ends_;
  std::optional<Script> script_;
};

/// Many plain commands encoded straight into one RESP buffer, for hot paths
/// that send thousands of commands at once (no Command object, no
/// allocation per command). Scripts (EVALSHA) are not supported: they need
/// the NOSCRIPT retry that only Command carries.
///
///   CommandBuffer b;
///   b.begin(2).arg("GET").arg_concat({prefix, ":d:{", app, ":", dev, "}"});
///
/// Each begin(argc) must be followed by exactly argc arguments; otherwise the
/// buffer is not complete() and Client::exec_buffer() fails every command
/// with errc::invalid_argument.
class CommandBuffer {
 public:
  void reserve(std::size_t commands, std::size_t bytes);
  /// Starts the next command, of `argc` (>= 1) arguments.
  CommandBuffer& begin(std::size_t argc);
  CommandBuffer& arg(std::string_view a);
  CommandBuffer& arg_int(std::int64_t v);
  CommandBuffer& arg_uint(std::uint64_t v);
  /// One argument written from pieces (e.g. a key from a prefix and ids)
  /// without building it first.
  CommandBuffer& arg_concat(std::span<const std::string_view> pieces);
  CommandBuffer& arg_concat(std::initializer_list<std::string_view> pieces) {
    return arg_concat(std::span<const std::string_view>(pieces.begin(), pieces.size()));
  }

  /// Commands begun.
  std::size_t size() const { return starts_.size(); }
  bool empty() const { return starts_.empty(); }
  /// Every command has all its arguments (and no extra ones).
  bool complete() const { return left_ == 0 && !bad_; }
  /// The RESP bytes of all commands.
  std::string_view bytes() const { return buf_; }
  /// Command `i` as a Command (the cluster client routes by key); empty if
  /// the buffer is not complete() or `i` is out of range.
  Command command(std::size_t i) const;

 private:
  void header(char kind, std::size_t n);
  std::string buf_;
  std::vector<std::uint32_t> starts_;  // offset of each command in buf_
  std::size_t left_ = 0;               // arguments the current command still needs
  bool bad_ = false;
};

}  // namespace pushgw::redis
