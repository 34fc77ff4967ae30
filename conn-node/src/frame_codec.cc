#include "conn_node/frame_codec.h"

namespace pushgw::conn_node {

v1::ErrorCode to_error_code(FrameError e) noexcept {
  switch (e) {
    case FrameError::kTooLarge:
      return v1::FRAME_TOO_LARGE;
    case FrameError::kEmpty:
    case FrameError::kMalformed:
      return v1::BAD_FRAME;
    case FrameError::kOk:
      break;
  }
  return v1::ERROR_UNSPECIFIED;
}

uint32_t read_prefix(const unsigned char* p) noexcept {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

FrameError check_length(uint32_t n, uint32_t max_frame_bytes) noexcept {
  if (n == 0) return FrameError::kEmpty;
  if (n > max_frame_bytes) return FrameError::kTooLarge;
  return FrameError::kOk;
}

FrameError parse_body(std::string_view body, v1::Frame& out) {
  if (body.size() > static_cast<size_t>(INT32_MAX)) return FrameError::kMalformed;
  if (!out.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return FrameError::kMalformed;
  }
  if (out.body_case() == v1::Frame::BODY_NOT_SET) return FrameError::kMalformed;
  return FrameError::kOk;
}

void append_framed(const v1::Frame& frame, std::string& out) {
  const size_t n = frame.ByteSizeLong();
  const size_t at = out.size();
  out.resize(at + kPrefixBytes + n);
  auto* p = reinterpret_cast<unsigned char*>(out.data() + at);
  p[0] = static_cast<unsigned char>(n >> 24);
  p[1] = static_cast<unsigned char>(n >> 16);
  p[2] = static_cast<unsigned char>(n >> 8);
  p[3] = static_cast<unsigned char>(n);
  frame.SerializeWithCachedSizesToArray(p + kPrefixBytes);
}

std::string encode_framed(const v1::Frame& frame) {
  std::string out;
  append_framed(frame, out);
  return out;
}

bool is_client_frame(const v1::Frame& frame) noexcept {
  switch (frame.body_case()) {
    case v1::Frame::kHello:
    case v1::Frame::kPing:
    case v1::Frame::kAck:
    case v1::Frame::kUpstream:
    case v1::Frame::kSubscribe:
    case v1::Frame::kBye:
      return true;
    default:
      return false;
  }
}

bool valid_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

FrameReader::Status FrameReader::next(v1::Frame& out) {
  if (error_ != FrameError::kOk) return Status::kError;
  if (buffered() < kPrefixBytes) return Status::kNeedMore;
  const uint32_t n = read_prefix(reinterpret_cast<const unsigned char*>(buf_.data() + pos_));
  error_ = check_length(n, max_);
  if (error_ != FrameError::kOk) return Status::kError;
  if (buffered() < kPrefixBytes + n) return Status::kNeedMore;
  error_ = parse_body(std::string_view(buf_).substr(pos_ + kPrefixBytes, n), out);
  if (error_ != FrameError::kOk) return Status::kError;
  pos_ += kPrefixBytes + n;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 4096 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return Status::kFrame;
}

}  // namespace pushgw::conn_node
