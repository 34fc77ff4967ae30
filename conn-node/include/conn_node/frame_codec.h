#pragma once
/// Framing of the device protocol (shared/spec/device-protocol.md):
/// TCP/TLS frames are a 4-byte big-endian length N (1..max_frame_bytes)
/// followed by N bytes of a serialized pushgw.v1.Frame; WebSocket messages
/// carry one serialized Frame with no prefix.
///
/// Everything here is pure and allocation-light; FrameReader is the
/// incremental decoder used by the client library, tests and the fuzz target
/// (the server reads the prefix and body straight into the link instead).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/pushgw.pb.h"

namespace pushgw::conn_node {

inline constexpr uint32_t kDefaultMaxFrameBytes = 65536;
inline constexpr size_t kPrefixBytes = 4;
inline constexpr size_t kMaxIdBytes = 128;

enum class FrameError {
  kOk = 0,
  kEmpty,      // length prefix 0 -> Error{BAD_FRAME}
  kTooLarge,   // length prefix above max_frame_bytes -> Error{FRAME_TOO_LARGE}
  kMalformed,  // body is not a valid Frame, or has no body set -> Error{BAD_FRAME}
};

/// Maps a framing error onto the protocol's error code.
v1::ErrorCode to_error_code(FrameError e) noexcept;

/// Reads the big-endian length of a 4-byte prefix.
uint32_t read_prefix(const unsigned char* p) noexcept;
/// Checks a decoded length against the limit.
FrameError check_length(uint32_t n, uint32_t max_frame_bytes) noexcept;
/// Parses one Frame body; a frame with no `body` set is malformed.
FrameError parse_body(std::string_view body, v1::Frame& out);

/// Serializes `frame` with its 4-byte prefix appended to `out`.
void append_framed(const v1::Frame& frame, std::string& out);
std::string encode_framed(const v1::Frame& frame);

/// Frame kinds a client may send (Hello, Ping, Ack, Upstream, Subscribe, Bye).
bool is_client_frame(const v1::Frame& frame) noexcept;

/// Device protocol id rule: 1..128 bytes of [A-Za-z0-9._:-].
bool valid_id(std::string_view id) noexcept;

/// Incremental decoder over a byte stream (client side, tests, fuzzing).
/// After an error the reader stays failed: the link must be closed.
class FrameReader {
 public:
  explicit FrameReader(uint32_t max_frame_bytes = kDefaultMaxFrameBytes) : max_(max_frame_bytes) {}

  void feed(std::string_view bytes) { buf_.append(bytes); }

  enum class Status { kFrame, kNeedMore, kError };
  /// Decodes the next complete frame into `out`. kError leaves the reason in error().
  Status next(v1::Frame& out);
  FrameError error() const noexcept { return error_; }
  size_t buffered() const noexcept { return buf_.size() - pos_; }

 private:
  uint32_t max_;
  std::string buf_;
  size_t pos_ = 0;
  FrameError error_ = FrameError::kOk;
};

}  // namespace pushgw::conn_node
