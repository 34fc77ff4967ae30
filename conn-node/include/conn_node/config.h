#pragma once
/// Typed configuration of conn-node. Every key, its default and meaning are
/// declared once in config_schema() (`conn-node --help-config` prints them;
/// conn-node/README.md lists them).
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/admin_server.h"
#include "common/config.h"
#include "common/log.h"

namespace pushgw::conn_node {

/// The four listener kinds of the device protocol.
enum class ListenerKind : uint8_t { kTcp = 0, kTls = 1, kWs = 2, kWss = 3 };
inline constexpr int kListenerKinds = 4;
/// "tcp", "tls", "ws", "wss".
const char* listener_name(ListenerKind k) noexcept;

struct ListenConfig {
  std::string host = "0.0.0.0";
  /// 0 = listener off.
  uint16_t tcp_port = 7000;
  uint16_t tls_port = 7443;
  uint16_t ws_port = 7080;
  uint16_t wss_port = 7444;
  /// Listen backlog of each acceptor.
  int backlog = 4096;
};

struct AdvertiseConfig {
  /// Host put in advertised endpoints ("host:port") when a per-listener value is empty.
  std::string host = "127.0.0.1";
  std::string tcp;
  std::string tls;
  std::string ws;
  std::string wss;
  /// host:port of the admin listener for operators' tools (pushctl drain);
  /// empty: host:admin.port (nothing when admin.port is 0).
  std::string admin;
};

struct TlsConfig {
  std::string cert_file;
  std::string key_file;
  /// "1.2" or "1.3": lowest protocol version accepted.
  std::string min_version = "1.2";
  bool session_tickets = true;
  std::chrono::seconds session_lifetime{7200};
};

struct LimitsConfig {
  uint32_t max_frame_bytes = 65536;
  uint32_t send_queue_bytes = 1 << 20;
  uint32_t send_queue_frames = 1024;
  std::chrono::seconds hello_timeout{10};
  uint32_t heartbeat_s = 30;
  /// 0: 3 * heartbeat_s (the protocol's rule). A positive value overrides it.
  std::chrono::milliseconds heartbeat_timeout{0};
  /// New links accepted per second per node (token bucket; 0 = unlimited).
  double accept_rate = 2000;
  double accept_burst = 500;
  /// Links held at most; 0 = the fd limit minus fd_reserve.
  uint64_t max_links = 0;
  uint64_t fd_reserve = 256;
  /// Marketing frames written per second per node (0 = unlimited).
  double marketing_rate = 20000;
  uint32_t max_upstream_bytes = 16384;
  uint32_t max_upstream_in_flight = 32;
  uint32_t max_topics_per_link = 64;
  /// Frames and bytes gathered into one write.
  uint32_t write_batch_frames = 64;
  uint32_t write_batch_bytes = 64 * 1024;
};

struct DrainConfig {
  /// Links redirected per second by a drain (admin call, SIGUSR1).
  double rate = 500;
  /// Links redirected per second when SIGTERM drains before exit.
  double fast_rate = 5000;
  std::chrono::milliseconds retry_after{1000};
  /// How long SIGTERM waits for links to go away before closing the rest.
  std::chrono::milliseconds shutdown_grace{10'000};
};

struct StatusConfig {
  std::string redis_url = "redis://127.0.0.1:6379";
  /// Device registration lease; refreshed in batches every lease/3.
  std::chrono::seconds device_lease{90};
  /// Node registration lease; refreshed every lease/3.
  std::chrono::seconds node_lease{15};
  /// Registrations refreshed per pipelined call.
  uint32_t refresh_batch = 1000;
  std::chrono::seconds upstream_dedup{600};
};

struct KafkaSection {
  std::string bootstrap;
  /// A file holding the bootstrap list (written by tools/kafka-dev-broker); used when non-empty.
  std::string bootstrap_file;
  std::string client_id = "conn-node";
  std::chrono::milliseconds message_timeout{5000};
  std::chrono::milliseconds linger{1};
  uint32_t consume_batch = 1000;
  /// Partitions of pushgw.deliver.<node_id> when this node creates it.
  int deliver_partitions = 1;
  std::chrono::milliseconds session_timeout{10'000};
  std::chrono::milliseconds heartbeat_interval{3'000};
  /// Extra librdkafka properties "name=value" for the producer and the consumer.
  std::vector<std::string> properties;
};

struct NodeConfig {
  std::string node_id = "node-1";
  /// Worker threads holding links (0 = one per CPU).
  unsigned threads = 0;
  std::string apps_file = "deploy/local/apps.toml";
  ListenConfig listen;
  AdvertiseConfig advertise;
  TlsConfig tls;
  LimitsConfig limits;
  DrainConfig drain;
  StatusConfig status;
  KafkaSection kafka;
  /// Live unicast pushes of a new link are held until the offline router's
  /// replay for it completes, or this long (0 = no hold).
  std::chrono::milliseconds replay_wait{2000};
  common::AdminServerOptions admin;
  common::LogConfig log;

  /// The admin address registered for operators' tools ("" = none).
  std::string advertised_admin() const;

  /// Checks what single-key constraints cannot (TLS files for TLS listeners,
  /// at least one listener, ...). Throws common::ConfigError naming the key.
  void validate() const;
  /// The listener port of `k` (0 = off).
  uint16_t port(ListenerKind k) const;
  /// The advertised "host:port" of `k` ("" when the listener is off).
  std::string advertised(ListenerKind k) const;
};

/// The schema of NodeConfig; built once, thread-safe to read.
const common::ConfigSchema<NodeConfig>& config_schema();

/// Loads and validates (throws common::ConfigError).
NodeConfig load_config(const common::ConfigSources& sources);

}  // namespace pushgw::conn_node
