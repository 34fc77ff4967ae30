#include "common/redis/command.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace pushgw::redis {
namespace {

std::string sha1_hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha1(), nullptr) != 1) {
    // Only at startup (scripts are built once); fail fast.
    throw std::runtime_error("redis: SHA1 of a Lua script failed (OpenSSL)");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Commands without a key (or whose first argument is not one): sent to any node.
constexpr std::string_view kKeyless[] = {
    "PING",     "ECHO",      "INFO",     "CLUSTER", "SCRIPT",  "AUTH",      "HELLO",   "SELECT",
    "DBSIZE",   "FLUSHALL",  "FLUSHDB",  "TIME",    "CONFIG",  "CLIENT",    "COMMAND", "ASKING",
    "READONLY", "READWRITE", "MULTI",    "EXEC",    "DISCARD", "QUIT",      "DEBUG",   "SLOWLOG",
    "WAIT",     "LASTSAVE",  "ROLE",     "KEYS",    "SCAN",    "RANDOMKEY", "PUBLISH", "FUNCTION",
    "SAVE",     "BGSAVE",    "SHUTDOWN", "MONITOR"};

}  // namespace

Script::Script(std::string source) {
  auto sha = sha1_hex(source);
  data_ = std::make_shared<const Data>(Data{std::move(source), std::move(sha)});
}

Command Script::load_command() const {
  Command c;
  c.arg("SCRIPT").arg("LOAD").arg(source());
  return c;
}

Command::Command(std::initializer_list<std::string_view> args) {
  std::size_t total = 0;
  for (auto a : args) total += a.size();
  buf_.reserve(total);
  ends_.reserve(args.size());
  for (auto a : args) arg(a);
}

Command Command::evalsha(const Script& script, std::size_t num_keys) {
  Command c;
  c.arg("EVALSHA").arg(script.sha1()).arg(num_keys);
  c.script_ = script;
  return c;
}

Command& Command::arg(std::string_view a) {
  buf_.append(a.data(), a.size());
  ends_.push_back(static_cast<std::uint32_t>(buf_.size()));
  return *this;
}

Command& Command::arg_int(std::int64_t v) {
  char tmp[24];
  auto [p, ec] = std::to_chars(tmp, tmp + sizeof(tmp), v);
  return arg(std::string_view(tmp, static_cast<std::size_t>(p - tmp)));
}

Command& Command::arg_uint(std::uint64_t v) {
  char tmp[24];
  auto [p, ec] = std::to_chars(tmp, tmp + sizeof(tmp), v);
  return arg(std::string_view(tmp, static_cast<std::size_t>(p - tmp)));
}

std::string_view Command::operator[](std::size_t i) const {
  std::uint32_t begin = i == 0 ? 0 : ends_[i - 1];
  return std::string_view(buf_).substr(begin, ends_[i] - begin);
}

std::optional<std::string_view> Command::key() const {
  if (ends_.size() < 2) return std::nullopt;
  std::string_view name = (*this)[0];
  if (iequals(name, "EVAL") || iequals(name, "EVALSHA") || iequals(name, "EVAL_RO") ||
      iequals(name, "EVALSHA_RO") || iequals(name, "FCALL") || iequals(name, "FCALL_RO")) {
    if (ends_.size() < 4) return std::nullopt;
    auto n = (*this)[2];
    if (n == "0") return std::nullopt;
    return (*this)[3];
  }
  for (auto k : kKeyless) {
    if (iequals(name, k)) return std::nullopt;
  }
  return (*this)[1];
}

std::string Command::to_string() const {
  std::string out;
  for (std::size_t i = 0; i < ends_.size(); ++i) {
    if (i) out += ' ';
    auto a = (*this)[i];
    if (a.size() > 64) {
      out.append(a.substr(0, 61));
      out += "...";
    } else {
      out.append(a);
    }
  }
  return out;
}

void CommandBuffer::reserve(std::size_t commands, std::size_t bytes) {
  starts_.reserve(commands);
  buf_.reserve(bytes);
}

void CommandBuffer::header(char kind, std::size_t n) {
  char tmp[24];
  tmp[0] = kind;
  auto [p, ec] = std::to_chars(tmp + 1, tmp + sizeof(tmp) - 2, n);
  *p++ = '\r';
  *p++ = '\n';
  buf_.append(tmp, static_cast<std::size_t>(p - tmp));
}

CommandBuffer& CommandBuffer::begin(std::size_t argc) {
  if (left_ != 0 || argc == 0) bad_ = true;
  starts_.push_back(static_cast<std::uint32_t>(buf_.size()));
  header('*', argc);
  left_ = argc;
  return *this;
}

CommandBuffer& CommandBuffer::arg(std::string_view a) {
  if (left_ == 0) {
    bad_ = true;
    return *this;
  }
  --left_;
  header('$', a.size());
  buf_.append(a.data(), a.size());
  buf_.append("\r\n", 2);
  return *this;
}

CommandBuffer& CommandBuffer::arg_int(std::int64_t v) {
  char tmp[24];
  auto [p, ec] = std::to_chars(tmp, tmp + sizeof(tmp), v);
  return arg(std::string_view(tmp, static_cast<std::size_t>(p - tmp)));
}

CommandBuffer& CommandBuffer::arg_uint(std::uint64_t v) {
  char tmp[24];
  auto [p, ec] = std::to_chars(tmp, tmp + sizeof(tmp), v);
  return arg(std::string_view(tmp, static_cast<std::size_t>(p - tmp)));
}

CommandBuffer& CommandBuffer::arg_concat(std::span<const std::string_view> pieces) {
  if (left_ == 0) {
    bad_ = true;
    return *this;
  }
  --left_;
  std::size_t n = 0;
  for (auto piece : pieces) n += piece.size();
  header('$', n);
  for (auto piece : pieces) buf_.append(piece.data(), piece.size());
  buf_.append("\r\n", 2);
  return *this;
}

Command CommandBuffer::command(std::size_t i) const {
  Command c;
  if (!complete() || i >= starts_.size()) return c;
  // Written by this class, so well-formed: *argc then $len/bytes per argument.
  std::string_view v(buf_);
  v.remove_prefix(starts_[i]);
  auto number = [&v]() {
    std::size_t n = 0;
    v.remove_prefix(1);  // '*' or '$'
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    v.remove_prefix(static_cast<std::size_t>(p - v.data()) + 2);  // digits, CRLF
    return n;
  };
  const std::size_t argc = number();
  for (std::size_t k = 0; k < argc; ++k) {
    const std::size_t len = number();
    c.arg(v.substr(0, len));
    v.remove_prefix(len + 2);
  }
  return c;
}

}  // namespace pushgw::redis
