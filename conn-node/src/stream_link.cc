#include "stream_link.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>

#include "common/spawn.h"
#include "conn_node/frame_codec.h"
#include "node_core.h"
#include "tls_context.h"
#include "worker.h"

namespace pushgw::conn_node {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::use_awaitable;

StreamLink::StreamLink(Worker& worker, ListenerKind kind, uint64_t id, Socket socket)
    : Link(worker, kind, id), stream_(std::move(socket)) {}

StreamLink::~StreamLink() = default;

asio::awaitable<bool> StreamLink::wait(Io want) {
  const auto what = want == Io::kWantWrite ? asio::socket_base::wait_write
                                           : asio::socket_base::wait_read;
  auto [ec] = co_await stream_.socket().async_wait(what, as_tuple(use_awaitable));
  co_return !ec && stream_.is_open();
}

asio::awaitable<void> StreamLink::run() {
  if (kind() == ListenerKind::kTls) {
    const TlsContext* tls = core().tls();
    if (tls == nullptr || !stream_.start_tls(*tls)) co_return;
    for (;;) {
      const IoOutcome r = stream_.handshake();
      if (r.io == Io::kDone) break;
      if ((r.io != Io::kWantRead && r.io != Io::kWantWrite) || !co_await wait(r.io)) {
        core().metrics().handshake_failures[static_cast<int>(kind())]->Increment();
        co_return;
      }
    }
  }
  on_handshake_done();

  // Hello phase: gather bytes in in_ until one whole frame is there.
  bool admitted = false;
  while (!closing()) {
    v1::Frame first;
    const int got = take_first_frame(first);
    if (got < 0) break;  // bad framing, Error queued
    if (got > 0) {
      admitted = co_await on_first_frame(std::move(first));
      break;
    }
    const IoOutcome r = read_into_input();
    if (r.io == Io::kDone) continue;
    if (r.io == Io::kClosed || r.io == Io::kError || !co_await wait(r.io)) co_return;
  }
  if (admitted && !in_.empty()) {
    std::string rest;
    rest.swap(in_);
    consume(rest.data(), rest.size());
  }
  in_.clear();

  // Session (or, once closing, discard until the peer goes away).
  char* scratch = worker().scratch();
  for (;;) {
    const IoOutcome r = stream_.read(scratch, Worker::kScratchBytes);
    if (r.io == Io::kDone) {
      consume(scratch, r.n);
      continue;
    }
    if (r.io == Io::kClosed || r.io == Io::kError) co_return;
    if (!co_await wait(r.io)) co_return;
  }
}

IoOutcome StreamLink::read_into_input() {
  char* scratch = worker().scratch();
  const IoOutcome r = stream_.read(scratch, Worker::kScratchBytes);
  if (r.io == Io::kDone) in_.append(scratch, r.n);
  return r;
}

int StreamLink::take_first_frame(v1::Frame& out) {
  if (in_.size() < kPrefixBytes) return 0;
  const uint32_t n = read_prefix(reinterpret_cast<const unsigned char*>(in_.data()));
  const FrameError le = check_length(n, cfg().limits.max_frame_bytes);
  if (le != FrameError::kOk) {
    in_.clear();
    on_bad_input(to_error_code(le), le == FrameError::kEmpty ? "zero-length frame"
                                                             : "frame exceeds max_frame_bytes");
    return -1;
  }
  if (in_.size() < kPrefixBytes + n) return 0;
  const FrameError pe = parse_body(std::string_view(in_).substr(kPrefixBytes, n), out);
  if (pe != FrameError::kOk) {
    in_.clear();
    on_bad_input(v1::BAD_FRAME, "malformed frame");
    return -1;
  }
  in_.erase(0, kPrefixBytes + n);
  return 1;
}

void StreamLink::consume(const char* data, size_t size) {
  if (closing()) return;  // discard while the final frame goes out
  if (in_.empty()) {
    const size_t used = parse_frames(data, size);
    if (!closing() && used < size) {
      in_.assign(data + used, size - used);
    }
    return;
  }
  in_.append(data, size);
  const size_t used = parse_frames(in_.data(), in_.size());
  if (closing() || used == in_.size()) {
    std::string().swap(in_);  // an idle link keeps no input buffer
  } else {
    in_.erase(0, used);
  }
}

size_t StreamLink::parse_frames(const char* data, size_t size) {
  size_t off = 0;
  const uint32_t max = cfg().limits.max_frame_bytes;
  while (size - off >= kPrefixBytes) {
    const uint32_t n = read_prefix(reinterpret_cast<const unsigned char*>(data + off));
    const FrameError le = check_length(n, max);
    if (le != FrameError::kOk) {
      on_bad_input(to_error_code(le), le == FrameError::kEmpty ? "zero-length frame"
                                                               : "frame exceeds max_frame_bytes");
      return size;
    }
    if (size - off - kPrefixBytes < n) {
      if (in_.empty()) in_.reserve(kPrefixBytes + n);
      break;
    }
    v1::Frame frame;
    if (parse_body(std::string_view(data + off + kPrefixBytes, n), frame) != FrameError::kOk) {
      on_bad_input(v1::BAD_FRAME, "malformed frame");
      return size;
    }
    off += kPrefixBytes + n;
    if (!on_frame(frame)) return size;
  }
  return off;
}

void StreamLink::flush() {
  if (writing_ || closed() || state() == State::kHandshake) return;
  std::vector<SharedFrame> batch;
  for (;;) {
    if (out_off_ < out_.size()) {
      const IoOutcome r = stream_.write(out_.data() + out_off_, out_.size() - out_off_);
      if (r.io == Io::kDone) {
        out_off_ += r.n;
        continue;
      }
      if (r.io == Io::kWantWrite || r.io == Io::kWantRead) {
        writing_ = true;
        common::spawn_logged(worker().executor(),
                             wait_and_flush(std::static_pointer_cast<StreamLink>(shared_from_this()),
                                            r.io),
                             "conn-node write");
        return;
      }
      abort_transport();
      return;
    }
    std::string().swap(out_);
    out_off_ = 0;
    batch.clear();
    if (!take_for_write(batch, cfg().limits.write_batch_frames, cfg().limits.write_batch_bytes)) {
      break;
    }
    if (batch.size() == 1 && !stream_.tls()) {
      // One frame: write it from the shared buffer, copy only a remainder.
      const std::string& f = *batch.front();
      const IoOutcome r = stream_.write(f.data(), f.size());
      if (r.io == Io::kDone && r.n == f.size()) continue;
      if (r.io == Io::kDone || r.io == Io::kWantWrite || r.io == Io::kWantRead) {
        out_.assign(f.data() + r.n, f.size() - r.n);
        continue;
      }
      abort_transport();
      return;
    }
    size_t total = 0;
    for (const auto& f : batch) total += f->size();
    out_.reserve(total);
    for (const auto& f : batch) out_.append(*f);
  }
  on_queue_drained();
}

asio::awaitable<void> StreamLink::wait_and_flush(std::shared_ptr<StreamLink> self, Io want) {
  const bool ok = co_await self->wait(want);
  self->writing_ = false;
  if (!ok) co_return;
  self->flush();
}

void StreamLink::abort_transport() { stream_.close(); }

void StreamLink::close_transport_gracefully() { stream_.shutdown(); }

bool StreamLink::tls_resumed() const { return stream_.resumed(); }

}  // namespace pushgw::conn_node
