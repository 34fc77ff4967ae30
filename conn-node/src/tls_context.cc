#include "tls_context.h"

#include <openssl/err.h>

#include <stdexcept>

namespace pushgw::conn_node {

std::string openssl_error_text() {
  std::string out;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

TlsContext::TlsContext(const TlsConfig& cfg) {
  ctx_ = SSL_CTX_new(TLS_server_method());
  if (ctx_ == nullptr) throw std::runtime_error("tls: SSL_CTX_new: " + openssl_error_text());
  auto fail = [this](const std::string& what) {
    std::string msg = "tls: " + what + ": " + openssl_error_text();
    SSL_CTX_free(ctx_);
    ctx_ = nullptr;
    throw std::runtime_error(msg);
  };
  const int min_version = cfg.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx_, min_version) != 1) fail("set_min_proto_version");
  if (SSL_CTX_use_certificate_chain_file(ctx_, cfg.cert_file.c_str()) != 1) {
    fail("certificate " + cfg.cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx_, cfg.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail("private key " + cfg.key_file);
  }
  if (SSL_CTX_check_private_key(ctx_) != 1) fail("key does not match the certificate");

  // Idle links must not keep 2 x ~17 KiB record buffers; writes may be
  // partial and retried from another address (the link's write buffer moves).
  SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx_, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                SSL_OP_CIPHER_SERVER_PREFERENCE);
  // 0-RTT stays off: early data is replayable and the protocol would allow
  // only a Hello in it; a resumed 1-RTT handshake is cheap enough.
  SSL_CTX_set_max_early_data(ctx_, 0);
  static const unsigned char kSidCtx[] = "pushgw-conn-node";
  SSL_CTX_set_session_id_context(ctx_, kSidCtx, sizeof(kSidCtx) - 1);
  SSL_CTX_set_timeout(ctx_, static_cast<long>(cfg.session_lifetime.count()));
  if (cfg.session_tickets) {
    // Stateless tickets: resumption needs no per-session server memory.
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx_, 1);
  } else {
    SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_num_tickets(ctx_, 0);
  }
}

TlsContext::~TlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

SSL* TlsContext::new_ssl(int fd) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

}  // namespace pushgw::conn_node
