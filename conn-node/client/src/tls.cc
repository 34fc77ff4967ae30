#include "pushgw_client/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/ssl/error.hpp>
#include <cerrno>
#include <cstdint>

#include "tls_internal.h"

namespace pushgw::client {
namespace {

bool is_ip_literal(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

thread_local int t_socket_errno = 0;

int fd_of(BIO* b) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))); }

// A socket BIO that never raises SIGPIPE (OpenSSL's own uses write()).
int bio_write(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  const ssize_t n = ::send(fd_of(b), data, static_cast<size_t>(len), MSG_NOSIGNAL);
  t_socket_errno = n >= 0 ? 0 : errno;
  if (n >= 0) return static_cast<int>(n);
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
  return -1;
}

int bio_read(BIO* b, char* data, int len) {
  BIO_clear_retry_flags(b);
  const ssize_t n = ::recv(fd_of(b), data, static_cast<size_t>(len), 0);
  t_socket_errno = n >= 0 ? 0 : errno;
  if (n >= 0) return static_cast<int>(n);
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_read(b);
  return -1;
}

long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int bio_create(BIO* b) {
  BIO_set_data(b, nullptr);
  BIO_set_init(b, 1);
  return 1;
}

int bio_destroy(BIO*) { return 1; }

const BIO_METHOD* socket_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "pushgw client socket");
    if (m == nullptr) return m;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    BIO_meth_set_destroy(m, bio_destroy);
    return m;
  }();
  return method;
}

int session_key_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* impl = static_cast<ClientTls::Impl*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  const auto* key = static_cast<const std::string*>(SSL_get_ex_data(ssl, session_key_index()));
  if (impl == nullptr || key == nullptr || !impl->options.resume_sessions ||
      SSL_SESSION_is_resumable(session) != 1) {
    return 0;  // OpenSSL frees it
  }
  impl->received.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(impl->mu);
  auto& unused = impl->sessions[*key].unused;
  unused.push_back(session);  // we keep OpenSSL's reference
  const size_t cap = std::max<size_t>(1, impl->options.max_sessions_per_server);
  if (unused.size() > cap) {
    for (size_t i = 0; i < unused.size() - cap; ++i) SSL_SESSION_free(unused[i]);
    unused.erase(unused.begin(), unused.begin() + static_cast<long>(unused.size() - cap));
  }
  return 1;
}

boost::system::error_code last_ssl_error(errc fallback) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return make_error_code(fallback);
  return {static_cast<int>(e), boost::asio::error::get_ssl_category()};
}

void free_all(std::unordered_map<std::string, ClientTls::Impl::Sessions>& sessions) {
  for (auto& [key, s] : sessions) {
    for (SSL_SESSION* u : s.unused) SSL_SESSION_free(u);
    if (s.last != nullptr) SSL_SESSION_free(s.last);
  }
  sessions.clear();
}

/// A copy of the session to offer next for `key` (nullptr: none), under the
/// cache lock. Copies, because OpenSSL marks the session object a TLS 1.3
/// link resumed with as not resumable.
SSL_SESSION* take_session(ClientTls::Impl& impl, const std::string& key) {
  std::lock_guard lock(impl.mu);
  const auto it = impl.sessions.find(key);
  if (it == impl.sessions.end()) return nullptr;
  auto& s = it->second;
  if (!s.unused.empty()) {
    if (s.last != nullptr) SSL_SESSION_free(s.last);
    s.last = s.unused.back();
    s.unused.pop_back();
  } else if (!impl.options.reuse_sessions) {
    return nullptr;
  }
  return s.last != nullptr ? SSL_SESSION_dup(s.last) : nullptr;
}

}  // namespace

ClientTls::Impl::~Impl() {
  free_all(sessions);
  if (ctx != nullptr) SSL_CTX_free(ctx);
}

ClientTls::ClientTls(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClientTls::~ClientTls() = default;

result<std::shared_ptr<ClientTls>> ClientTls::create(TlsOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->ctx = SSL_CTX_new(TLS_client_method());
  if (impl->ctx == nullptr || socket_method() == nullptr) return make_error_code(errc::unavailable);
  SSL_CTX* ctx = impl->ctx;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(
      ctx, impl->options.max_version == TlsVersion::kTls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // Idle links keep no record buffers; writes may return after one record
  // and be retried from a grown (moved) buffer.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (impl->options.verify_peer) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    const int ok = impl->options.ca_file.empty()
                       ? SSL_CTX_set_default_verify_paths(ctx)
                       : SSL_CTX_load_verify_locations(ctx, impl->options.ca_file.c_str(), nullptr);
    if (ok != 1) {
      ERR_clear_error();
      return make_error_code(errc::invalid_argument);
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  SSL_CTX_set_app_data(ctx, impl.get());
  return std::shared_ptr<ClientTls>(new ClientTls(std::move(impl)));
}

const TlsOptions& ClientTls::options() const noexcept { return impl_->options; }

size_t ClientTls::cached_sessions() const {
  std::lock_guard lock(impl_->mu);
  size_t n = 0;
  for (const auto& [key, s] : impl_->sessions) n += s.unused.size() + (s.last != nullptr ? 1 : 0);
  return n;
}

uint64_t ClientTls::sessions_received() const noexcept {
  return impl_->received.load(std::memory_order_relaxed);
}

void ClientTls::clear_sessions() {
  std::lock_guard lock(impl_->mu);
  free_all(impl_->sessions);
}

namespace detail {

int last_socket_errno() noexcept { return t_socket_errno; }

std::string tls_name(const TlsOptions& options, const std::string& host) {
  return options.server_name.empty() ? host : options.server_name;
}

SSL* new_client_ssl(ClientTls& tls, int fd, const std::string& host, const std::string* session_key,
                    boost::system::error_code& ec) {
  ClientTls::Impl& impl = tls.impl();
  ERR_clear_error();
  SSL* ssl = SSL_new(impl.ctx);
  BIO* bio = ssl != nullptr ? BIO_new(socket_method()) : nullptr;
  if (bio == nullptr) {
    if (ssl != nullptr) SSL_free(ssl);
    ec = last_ssl_error(errc::unavailable);
    return nullptr;
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  SSL_set_bio(ssl, bio, bio);
  SSL_set_connect_state(ssl);
  SSL_set_ex_data(ssl, session_key_index(), const_cast<std::string*>(session_key));

  const std::string name = tls_name(impl.options, host);
  const bool ip = is_ip_literal(name);
  bool ok = true;
  if (!ip) ok = SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
  if (ok && impl.options.verify_peer) {
    ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1
            : SSL_set1_host(ssl, name.c_str()) == 1;
  }
  if (!ok) {
    SSL_free(ssl);
    ec = last_ssl_error(errc::invalid_argument);
    return nullptr;
  }
  if (impl.options.resume_sessions) {
    if (SSL_SESSION* offer = take_session(impl, *session_key)) {
      SSL_set_session(ssl, offer);
      SSL_SESSION_free(offer);  // the SSL holds its own reference
    }
  }
  return ssl;
}

}  // namespace detail
}  // namespace pushgw::client
