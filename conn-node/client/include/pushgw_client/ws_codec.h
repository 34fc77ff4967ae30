#pragma once
/// The client half of RFC 6455 as the link needs it: the upgrade request and
/// the check of the server's 101 answer, masked client frames, and an
/// incremental reader of server frames (unmasked, no extensions) that
/// reassembles fragmented messages. Pure code, no I/O; exposed so the framing
/// is unit-tested without sockets.
///
/// The link implements WebSocket itself instead of using a Beast stream: a
/// Beast websocket stream keeps a 4 KiB read buffer and a 4 KiB write buffer
/// per connection, and a timed-out Beast read leaves the stream unusable,
/// while this reader holds no memory between messages and recv() timeouts
/// are harmless. Beast is used to parse the HTTP upgrade response.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pushgw::client::ws {

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

/// Close status codes used by the client.
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseProtocolError = 1002;
/// Largest payload of a control frame.
inline constexpr size_t kMaxControlPayload = 125;

/// A fresh Sec-WebSocket-Key: base64 of 16 random bytes.
std::string make_key();

/// Sec-WebSocket-Accept the server must answer for `key`:
/// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string accept_key(std::string_view key);

/// The HTTP/1.1 upgrade request for `target` (e.g. "/ws") at `host_header`.
std::string upgrade_request(std::string_view host_header, std::string_view target,
                            std::string_view key);

enum class UpgradeStatus { kNeedMore, kAccepted, kRejected };

/// Checks the server's answer to the upgrade request, given the bytes read so
/// far. kAccepted: a complete 101 response with Upgrade: websocket,
/// Connection: upgrade and the right Sec-WebSocket-Accept; `head_bytes` is
/// the size of the response head (bytes after it are already frames).
/// kRejected: a complete other response, a malformed one, or a head above
/// 8 KiB; `why` says what was wrong. kNeedMore: the head is not complete yet.
UpgradeStatus check_upgrade_response(std::string_view data, std::string_view key,
                                     size_t& head_bytes, std::string& why);

/// Appends one unfragmented client frame (FIN set, masked with `mask_key`).
void append_client_frame(Opcode op, std::string_view payload, uint32_t mask_key, std::string& out);

/// A close frame payload: 2-byte big-endian code, then the reason
/// (truncated so the payload stays within 125 bytes).
std::string close_payload(uint16_t code, std::string_view reason);

/// One complete message or control frame from the server.
struct Message {
  Opcode opcode = Opcode::kBinary;  // kText, kBinary, kClose, kPing or kPong
  std::string payload;              // close frames: the reason only
  uint16_t close_code = 0;          // close frames: the status code (1005 when none)
};

/// Incremental reader of server-to-client frames. After an error it stays
/// failed (the link must be closed, with status 1002). Between messages it
/// keeps no buffer memory.
class Reader {
 public:
  /// `max_message_bytes` bounds one reassembled data message.
  explicit Reader(size_t max_message_bytes) : max_(max_message_bytes) {}

  void feed(std::string_view bytes) { buf_.append(bytes); }

  enum class Status { kMessage, kNeedMore, kError };
  /// Decodes the next message or control frame into `out`; control frames
  /// may arrive between the fragments of a data message.
  Status next(Message& out);

  /// Why the reader failed (empty while it has not).
  const std::string& error() const noexcept { return error_; }
  size_t buffered() const noexcept { return buf_.size() - pos_; }

 private:
  Status fail(std::string why);
  void compact();

  size_t max_;
  std::string buf_;
  size_t pos_ = 0;
  std::string partial_;  // fragments of the current data message
  Opcode partial_op_ = Opcode::kBinary;
  bool in_message_ = false;
  std::string error_;
};

}  // namespace pushgw::client::ws
