#include "conn_node/config.h"

#include <thread>

#include "conn_node/frame_codec.h"

namespace pushgw::conn_node {

using common::non_empty;
using common::one_of;
using common::range;

const char* listener_name(ListenerKind k) noexcept {
  switch (k) {
    case ListenerKind::kTcp: return "tcp";
    case ListenerKind::kTls: return "tls";
    case ListenerKind::kWs: return "ws";
    case ListenerKind::kWss: return "wss";
  }
  return "?";
}

namespace {

common::ConfigSchema<NodeConfig> build_schema() {
  const NodeConfig d;
  common::ConfigSchema<NodeConfig> s;
  s.field("node_id", &NodeConfig::node_id, d.node_id,
          "unique id of this node; names its delivery topic pushgw.deliver.<node_id>", non_empty())
      .field("threads", &NodeConfig::threads, d.threads,
             "worker threads holding links (0 = one per CPU)", range(0, 256))
      .field("apps_file", &NodeConfig::apps_file, d.apps_file,
             "apps TOML file (device secrets, upstream channels), shared with push-api",
             non_empty())
      .field("replay_wait_ms", &NodeConfig::replay_wait, d.replay_wait,
             "hold a new link's live unicast pushes until the offline router's replay for it "
             "completes, at most this long (0 = no hold)",
             range(0, 60'000));

  s.field("listen.host", [](auto& c) -> auto& { return c.listen.host; }, d.listen.host,
          "address the device listeners bind", non_empty())
      .field("listen.tcp_port", [](auto& c) -> auto& { return c.listen.tcp_port; },
             d.listen.tcp_port, "plain TCP listener port (0 = off)", range(0, 65535))
      .field("listen.tls_port", [](auto& c) -> auto& { return c.listen.tls_port; },
             d.listen.tls_port, "TLS listener port (0 = off)", range(0, 65535))
      .field("listen.ws_port", [](auto& c) -> auto& { return c.listen.ws_port; },
             d.listen.ws_port, "WebSocket listener port, path /ws (0 = off)", range(0, 65535))
      .field("listen.wss_port", [](auto& c) -> auto& { return c.listen.wss_port; },
             d.listen.wss_port, "WebSocket-over-TLS listener port, path /ws (0 = off)",
             range(0, 65535))
      .field("listen.backlog", [](auto& c) -> auto& { return c.listen.backlog; },
             d.listen.backlog, "listen(2) backlog of each listener", range(1, 65535));

  s.field("advertise.host", [](auto& c) -> auto& { return c.advertise.host; },
          d.advertise.host,
          "host put in the endpoints this node advertises (registry, Redirect) when the "
          "per-listener value is empty",
          non_empty())
      .field("advertise.tcp", [](auto& c) -> auto& { return c.advertise.tcp; },
             d.advertise.tcp, "advertised host:port of the tcp listener (empty: host:tcp_port)")
      .field("advertise.tls", [](auto& c) -> auto& { return c.advertise.tls; },
             d.advertise.tls, "advertised host:port of the tls listener")
      .field("advertise.ws", [](auto& c) -> auto& { return c.advertise.ws; }, d.advertise.ws,
             "advertised host:port of the ws listener")
      .field("advertise.wss", [](auto& c) -> auto& { return c.advertise.wss; },
             d.advertise.wss, "advertised host:port of the wss listener")
      .field("advertise.admin", [](auto& c) -> auto& { return c.advertise.admin; },
             d.advertise.admin,
             "host:port of the admin listener registered for operators' tools (pushctl drain); "
             "empty: host:admin.port");

  s.field("tls.cert_file", [](auto& c) -> auto& { return c.tls.cert_file; }, d.tls.cert_file,
          "PEM certificate chain of the tls and wss listeners (required when either is on)")
      .field("tls.key_file", [](auto& c) -> auto& { return c.tls.key_file; }, d.tls.key_file,
             "PEM private key of tls.cert_file")
      .field("tls.min_version", [](auto& c) -> auto& { return c.tls.min_version; },
             d.tls.min_version, "lowest TLS version accepted: \"1.2\" or \"1.3\"",
             one_of({"1.2", "1.3"}))
      .field("tls.session_tickets", [](auto& c) -> auto& { return c.tls.session_tickets; },
             d.tls.session_tickets,
             "issue session tickets so returning clients resume without a full handshake")
      .field("tls.session_lifetime_s", [](auto& c) -> auto& { return c.tls.session_lifetime; },
             d.tls.session_lifetime, "lifetime of a session ticket", range(1, 7 * 86400));

  s.field("limits.max_frame_bytes", [](auto& c) -> auto& { return c.limits.max_frame_bytes; },
          d.limits.max_frame_bytes, "largest frame accepted from a device (FRAME_TOO_LARGE above)",
          range(256, 16 << 20))
      .field("limits.send_queue_bytes",
             [](auto& c) -> auto& { return c.limits.send_queue_bytes; }, d.limits.send_queue_bytes,
             "bytes queued per link before SLOW_CONSUMER", range(1024, 1 << 30))
      .field("limits.send_queue_frames",
             [](auto& c) -> auto& { return c.limits.send_queue_frames; },
             d.limits.send_queue_frames, "frames queued per link before SLOW_CONSUMER",
             range(1, 1 << 20))
      .field("limits.hello_timeout_s", [](auto& c) -> auto& { return c.limits.hello_timeout; },
             d.limits.hello_timeout, "a link without a valid Hello after this gets HELLO_TIMEOUT",
             range(1, 600))
      .field("limits.heartbeat_s", [](auto& c) -> auto& { return c.limits.heartbeat_s; },
             d.limits.heartbeat_s, "Welcome.heartbeat_s: clients Ping at this interval",
             range(1, 3600))
      .field("limits.heartbeat_timeout_ms",
             [](auto& c) -> auto& { return c.limits.heartbeat_timeout; },
             d.limits.heartbeat_timeout,
             "close a link silent this long (0 = 3 * heartbeat_s, the protocol's rule)",
             range(0, 3'600'000))
      .field("limits.accept_rate", [](auto& c) -> auto& { return c.limits.accept_rate; },
             d.limits.accept_rate, "new links accepted per second (0 = unlimited)",
             range(0.0, 1e7))
      .field("limits.accept_burst", [](auto& c) -> auto& { return c.limits.accept_burst; },
             d.limits.accept_burst, "accept token bucket size", range(1.0, 1e7))
      .field("limits.max_links", [](auto& c) -> auto& { return c.limits.max_links; },
             d.limits.max_links, "links held at most (0 = fd limit minus limits.fd_reserve)",
             range(0, 100'000'000))
      .field("limits.fd_reserve", [](auto& c) -> auto& { return c.limits.fd_reserve; },
             d.limits.fd_reserve, "fds kept free for Redis, Kafka, admin and logs",
             range(16, 1'000'000))
      .field("limits.marketing_rate", [](auto& c) -> auto& { return c.limits.marketing_rate; },
             d.limits.marketing_rate, "MARKETING frames written per second by the node (0 = no cap)",
             range(0.0, 1e9))
      .field("limits.max_upstream_bytes",
             [](auto& c) -> auto& { return c.limits.max_upstream_bytes; },
             d.limits.max_upstream_bytes, "largest Upstream payload accepted",
             range(1, 16 << 20))
      .field("limits.max_upstream_in_flight",
             [](auto& c) -> auto& { return c.limits.max_upstream_in_flight; },
             d.limits.max_upstream_in_flight,
             "Upstream frames of one link awaiting Kafka before new ones are refused",
             range(1, 100'000))
      .field("limits.max_topics_per_link",
             [](auto& c) -> auto& { return c.limits.max_topics_per_link; },
             d.limits.max_topics_per_link, "topics one link may subscribe", range(0, 100'000))
      .field("limits.write_batch_frames",
             [](auto& c) -> auto& { return c.limits.write_batch_frames; },
             d.limits.write_batch_frames, "queued frames gathered into one write",
             range(1, 100'000))
      .field("limits.write_batch_bytes",
             [](auto& c) -> auto& { return c.limits.write_batch_bytes; },
             d.limits.write_batch_bytes, "bytes gathered into one write", range(512, 16 << 20));

  s.field("drain.rate", [](auto& c) -> auto& { return c.drain.rate; }, d.drain.rate,
          "links redirected per second by a drain (POST /admin/drain, SIGUSR1)",
          range(0.1, 1e7))
      .field("drain.fast_rate", [](auto& c) -> auto& { return c.drain.fast_rate; },
             d.drain.fast_rate, "links redirected per second by the drain before exit (SIGTERM)",
             range(0.1, 1e7))
      .field("drain.retry_after_ms", [](auto& c) -> auto& { return c.drain.retry_after; },
             d.drain.retry_after, "Redirect.retry_after_ms sent to drained links",
             range(0, 3'600'000))
      .field("drain.shutdown_grace_ms", [](auto& c) -> auto& { return c.drain.shutdown_grace; },
             d.drain.shutdown_grace,
             "SIGTERM: time for the fast drain before the remaining links are closed",
             range(0, 600'000));

  s.field("redis.url", [](auto& c) -> auto& { return c.status.redis_url; },
          d.status.redis_url,
          "status store: redis://host:port or redis-cluster://h1:p1,h2:p2", non_empty())
      .field("status.device_lease_s", [](auto& c) -> auto& { return c.status.device_lease; },
             d.status.device_lease,
             "device registration lease, refreshed in batches every lease/3", range(3, 86400))
      .field("status.node_lease_s", [](auto& c) -> auto& { return c.status.node_lease; },
             d.status.node_lease, "node registration lease, refreshed every lease/3",
             range(3, 3600))
      .field("status.refresh_batch", [](auto& c) -> auto& { return c.status.refresh_batch; },
             d.status.refresh_batch, "device leases refreshed per pipelined call",
             range(1, 100'000))
      .field("status.upstream_dedup_s", [](auto& c) -> auto& { return c.status.upstream_dedup; },
             d.status.upstream_dedup,
             "a repeated Upstream request_id within this window is acked but not published",
             range(1, 86400));

  s.field("kafka.bootstrap", [](auto& c) -> auto& { return c.kafka.bootstrap; },
          d.kafka.bootstrap, "Kafka bootstrap servers host:port[,host:port]")
      .field("kafka.bootstrap_file", [](auto& c) -> auto& { return c.kafka.bootstrap_file; },
             d.kafka.bootstrap_file,
             "file holding the bootstrap list (tools/kafka-dev-broker writes one); wins over "
             "kafka.bootstrap when set")
      .field("kafka.client_id", [](auto& c) -> auto& { return c.kafka.client_id; },
             d.kafka.client_id, "Kafka client.id prefix", non_empty())
      .field("kafka.message_timeout_ms", [](auto& c) -> auto& { return c.kafka.message_timeout; },
             d.kafka.message_timeout,
             "a produce (upstream, presence, acks) fails after this; Upstream then answers "
             "accepted=false reason \"unavailable\"",
             range(100, 600'000))
      .field("kafka.linger_ms", [](auto& c) -> auto& { return c.kafka.linger; }, d.kafka.linger,
             "producer batching delay", range(0, 1000))
      .field("kafka.consume_batch", [](auto& c) -> auto& { return c.kafka.consume_batch; },
             d.kafka.consume_batch, "delivery records taken per batch", range(1, 100'000))
      .field("kafka.deliver_partitions",
             [](auto& c) -> auto& { return c.kafka.deliver_partitions; },
             d.kafka.deliver_partitions,
             "partitions of pushgw.deliver.<node_id> when this node has to create it",
             range(1, 1024))
      .field("kafka.session_timeout_ms", [](auto& c) -> auto& { return c.kafka.session_timeout; },
             d.kafka.session_timeout, "delivery consumer group session timeout",
             range(1000, 3'600'000))
      .field("kafka.heartbeat_interval_ms",
             [](auto& c) -> auto& { return c.kafka.heartbeat_interval; },
             d.kafka.heartbeat_interval, "delivery consumer group heartbeat interval",
             range(100, 3'600'000))
      .field("kafka.properties", [](auto& c) -> auto& { return c.kafka.properties; },
             d.kafka.properties,
             "extra librdkafka properties \"name=value\" for the producer and the consumer");

  common::add_admin_fields(s, [](auto& c) -> auto& { return c.admin; }, 9200);
  common::add_log_fields(s, [](auto& c) -> auto& { return c.log; });
  return s;
}

}  // namespace

const common::ConfigSchema<NodeConfig>& config_schema() {
  static const common::ConfigSchema<NodeConfig> schema = build_schema();
  return schema;
}

NodeConfig load_config(const common::ConfigSources& sources) {
  NodeConfig cfg = config_schema().load(sources);
  cfg.validate();
  return cfg;
}

uint16_t NodeConfig::port(ListenerKind k) const {
  switch (k) {
    case ListenerKind::kTcp: return listen.tcp_port;
    case ListenerKind::kTls: return listen.tls_port;
    case ListenerKind::kWs: return listen.ws_port;
    case ListenerKind::kWss: return listen.wss_port;
  }
  return 0;
}

std::string NodeConfig::advertised(ListenerKind k) const {
  if (port(k) == 0) return {};
  const std::string* explicit_value = nullptr;
  switch (k) {
    case ListenerKind::kTcp: explicit_value = &advertise.tcp; break;
    case ListenerKind::kTls: explicit_value = &advertise.tls; break;
    case ListenerKind::kWs: explicit_value = &advertise.ws; break;
    case ListenerKind::kWss: explicit_value = &advertise.wss; break;
  }
  if (explicit_value != nullptr && !explicit_value->empty()) return *explicit_value;
  return advertise.host + ":" + std::to_string(port(k));
}

std::string NodeConfig::advertised_admin() const {
  if (!advertise.admin.empty()) return advertise.admin;
  if (admin.port == 0) return {};
  return advertise.host + ":" + std::to_string(admin.port);
}

void NodeConfig::validate() const {
  if (!valid_id(node_id) || node_id.size() > 64) {
    throw common::ConfigError("node_id: '" + node_id +
                              "' must be 1..64 bytes of [A-Za-z0-9._:-] (it names a Kafka topic)");
  }
  if (listen.tcp_port == 0 && listen.tls_port == 0 && listen.ws_port == 0 &&
      listen.wss_port == 0) {
    throw common::ConfigError("listen: every listener port is 0; enable at least one");
  }
  const bool tls_on = listen.tls_port != 0 || listen.wss_port != 0;
  if (tls_on && (tls.cert_file.empty() || tls.key_file.empty())) {
    throw common::ConfigError(
        "tls.cert_file / tls.key_file: required when listen.tls_port or listen.wss_port is set");
  }
  if (kafka.bootstrap.empty() && kafka.bootstrap_file.empty()) {
    throw common::ConfigError("kafka.bootstrap: set it or kafka.bootstrap_file");
  }
  if (limits.max_upstream_bytes >= limits.max_frame_bytes) {
    throw common::ConfigError("limits.max_upstream_bytes: must be below limits.max_frame_bytes (" +
                              std::to_string(limits.max_frame_bytes) + ")");
  }
  for (const auto& p : kafka.properties) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw common::ConfigError("kafka.properties: '" + p + "' is not name=value");
    }
  }
  std::vector<uint16_t> ports;
  for (int i = 0; i < kListenerKinds; ++i) {
    const uint16_t p = port(static_cast<ListenerKind>(i));
    if (p == 0) continue;
    for (uint16_t q : ports) {
      if (q == p) {
        throw common::ConfigError("listen: port " + std::to_string(p) +
                                  " is used by two listeners");
      }
    }
    ports.push_back(p);
  }
}

}  // namespace pushgw::conn_node
