#pragma once
// tcp and tls links: length-prefixed frames over a ByteStream.
//
// Reading: the link waits for readability with no buffer of its own, then
// reads with non-blocking calls into its worker's shared scratch buffer and
// parses every whole frame there; only the tail of a frame split across
// reads is copied into the link (in_), and released once completed.
// Writing: queued frames are gathered into one write (a single frame is
// written straight from its shared buffer); only bytes the socket did not
// take are copied into out_, and a short coroutine waits for writability.
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string>

#include "byte_stream.h"
#include "link.h"

namespace pushgw::conn_node {

class StreamLink final : public Link {
 public:
  StreamLink(Worker& worker, ListenerKind kind, uint64_t id, Socket socket);
  ~StreamLink() override;

 protected:
  boost::asio::awaitable<void> run() override;
  void flush() override;
  void abort_transport() override;
  void close_transport_gracefully() override;
  bool write_blocked() const override { return writing_; }
  bool tls_resumed() const override;

 private:
  static boost::asio::awaitable<void> wait_and_flush(std::shared_ptr<StreamLink> self, Io want);
  /// Waits for the socket to become readable / writable; false when closed.
  boost::asio::awaitable<bool> wait(Io want);
  IoOutcome read_into_input();
  /// 1: a frame was taken from in_; 0: need more bytes; -1: bad input (Error queued).
  int take_first_frame(v1::Frame& out);
  void consume(const char* data, size_t size);
  /// Handles every whole frame in [data, data+size); returns the bytes used.
  size_t parse_frames(const char* data, size_t size);

  ByteStream stream_;
  std::string in_;   // partial input frame (empty while idle)
  std::string out_;  // bytes not yet taken by the socket (empty while idle)
  size_t out_off_ = 0;
  bool writing_ = false;  // a coroutine waits for writability
};

}  // namespace pushgw::conn_node
