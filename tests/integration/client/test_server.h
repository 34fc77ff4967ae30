#pragma once
// A tiny frame server for the client library's integration tests: one
// listener (tcp, tls, ws or wss) on 127.0.0.1 with an ephemeral port, run on
// its own thread with an independent implementation (Asio streams, asio::ssl,
// Beast websocket). It echoes every frame back, except these commands:
//   Hello.app_id "welcome"  -> Welcome{session_id = device_id, heartbeat_s 30,
//                              resume_ticket = the serialized Hello}
//   Hello.app_id "refuse"   -> Error{AUTH_FAILED}, then close
//   Hello.app_id "redirect" -> Redirect{retry_after_ms 500}, then close
//   Hello.app_id "silent"   -> nothing
//   Bye.reason "close"      -> orderly close (FIN / close_notify / ws close)
//   Bye.reason "reset"      -> TCP RST (linger 0)
//   Upstream.channel "bad", payload "zero" | "too_large" | "garbage" | "text"
//                            -> that kind of bad frame
//   Upstream.channel "burst", payload N -> N Ping frames (client_time_ms 1..N)
//                            written back to back in one go
//   Upstream.channel "ping"  -> (ws) a WebSocket ping, then the echo
// A WebSocket text message T is answered with Frame{Bye{reason "text:" + T}}.
// ServerMode::kMute accepts TCP connections and never sends a byte;
// kHttp404 answers any request with an HTTP 404 (upgrade refused).
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "pushgw_client/endpoint.h"

namespace pushgw::client {
/// gtest prints parameters with this.
inline void PrintTo(Transport t, std::ostream* os) { *os << to_string(t); }
}  // namespace pushgw::client

namespace pushgw::client::testing {

/// A self-signed P-256 certificate for DNS:localhost and IP:127.0.0.1.
struct SelfSignedCert {
  std::string cert_pem;
  std::string key_pem;
};
SelfSignedCert make_self_signed_cert();

enum class ServerMode { kFrames, kMute, kHttp404 };

class TestServer {
 public:
  /// Throws std::runtime_error when it cannot listen.
  TestServer(Transport transport, const SelfSignedCert* cert = nullptr,
             ServerMode mode = ServerMode::kFrames);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  Endpoint endpoint() const;
  uint16_t port() const { return port_; }

  /// Remote addresses of accepted connections, in order.
  std::vector<std::string> peers() const;
  /// TLS handshakes completed / of which resumed.
  int tls_handshakes() const { return tls_handshakes_.load(); }
  int tls_resumed() const { return tls_resumed_.load(); }
  /// WebSocket pongs received.
  int pongs() const { return pongs_.load(); }

  struct Impl;

 private:
  Transport transport_;
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::vector<std::string> peers_;
  std::atomic<int> tls_handshakes_{0};
  std::atomic<int> tls_resumed_{0};
  std::atomic<int> pongs_{0};
  std::unique_ptr<Impl> impl_;
  std::thread thread_;

  friend struct Impl;
};

}  // namespace pushgw::client::testing
