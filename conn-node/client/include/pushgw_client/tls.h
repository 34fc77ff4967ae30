#pragma once
/// Client-side TLS settings shared by many links: one OpenSSL context
/// (TLS 1.2 minimum, TLS 1.3 preferred) plus a session cache so that a
/// reconnect to the same host:port resumes instead of doing a full handshake.
///
/// Resumption: the context asks OpenSSL to hand every new session (TLS 1.3
/// tickets arrive after the handshake, while the link reads; TLS 1.2 tickets
/// during it) to a callback that keeps them per (server name, host:port).
/// Each Link::connect to that key offers the newest unused session (tickets
/// are single-use, as RFC 8446 advises and OpenSSL enforces on the session
/// object it resumed). When none is left, it offers a copy of the last one
/// again (reuse_sessions), so a burst of links that have not read their own
/// tickets yet still resumes against servers that accept ticket reuse
/// (stateless tickets do).
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
  /// Unused sessions kept per server (newest first; older ones are dropped).
  size_t max_sessions_per_server = 64;
  /// When no unused session is left, offer the last one again (off: only
  /// unused tickets are offered, like clients that never reuse one).
  bool reuse_sessions = true;
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

  /// Sessions held: unused ones plus the last offered one of each server.
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
