#pragma once
/// Client-side TLS settings shared by many links: one OpenSSL context
/// (TLS 1.2 minimum, TLS 1.3 preferred) plus a session cache so that a
/// reconnect to the same host:port resumes instead of doing a full handshake.
///
/// Resumption: the context asks OpenSSL to hand every new session (TLS 1.3
/// tickets arrive after the handshake, while the link reads; TLS 1.2 tickets
/// during it) to a callback that keeps the newest resumable session per
/// (server name, host:port). The next Link::connect to that key offers it.
/// One session is kept per key and may be offered by many links at once
/// (what a load generator wants); it is replaced by every newer ticket.
///
/// Thread-safety: a ClientTls may be shared by links on any number of
/// threads (the cache is guarded by a mutex). Lifetime: hold it in a
/// shared_ptr; every TLS link keeps a reference.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/error.h"

namespace pushgw::client {

enum class TlsVersion : uint8_t { kTls12, kTls13 };

struct TlsOptions {
  /// Verify the server certificate chain and its name (or IP) against the
  /// endpoint host (or `server_name` when set).
  bool verify_peer = true;
  /// PEM file with trusted CA certificates; empty: the system's default paths.
  std::string ca_file;
  /// Server name to send (SNI) and to verify; empty: the endpoint host when
  /// it is a DNS name (no SNI is sent for IP literals).
  std::string server_name;
  /// Keep and offer sessions for resumption (off = every handshake is full).
  bool resume_sessions = true;
  /// Highest version offered; kTls12 forces TLS 1.2 (tests of the server).
  TlsVersion max_version = TlsVersion::kTls13;
};

class ClientTls {
 public:
  /// Creates the context. errc::invalid_argument when the CA file cannot be
  /// loaded; errc::unavailable when OpenSSL refuses to build a context.
  static result<std::shared_ptr<ClientTls>> create(TlsOptions options = {});

  ~ClientTls();
  ClientTls(const ClientTls&) = delete;
  ClientTls& operator=(const ClientTls&) = delete;

  const TlsOptions& options() const noexcept;

  /// Number of keys that currently hold a session.
  size_t cached_sessions() const;
  /// Sessions (tickets) handed over by OpenSSL since creation.
  uint64_t sessions_received() const noexcept;
  /// Forgets every cached session (the next connects do full handshakes).
  void clear_sessions();

  /// Implementation detail of the link (holds the OpenSSL context).
  struct Impl;
  Impl& impl() const noexcept { return *impl_; }

 private:
  explicit ClientTls(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pushgw::client
