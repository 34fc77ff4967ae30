#pragma once
// OpenSSL side of ClientTls, shared by tls.cc and link.cc only.
#include <openssl/ssl.h>

#include <atomic>
#include <boost/system/error_code.hpp>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "pushgw_client/tls.h"

namespace pushgw::client {

struct ClientTls::Impl {
  Impl() = default;
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  SSL_CTX* ctx = nullptr;
  TlsOptions options;
  mutable std::mutex mu;
  /// Sessions of one server. Owned references; none of them is ever given to
  /// an SSL (links get copies), so OpenSSL never marks them used.
  struct Sessions {
    std::vector<SSL_SESSION*> unused;  // oldest first
    SSL_SESSION* last = nullptr;       // the most recently offered one
  };
  std::unordered_map<std::string, Sessions> sessions;
  std::atomic<uint64_t> received{0};
};

namespace detail {

/// A client SSL for a connected non-blocking socket `fd` (read and written
/// through send/recv with MSG_NOSIGNAL; the fd stays owned by the caller),
/// verifying and naming `host` (or TlsOptions::server_name), offering the
/// next cached session of `*session_key`. The key is stored in the SSL and must
/// outlive it; new sessions are cached under it. nullptr and `ec` on failure.
SSL* new_client_ssl(ClientTls& tls, int fd, const std::string& host, const std::string* session_key,
                    boost::system::error_code& ec);

/// errno of the last failed send/recv of this thread's TLS socket BIO (0
/// after a success or EOF): the cause of an SSL_ERROR_SYSCALL.
int last_socket_errno() noexcept;

/// The name the SSL sends/verifies for `host` under `options`.
std::string tls_name(const TlsOptions& options, const std::string& host);

}  // namespace detail
}  // namespace pushgw::client
