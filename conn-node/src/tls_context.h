#pragma once
// The server TLS context shared by the tls and wss listeners (OpenSSL; this
// header is private to conn-node, so the vendor type may appear here).
#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "conn_node/config.h"

namespace pushgw::conn_node {

/// Owns one SSL_CTX configured from TlsConfig: TLS 1.3 preferred, 1.2 (or 1.3)
/// minimum, session tickets on (stateless, so no per-session server memory),
/// 0-RTT early data off, SSL_MODE_RELEASE_BUFFERS so an idle link's SSL
/// object keeps no record buffers. Immutable after construction; SSL objects
/// may be created from any thread.
class TlsContext {
 public:
  /// Throws std::runtime_error naming the file and OpenSSL's reason (startup only).
  explicit TlsContext(const TlsConfig& cfg);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* native() const { return ctx_; }
  /// A new server-side SSL object on `fd` (non-blocking); nullptr on failure.
  SSL* new_ssl(int fd) const;

 private:
  SSL_CTX* ctx_ = nullptr;
};

/// The last OpenSSL error of this thread as text (clears the queue).
std::string openssl_error_text();

}  // namespace pushgw::conn_node
