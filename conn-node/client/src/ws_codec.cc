#include "pushgw_client/ws_codec.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <cctype>
#include <random>
#include <stdexcept>

namespace pushgw::client::ws {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr size_t kMaxHeadBytes = 8192;

std::string base64(const unsigned char* data, size_t n) {
  std::string out(4 * ((n + 2) / 3), '\0');
  const int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<size_t>(written));
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// True when the comma-separated header value holds `token` (lowercase).
bool has_token(std::string_view value, std::string_view token) {
  const std::string v = lower(value);
  std::string_view rest = v;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    if (trim(rest.substr(0, comma)) == token) return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

bool known_opcode(uint8_t op) { return op <= 0x2 || (op >= 0x8 && op <= 0xA); }

}  // namespace

std::string make_key() {
  std::array<unsigned char, 16> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
    // The key only has to be unpredictable enough to defeat caching proxies.
    thread_local std::mt19937_64 gen{std::random_device{}()};
    for (auto& b : raw) b = static_cast<unsigned char>(gen());
  }
  return base64(raw.data(), raw.size());
}

std::string accept_key(std::string_view key) {
  std::string input(key);
  input.append(kGuid);
  std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest.data());
  return base64(digest.data(), digest.size());
}

std::string upgrade_request(std::string_view host_header, std::string_view target,
                            std::string_view key) {
  std::string out;
  out.reserve(160 + host_header.size() + target.size());
  out.append("GET ").append(target).append(" HTTP/1.1\r\nHost: ").append(host_header);
  out.append(
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Key: ");
  out.append(key).append("\r\nUser-Agent: pushgw-client\r\n\r\n");
  return out;
}

UpgradeStatus check_upgrade_response(std::string_view data, std::string_view key,
                                     size_t& head_bytes, std::string& why) {
  namespace http = boost::beast::http;
  http::response_parser<http::empty_body> parser;
  parser.eager(false);
  parser.header_limit(kMaxHeadBytes);
  boost::beast::error_code ec;
  const size_t used = parser.put(boost::asio::const_buffer(data.data(), data.size()), ec);
  if (ec == http::error::need_more || (!ec && !parser.is_header_done())) {
    if (data.size() >= kMaxHeadBytes) {
      why = "upgrade response head above 8 KiB";
      return UpgradeStatus::kRejected;
    }
    return UpgradeStatus::kNeedMore;
  }
  if (ec) {
    why = "malformed upgrade response: " + ec.message();
    return UpgradeStatus::kRejected;
  }
  const auto& res = parser.get();
  if (res.result() != http::status::switching_protocols) {
    why = "upgrade refused with HTTP " + std::to_string(res.result_int());
    return UpgradeStatus::kRejected;
  }
  if (!has_token(res[http::field::upgrade], "websocket")) {
    why = "upgrade response without Upgrade: websocket";
    return UpgradeStatus::kRejected;
  }
  if (!has_token(res[http::field::connection], "upgrade")) {
    why = "upgrade response without Connection: upgrade";
    return UpgradeStatus::kRejected;
  }
  if (trim(res[http::field::sec_websocket_accept]) != accept_key(key)) {
    why = "wrong Sec-WebSocket-Accept";
    return UpgradeStatus::kRejected;
  }
  if (res.find(http::field::sec_websocket_extensions) != res.end()) {
    why = "server chose an extension that was not offered";
    return UpgradeStatus::kRejected;
  }
  head_bytes = used;
  return UpgradeStatus::kAccepted;
}

void append_client_frame(Opcode op, std::string_view payload, uint32_t mask_key, std::string& out) {
  const size_t n = payload.size();
  out.push_back(static_cast<char>(0x80 | static_cast<uint8_t>(op)));
  if (n < 126) {
    out.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>(static_cast<uint64_t>(n) >> shift));
    }
  }
  const std::array<unsigned char, 4> mask = {
      static_cast<unsigned char>(mask_key >> 24), static_cast<unsigned char>(mask_key >> 16),
      static_cast<unsigned char>(mask_key >> 8), static_cast<unsigned char>(mask_key)};
  out.append(reinterpret_cast<const char*>(mask.data()), mask.size());
  const size_t at = out.size();
  out.resize(at + n);
  for (size_t i = 0; i < n; ++i) {
    out[at + i] = static_cast<char>(static_cast<unsigned char>(payload[i]) ^ mask[i & 3]);
  }
}

std::string close_payload(uint16_t code, std::string_view reason) {
  std::string out;
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code));
  out.append(reason.substr(0, kMaxControlPayload - 2));
  return out;
}

Reader::Status Reader::fail(std::string why) {
  error_ = std::move(why);
  buf_ = std::string();
  partial_ = std::string();
  pos_ = 0;
  return Status::kError;
}

void Reader::compact() {
  if (pos_ == buf_.size()) {
    // Drop the buffer between messages: idle links keep no memory.
    std::string().swap(buf_);
    pos_ = 0;
  } else if (pos_ > 4096 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
}

Reader::Status Reader::next(Message& out) {
  if (!error_.empty()) return Status::kError;
  for (;;) {
    const size_t avail = buffered();
    if (avail < 2) {
      compact();
      return Status::kNeedMore;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
    const bool fin = (p[0] & 0x80) != 0;
    const uint8_t op = p[0] & 0x0F;
    if ((p[0] & 0x70) != 0) return fail("reserved bits set");
    if ((p[1] & 0x80) != 0) return fail("masked frame from the server");
    if (!known_opcode(op)) return fail("unknown opcode " + std::to_string(op));
    const bool control = (op & 0x8) != 0;
    uint64_t len = p[1] & 0x7F;
    size_t head = 2;
    if (control && (!fin || len > kMaxControlPayload)) {
      return fail("fragmented or oversized control frame");
    }
    if (len == 126) {
      if (avail < 4) return Status::kNeedMore;
      len = (uint64_t{p[2]} << 8) | p[3];
      head = 4;
      if (len < 126) return fail("non-minimal frame length");
    } else if (len == 127) {
      if (avail < 10) return Status::kNeedMore;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
      head = 10;
      if (len >> 63) return fail("frame length with the top bit set");
      if (len <= 0xFFFF) return fail("non-minimal frame length");
    }
    const auto opcode = static_cast<Opcode>(op);
    if (!control) {
      if (opcode == Opcode::kContinuation && !in_message_) {
        return fail("continuation frame without a message");
      }
      if (opcode != Opcode::kContinuation && in_message_) {
        return fail("new message inside a fragmented one");
      }
      const size_t so_far = in_message_ ? partial_.size() : 0;
      if (len > max_ || so_far + len > max_) {
        return fail("message above " + std::to_string(max_) + " bytes");
      }
    }
    if (avail - head < len) return Status::kNeedMore;
    const std::string_view payload(buf_.data() + pos_ + head, static_cast<size_t>(len));
    pos_ += head + static_cast<size_t>(len);

    if (control) {
      out.opcode = opcode;
      out.close_code = 0;
      if (opcode == Opcode::kClose) {
        if (payload.size() == 1) return fail("close frame with a 1-byte payload");
        if (payload.size() >= 2) {
          out.close_code = static_cast<uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                                 static_cast<unsigned char>(payload[1]));
          out.payload.assign(payload.substr(2));
        } else {
          out.close_code = 1005;  // "no status received"
          out.payload.clear();
        }
      } else {
        out.payload.assign(payload);
      }
      compact();
      return Status::kMessage;
    }
    if (opcode != Opcode::kContinuation && fin) {
      out.opcode = opcode;
      out.close_code = 0;
      out.payload.assign(payload);
      compact();
      return Status::kMessage;
    }
    if (opcode != Opcode::kContinuation) {
      partial_op_ = opcode;
      in_message_ = true;
    }
    partial_.append(payload);
    if (fin) {
      out.opcode = partial_op_;
      out.close_code = 0;
      out.payload = std::move(partial_);
      partial_ = std::string();
      in_message_ = false;
      compact();
      return Status::kMessage;
    }
  }
}

}  // namespace pushgw::client::ws
