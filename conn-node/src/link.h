#pragma once
// One device link: the session state machine of device-protocol.md shared by
// every transport. Subclasses (StreamLink for tcp/tls, WsLink for ws/wss)
// move bytes; this class decides what the bytes mean.
//
// Threads: a link lives on one worker thread (its io_context is run by that
// thread only, which serializes everything: no strand per link). Every
// member function must be called on that thread.
//
// Lifetime: the worker's link table and the link's own coroutines hold
// shared_ptrs; the table lets go when the link is closed (on_closed()).
//
// Memory: this is per link, so rarely used state (topics, upstream in
// flight, held pushes, the message_id -> seq map for acks) lives in an
// Extras block allocated on first use and freed when it empties.
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conn_node/config.h"
#include "conn_node/send_queue.h"
#include "conn_node/timing_wheel.h"
#include "proto/pushgw.pb.h"

namespace pushgw::conn_node {

class Worker;
class NodeCore;
struct SessionInfo;

/// What a unicast push carries besides its encoded frame.
struct PushMeta {
  uint64_t seq = 0;
  std::string message_id;
  bool ack_required = false;
  bool replay = false;
  /// Live only: deliver once the link has had this seq (see DeliveryRecord.after_seq).
  uint64_t after_seq = 0;
};

/// A Link is its own timing-wheel hook (the worker's wheel holds it by that base).
class Link : public WheelHook, public std::enable_shared_from_this<Link> {
 public:
  enum class State : uint8_t {
    kHandshake,  // TLS / WebSocket handshake
    kAwaitHello,
    kAdmitting,  // Hello valid, registering
    kOpen,
    kClosing,  // final frame queued, flushing
    kClosed,
  };

  Link(Worker& worker, ListenerKind kind, uint64_t id);
  virtual ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  /// Starts the link's coroutine(s).
  void start();

  uint64_t id() const { return id_; }
  ListenerKind kind() const { return kind_; }
  State state() const { return state_; }
  bool is_open() const { return state_ == State::kOpen; }
  const std::string& app_id() const { return app_id_; }
  const std::string& device_id() const { return device_id_; }
  const std::string& session_id() const { return session_id_; }
  uint64_t epoch() const { return epoch_; }

  /// Closes the transport at once (worker stop).
  void abort() { abort_transport(); }
  /// Ends the session and closes the transport at once, without a final
  /// frame (node stop).
  void terminate();

  /// A unicast push for this device: held while a replay is pending (unless
  /// it is itself a replayed message), otherwise queued.
  void push_unicast(const SharedFrame& frame, Lane lane, const PushMeta& meta);
  /// A topic / broadcast push (never held, not tracked for acks).
  void push_shared(const SharedFrame& frame, Lane lane);
  /// The offline router finished replaying for registration `epoch`.
  void replay_complete(uint64_t epoch, uint64_t highest_seq);
  /// Queues Error{code} (dropping queued frames first for SLOW_CONSUMER) and closes.
  void fail(v1::ErrorCode code, std::string_view message);
  /// Sends `redirect` and closes (drain, overload).
  void redirect(const v1::Redirect& redirect);
  /// The worker's timing wheel fired for this link.
  void on_deadline(uint64_t now_ms);
  /// The worker's marketing budget has tokens again.
  void on_marketing_tokens();
  /// Set while the link waits in its worker's marketing queue.
  bool marketing_waiting_ = false;

  /// Topics this link is subscribed to (for the worker's index).
  const std::vector<std::string>* topics() const;

 protected:
  /// The transport's whole life: handshake, Hello, read loop. Returns when
  /// the transport is done (EOF, error, aborted); while the link is closing
  /// it keeps reading and discards input so the final frame is not lost to
  /// a reset.
  virtual boost::asio::awaitable<void> run() = 0;
  /// Writes queued frames unless a write is under way.
  virtual void flush() = 0;
  /// Closes the transport at once (pending operations abort).
  virtual void abort_transport() = 0;
  /// Starts the orderly close after the final frame went out (TLS
  /// close_notify, WebSocket close frame, FIN); run() then sees the end.
  virtual void close_transport_gracefully() = 0;
  /// Whether a write is waiting for the socket (the client is not reading).
  virtual bool write_blocked() const = 0;
  /// TLS session resumption of this link's handshake.
  virtual bool tls_resumed() const { return false; }

  // For subclasses.
  Worker& worker() { return worker_; }
  NodeCore& core();
  const NodeConfig& cfg() const;
  static uint64_t steady_ms();

  /// The handshake phase is over (TLS / WebSocket accepted): Hello next.
  void on_handshake_done();
  /// Handles the first frame (must be Hello); true when the session is open.
  boost::asio::awaitable<bool> on_first_frame(v1::Frame frame);
  /// Handles one frame of an open session; false when the link stops
  /// processing input (Bye, error, closing).
  bool on_frame(v1::Frame& frame);
  /// A framing error of the transport (prefix 0, too large, malformed).
  void on_bad_input(v1::ErrorCode code, std::string_view message);

  /// Takes frames for one gathered write: the normal lane first, then
  /// marketing frames as far as the node's marketing budget allows. False
  /// when nothing is ready.
  bool take_for_write(std::vector<SharedFrame>& out, size_t max_frames, size_t max_bytes);
  /// A write emptied the queue: finishes a pending close.
  void on_queue_drained();
  bool closing() const { return state_ == State::kClosing || state_ == State::kClosed; }
  bool closed() const { return state_ == State::kClosed; }
  /// Runs flush() soon (once), after the current handler: pushes queued by
  /// one delivery batch go out in one gathered write.
  void request_flush();

 private:
  struct Held {
    uint64_t seq;
    Lane lane;
    SharedFrame frame;
    std::string message_id;
    bool ack_required;
    uint64_t after_seq = 0;
  };
  struct Upstream {
    std::string request_id;
    uint32_t waiters = 0;  // duplicates on this link answered with the first
  };
  struct Extras {
    std::vector<std::string> topics;
    std::vector<std::pair<std::string, uint64_t>> sent;  // message_id -> seq, ack_required only
    std::vector<Upstream> upstream;
    std::vector<Held> held;
    // Live pushes waiting for an older seq to reach the link first (after_seq),
    // in arrival order.
    std::vector<Held> gap;
    bool empty() const {
      return topics.empty() && sent.empty() && upstream.empty() && held.empty() && gap.empty();
    }
  };

  static boost::asio::awaitable<void> main(std::shared_ptr<Link> self);
  static boost::asio::awaitable<void> publish_upstream(std::shared_ptr<Link> self,
                                                       v1::Upstream up);

  Extras& extras();
  void trim_extras();
  SessionInfo session_info() const;
  void schedule_deadline();
  void count_out(const v1::Frame& f);
  void send_control(const v1::Frame& frame);
  void make_room_for_normal(size_t bytes);
  void enqueue(Lane lane, const SharedFrame& frame, const PushMeta* meta);
  void remember_sent(const PushMeta& meta);
  bool already_sent(const PushMeta& meta) const;
  void release_held(uint64_t above_seq);
  /// Queues a live push, or keeps it in the gap list while an older seq it
  /// must follow (after_seq) has not reached the link.
  void deliver_in_order(Held h);
  /// Sends gap-held pushes whose older seq has arrived (all when `all`).
  void release_gap(bool all);
  /// Ends a hold that timed out: held pushes the store does not keep go out,
  /// the others wait for replay_complete (see replay_pending_).
  void end_hold_without_replay();
  void queue_final(const v1::Frame& frame, bool drop_queued);
  void close_gracefully();
  /// Ends the registered session (directory, status store, topics, presence).
  void end_session(bool replaced);
  void on_closed();
  void on_ack(const v1::Ack& ack);
  void on_upstream(v1::Upstream& up);
  void send_upstream_ack(const std::string& request_id, bool accepted, std::string_view reason);
  void on_subscribe(const v1::Subscribe& sub, bool reply);
  void send_subscribe_ack();

  Worker& worker_;
  const uint64_t id_;
  const ListenerKind kind_;
  State state_ = State::kHandshake;
  bool registered_ = false;  // the node holds this session (admit succeeded)
  bool holding_ = false;     // live unicast pushes wait for replay_complete
  // The offline router's replay for this session has not completed. After the
  // hold ends without it (replay_wait, or too much held), pushes the store
  // does not keep (ttl 0) go out, but those it keeps (ack_required) stay held
  // until replay_complete: delivering them ahead of older stored ones would
  // let the device's cumulative ack (Ack.last_seq, Hello.last_seq) skip
  // messages it never got. Beyond the send queue's size they are dropped
  // (the store has them for the next connect).
  bool replay_pending_ = false;
  bool flush_posted_ = false;
  bool graceful_started_ = false;
  v1::Platform platform_ = v1::PLATFORM_UNSPECIFIED;
  uint64_t epoch_ = 0;
  uint64_t last_seq_ = 0;
  uint64_t last_rx_ms_ = 0;   // steady clock
  uint64_t deadline_ms_ = 0;  // hello / close deadline (steady clock)
  uint64_t hold_until_ms_ = 0;
  uint64_t gap_until_ms_ = 0;  // gap-held pushes go out at this time at the latest (0 = none)
  uint64_t seen_seq_ = 0;      // highest unicast seq the link has had (or the client had before)
  std::string app_id_;
  std::string device_id_;
  std::string user_id_;
  std::string session_id_;
  SendQueue queue_;
  std::unique_ptr<Extras> extras_;
};

}  // namespace pushgw::conn_node
