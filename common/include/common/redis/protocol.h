#pragma once
/// RESP encoding and decoding. Replies are parsed by hiredis' redisReader;
/// requests are encoded here (byte-identical to redisFormatCommandArgv, which
/// the unit tests check, but several times cheaper). No hiredis type leaks
/// through this header.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/redis/command.h"
#include "common/redis/reply.h"

namespace pushgw::redis {

/// Appends the RESP encoding of `cmd` to `out`. Fails with
/// errc::invalid_argument for an empty command.
result<void> append_command(std::string& out, const Command& cmd);

/// Incremental RESP reply parser. Feed bytes as they arrive, then take
/// complete replies with next(). Not thread-safe; one per connection.
class ReplyParser {
 public:
  ReplyParser();
  ~ReplyParser();
  ReplyParser(const ReplyParser&) = delete;
  ReplyParser& operator=(const ReplyParser&) = delete;

  /// Buffers `n` bytes. errc::protocol_error once the stream is corrupt.
  result<void> feed(const char* data, std::size_t n);
  /// The next complete reply, nullopt if more bytes are needed, or
  /// errc::protocol_error (the stream is then unusable: reset()).
  result<std::optional<Reply>> next();
  /// Drops buffered bytes and any error (after a reconnect).
  void reset();
  /// hiredis' description of the last protocol error.
  std::string last_error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pushgw::redis
