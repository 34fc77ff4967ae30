#include "node_metrics.h"

#include <string>

namespace pushgw::conn_node {

namespace {

const char* frame_type_name(int i) {
  static const char* const kNames[NodeMetrics::kFrameTypes] = {
      "unknown", "hello",        "welcome",   "ping",          "pong",
      "push",    "ack",          "upstream",  "upstream_ack",  "subscribe",
      "subscribe_ack", "redirect", "error",   "bye"};
  return kNames[i];
}

}  // namespace

NodeMetrics::NodeMetrics(prometheus::Registry& r) : registry_(r) {
  auto& links_f = prometheus::BuildGauge()
                      .Name("pushgw_conn_links")
                      .Help("open device links (Hello accepted) by listener")
                      .Register(r);
  auto& accepted_f = prometheus::BuildCounter()
                         .Name("pushgw_conn_accepted_total")
                         .Help("TCP connections accepted by listener")
                         .Register(r);
  auto& refused_f = prometheus::BuildCounter()
                        .Name("pushgw_conn_refused_total")
                        .Help("connections refused at accept by listener and reason")
                        .Register(r);
  auto& hs_f = prometheus::BuildCounter()
                   .Name("pushgw_conn_handshakes_total")
                   .Help("TLS handshakes by listener and kind (full, resumed, failed)")
                   .Register(r);
  auto& sessions_f = prometheus::BuildCounter()
                         .Name("pushgw_conn_sessions_total")
                         .Help("sessions established (Welcome sent) by listener")
                         .Register(r);
  for (int i = 0; i < kListenerKinds; ++i) {
    const std::string l = listener_name(static_cast<ListenerKind>(i));
    links[i] = &links_f.Add({{"listener", l}});
    accepted[i] = &accepted_f.Add({{"listener", l}});
    refused_overloaded[i] = &refused_f.Add({{"listener", l}, {"reason", "overloaded"}});
    accept_errors[i] = &refused_f.Add({{"listener", l}, {"reason", "accept_error"}});
    handshakes_full[i] = &hs_f.Add({{"listener", l}, {"kind", "full"}});
    handshakes_resumed[i] = &hs_f.Add({{"listener", l}, {"kind", "resumed"}});
    handshake_failures[i] = &hs_f.Add({{"listener", l}, {"kind", "failed"}});
    sessions[i] = &sessions_f.Add({{"listener", l}});
  }
  capacity = &prometheus::BuildGauge()
                  .Name("pushgw_conn_capacity")
                  .Help("links this node accepts at most (fd limit minus reserve, or max_links)")
                  .Register(r)
                  .Add({});
  accept_throttled = &prometheus::BuildCounter()
                          .Name("pushgw_conn_accept_throttled_total")
                          .Help("times the accept loop waited for the accept-rate token bucket")
                          .Register(r)
                          .Add({});

  auto& in_f = prometheus::BuildCounter()
                   .Name("pushgw_conn_frames_in_total")
                   .Help("frames received from devices by type")
                   .Register(r);
  auto& out_f = prometheus::BuildCounter()
                    .Name("pushgw_conn_frames_out_total")
                    .Help("frames queued to devices by type")
                    .Register(r);
  for (int i = 0; i < kFrameTypes; ++i) {
    frames_in[i] = &in_f.Add({{"type", frame_type_name(i)}});
    frames_out[i] = &out_f.Add({{"type", frame_type_name(i)}});
  }
  auto& err_f = prometheus::BuildCounter()
                    .Name("pushgw_conn_errors_sent_total")
                    .Help("Error frames sent to devices by code")
                    .Register(r);
  for (int i = 0; i < static_cast<int>(errors_sent.size()); ++i) {
    errors_sent[i] = &err_f.Add({{"code", v1::ErrorCode_Name(static_cast<v1::ErrorCode>(i))}});
  }
  auth_failures = &prometheus::BuildCounter()
                       .Name("pushgw_conn_auth_failures_total")
                       .Help("failed Hellos by reason")
                       .Register(r);

  auto& overflow_f = prometheus::BuildCounter()
                         .Name("pushgw_conn_queue_overflows_total")
                         .Help("send queue overflows by lane (normal: link closed SLOW_CONSUMER)")
                         .Register(r);
  overflow_normal = &overflow_f.Add({{"lane", "normal"}});
  overflow_marketing = &overflow_f.Add({{"lane", "marketing"}});
  marketing_dropped = &prometheus::BuildCounter()
                           .Name("pushgw_conn_marketing_dropped_total")
                           .Help("marketing frames dropped to make room (rate cap backlog)")
                           .Register(r)
                           .Add({});

  auto& deliver_f = prometheus::BuildCounter()
                        .Name("pushgw_conn_deliveries_total")
                        .Help("delivery records by outcome")
                        .Register(r);
  deliver_queued = &deliver_f.Add({{"result", "queued"}});
  deliver_no_link = &deliver_f.Add({{"result", "no_link"}});
  deliver_stale_epoch = &deliver_f.Add({{"result", "stale_epoch"}});
  deliver_duplicate = &deliver_f.Add({{"result", "duplicate"}});
  deliver_expired = &deliver_f.Add({{"result", "expired"}});
  deliver_bad_record = &deliver_f.Add({{"result", "bad_record"}});
  fanout_records = &deliver_f.Add({{"result", "fanout"}});
  deliver_schema_rejected = &prometheus::BuildCounter()
                                 .Name("pushgw_bus_records_rejected_total")
                                 .Help("bus records skipped by reason")
                                 .Register(r)
                                 .Add({{"reason", "schema_version"}});

  auto& hold_f = prometheus::BuildCounter()
                     .Name("pushgw_conn_replay_hold_total")
                     .Help("live unicast pushes held while a replay runs, and how holds ended")
                     .Register(r);
  held_pushes = &hold_f.Add({{"event", "held"}});
  held_dropped = &hold_f.Add({{"event", "dropped_replayed"}});
  held_deferred = &hold_f.Add({{"event", "deferred_to_replay"}});
  replay_completed = &hold_f.Add({{"event", "replay_complete"}});
  replay_timeouts = &hold_f.Add({{"event", "timeout"}});
  auto& gap_f = prometheus::BuildCounter()
                    .Name("pushgw_conn_order_hold_total")
                    .Help("live unicast pushes held until an older message of the device "
                          "(after_seq) reached the link, and holds that ended by timeout")
                    .Register(r);
  gap_held = &gap_f.Add({{"event", "held"}});
  gap_timeouts = &gap_f.Add({{"event", "timeout"}});

  auto& up_f = prometheus::BuildCounter()
                   .Name("pushgw_conn_upstream_total")
                   .Help("Upstream frames by outcome")
                   .Register(r);
  upstream_published = &up_f.Add({{"result", "published"}});
  upstream_duplicate = &up_f.Add({{"result", "duplicate"}});
  upstream_rejected = &up_f.Add({{"result", "rejected"}});
  upstream_unavailable = &up_f.Add({{"result", "unavailable"}});

  auto& rep_f = prometheus::BuildCounter()
                    .Name("pushgw_conn_sessions_replaced_total")
                    .Help("older sessions replaced by a newer connection of the same device")
                    .Register(r);
  replaced_local = &rep_f.Add({{"where", "local"}});
  replaced_remote_sent = &rep_f.Add({{"where", "remote_notified"}});
  replaced_remote_closed = &rep_f.Add({{"where", "closed_by_remote"}});

  acks_published = &prometheus::BuildCounter()
                        .Name("pushgw_conn_ack_events_total")
                        .Help("AckEvents published")
                        .Register(r)
                        .Add({});
  bus_publish_failures = &prometheus::BuildCounter()
                              .Name("pushgw_conn_bus_publish_failures_total")
                              .Help("presence / ack / replacement records Kafka did not take")
                              .Register(r)
                              .Add({});
  store_failures = &prometheus::BuildCounter()
                        .Name("pushgw_conn_status_store_failures_total")
                        .Help("status store calls that failed")
                        .Register(r)
                        .Add({});
  counters_dropped = &prometheus::BuildCounter()
                          .Name("pushgw_conn_message_counters_dropped_total")
                          .Help("delivered/acked counts dropped: too many messages pending a write")
                          .Register(r)
                          .Add({});

  draining = &prometheus::BuildGauge()
                  .Name("pushgw_conn_draining")
                  .Help("1 while the node drains")
                  .Register(r)
                  .Add({});
  drain_remaining = &prometheus::BuildGauge()
                         .Name("pushgw_conn_drain_remaining")
                         .Help("links still to redirect by the running drain")
                         .Register(r)
                         .Add({});
  drain_redirected = &prometheus::BuildCounter()
                          .Name("pushgw_conn_drain_redirected_total")
                          .Help("links sent a Redirect by drains")
                          .Register(r)
                          .Add({});
}

prometheus::Counter& NodeMetrics::auth_failure(std::string_view reason) {
  return auth_failures->Add({{"reason", std::string(reason)}});
}

}  // namespace pushgw::conn_node
