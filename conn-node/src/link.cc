#include "link.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <chrono>

#include "common/auth/device_token.h"
#include "common/log.h"
#include "common/spawn.h"
#include "conn_node/frame_codec.h"
#include "node_core.h"
#include "worker.h"

namespace pushgw::conn_node {

namespace asio = boost::asio;

namespace {

/// How long a closing link may take to flush its final frame and see the
/// peer go away before the socket is closed hard.
constexpr uint64_t kCloseLingerMs = 2000;
/// message_id -> seq entries remembered per link for AckEvents.
constexpr size_t kMaxSentTracked = 1024;
/// Message ids taken from one Ack frame.
constexpr int kMaxAckIds = 4096;

SharedFrame encode_shared(const v1::Frame& f) {
  return std::make_shared<const std::string>(encode_framed(f));
}

}  // namespace

Link::Link(Worker& worker, ListenerKind kind, uint64_t id)
    : worker_(worker),
      id_(id),
      kind_(kind),
      queue_(worker.core().cfg().limits.send_queue_bytes,
             worker.core().cfg().limits.send_queue_frames) {}

Link::~Link() = default;

NodeCore& Link::core() { return worker_.core(); }
const NodeConfig& Link::cfg() const { return worker_.core().cfg(); }

uint64_t Link::steady_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void Link::start() {
  const uint64_t now = steady_ms();
  last_rx_ms_ = now;
  deadline_ms_ = now + static_cast<uint64_t>(cfg().limits.hello_timeout.count()) * 1000;
  schedule_deadline();
  common::spawn_logged(worker_.executor(), main(shared_from_this()), "conn-node link");
}

asio::awaitable<void> Link::main(std::shared_ptr<Link> self) {
  co_await self->run();
  self->abort_transport();
  self->on_closed();
}

const std::vector<std::string>* Link::topics() const {
  return extras_ ? &extras_->topics : nullptr;
}

Link::Extras& Link::extras() {
  if (!extras_) extras_ = std::make_unique<Extras>();
  return *extras_;
}

void Link::trim_extras() {
  if (extras_ && extras_->empty()) extras_.reset();
}

SessionInfo Link::session_info() const {
  SessionInfo s;
  s.app_id = app_id_;
  s.device_id = device_id_;
  s.user_id = user_id_;
  s.session_id = session_id_;
  s.platform = platform_;
  s.last_seq = last_seq_;
  s.listener = kind_;
  s.worker = worker_.index();
  s.link_id = id_;
  return s;
}

// ---- deadlines -------------------------------------------------------------

void Link::schedule_deadline() {
  if (state_ == State::kClosed) return;
  uint64_t due = deadline_ms_;
  if (state_ == State::kOpen) {
    due = last_rx_ms_ + core().heartbeat_timeout_ms();
    if (holding_) due = std::min(due, hold_until_ms_);
    if (gap_until_ms_ != 0) due = std::min(due, gap_until_ms_);
  }
  worker_.wheel().schedule(*this, due);
}

void Link::on_deadline(uint64_t now_ms) {
  switch (state_) {
    case State::kHandshake:
      if (now_ms >= deadline_ms_) {
        abort_transport();
        return;
      }
      break;
    case State::kAwaitHello:
    case State::kAdmitting:
      if (now_ms >= deadline_ms_) {
        fail(v1::HELLO_TIMEOUT, "no valid Hello in time");
        return;
      }
      break;
    case State::kOpen:
      if (holding_ && now_ms >= hold_until_ms_) {
        core().metrics().replay_timeouts->Increment();
        end_hold_without_replay();
        if (state_ != State::kOpen) return;
      }
      if (gap_until_ms_ != 0 && now_ms >= gap_until_ms_) {
        core().metrics().gap_timeouts->Increment();
        release_gap(/*all=*/true);
        if (state_ != State::kOpen) return;
      }
      if (now_ms >= last_rx_ms_ + core().heartbeat_timeout_ms()) {
        fail(v1::HEARTBEAT_TIMEOUT, "no frame within the heartbeat timeout");
        return;
      }
      break;
    case State::kClosing:
      if (now_ms >= deadline_ms_) {
        abort_transport();
        return;
      }
      break;
    case State::kClosed:
      return;
  }
  schedule_deadline();
}

// ---- sending ---------------------------------------------------------------

void Link::request_flush() {
  if (flush_posted_ || state_ == State::kClosed) return;
  flush_posted_ = true;
  asio::post(worker_.executor(), [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush();
  });
}

bool Link::take_for_write(std::vector<SharedFrame>& out, size_t max_frames, size_t max_bytes) {
  size_t bytes = 0;
  for (Lane lane : {Lane::kNormal, Lane::kMarketing}) {
    while (out.size() < max_frames) {
      const SharedFrame* next = queue_.peek(lane);
      if (next == nullptr) break;
      if (!out.empty() && bytes + (*next)->size() > max_bytes) return true;
      if (lane == Lane::kMarketing && !worker_.take_marketing_token()) {
        if (!marketing_waiting_) {
          marketing_waiting_ = true;
          worker_.wait_marketing(*this);
        }
        return !out.empty();
      }
      bytes += (*next)->size();
      out.push_back(queue_.take_one(lane));
    }
  }
  return !out.empty();
}

void Link::on_marketing_tokens() {
  marketing_waiting_ = false;
  if (queue_.frames(Lane::kMarketing) > 0) request_flush();
}

void Link::on_queue_drained() {
  if (state_ == State::kClosing && queue_.empty() && !graceful_started_) {
    graceful_started_ = true;
    close_transport_gracefully();
  }
}

void Link::count_out(const v1::Frame& f) {
  core().metrics().frames_out[frame_type_index(f)]->Increment();
}

void Link::send_control(const v1::Frame& frame) {
  if (state_ != State::kOpen) return;
  count_out(frame);
  SharedFrame f = encode_shared(frame);
  if (!queue_.push(Lane::kNormal, f)) {
    make_room_for_normal(f->size());
    if (!queue_.push(Lane::kNormal, f)) {
      core().metrics().overflow_normal->Increment();
      fail(v1::SLOW_CONSUMER, "send queue full");
      return;
    }
  }
  request_flush();
}

void Link::make_room_for_normal(size_t bytes) {
  // NORMAL never waits behind MARKETING: marketing frames give way first.
  while (queue_.frames(Lane::kMarketing) > 0 && !queue_.has_room(bytes)) {
    queue_.take_one(Lane::kMarketing);
    core().metrics().marketing_dropped->Increment();
  }
}

void Link::enqueue(Lane lane, const SharedFrame& frame, const PushMeta* meta) {
  if (!queue_.push(lane, frame)) {
    if (lane == Lane::kNormal) make_room_for_normal(frame->size());
    if (!queue_.push(lane, frame)) {
      if (lane == Lane::kMarketing && !write_blocked()) {
        // The backlog comes from the node's marketing cap, not from this
        // client: drop the marketing frame instead of closing the link.
        core().metrics().marketing_dropped->Increment();
        return;
      }
      (lane == Lane::kNormal ? core().metrics().overflow_normal
                             : core().metrics().overflow_marketing)
          ->Increment();
      fail(v1::SLOW_CONSUMER, "send queue full");
      return;
    }
  }
  core().metrics().frames_out[static_cast<int>(v1::Frame::kPush)]->Increment();
  if (meta != nullptr) {
    core().count_delivered(meta->message_id);
    seen_seq_ = std::max(seen_seq_, meta->seq);
  }
  if (meta != nullptr && meta->ack_required && !meta->message_id.empty()) remember_sent(*meta);
  if (queue_.frames() >= cfg().limits.write_batch_frames ||
      queue_.bytes() >= cfg().limits.write_batch_bytes) {
    // A full batch is waiting: write it now, so a burst from one delivery
    // batch does not overflow the queue of a client that reads fine.
    flush();
  } else {
    request_flush();
  }
}

bool Link::already_sent(const PushMeta& meta) const {
  if (!extras_ || meta.message_id.empty()) return false;
  const auto& sent = extras_->sent;
  return std::any_of(sent.begin(), sent.end(), [&](const auto& e) {
    return e.second == meta.seq && e.first == meta.message_id;
  });
}

void Link::remember_sent(const PushMeta& meta) {
  auto& sent = extras().sent;
  if (sent.size() >= kMaxSentTracked) sent.erase(sent.begin());
  sent.emplace_back(meta.message_id, meta.seq);
}

void Link::push_unicast(const SharedFrame& frame, Lane lane, const PushMeta& meta) {
  if (state_ != State::kOpen) return;
  if (holding_ && !meta.replay) {
    auto& held = extras().held;
    if (held.size() < cfg().limits.send_queue_frames) {
      held.push_back(Held{meta.seq, lane, frame, meta.message_id, meta.ack_required, meta.after_seq});
      core().metrics().held_pushes->Increment();
      return;
    }
    // Too much held: stop holding (what the store keeps is left to the replay).
    end_hold_without_replay();
    if (state_ != State::kOpen) return;
  }
  if (replay_pending_ && !meta.replay && meta.ack_required && meta.seq != 0) {
    // The replay is late: keep what the store also keeps until it completes.
    auto& held = extras().held;
    if (held.size() < cfg().limits.send_queue_frames) {
      held.push_back(Held{meta.seq, lane, frame, meta.message_id, meta.ack_required, meta.after_seq});
      core().metrics().held_deferred->Increment();
    } else {
      core().metrics().held_dropped->Increment();  // stored: the next connect's replay has it
    }
    return;
  }
  if (meta.replay) {
    if (meta.ack_required && already_sent(meta)) {
      // Sent on this connection already and not acked yet (a live push let
      // out after a hold timed out, or a late forward the replay also had).
      core().metrics().deliver_duplicate->Increment();
      return;
    }
    enqueue(lane, frame, &meta);
    // A replayed or forwarded older message may be what gap-held ones wait for.
    if (extras_ && !extras_->gap.empty()) release_gap(/*all=*/false);
    return;
  }
  deliver_in_order(Held{meta.seq, lane, frame, meta.message_id, meta.ack_required, meta.after_seq});
}

void Link::deliver_in_order(Held h) {
  const bool waiting = extras_ && !extras_->gap.empty();
  if (!waiting && (h.after_seq == 0 || h.after_seq <= seen_seq_)) {
    PushMeta meta{h.seq, std::move(h.message_id), h.ack_required, false, h.after_seq};
    enqueue(h.lane, h.frame, &meta);
    return;
  }
  auto& gap = extras().gap;
  if (gap.size() >= cfg().limits.send_queue_frames) {
    release_gap(/*all=*/true);  // waited long enough in volume: keep the link moving
    if (state_ != State::kOpen) return;
    PushMeta meta{h.seq, std::move(h.message_id), h.ack_required, false, h.after_seq};
    enqueue(h.lane, h.frame, &meta);
    return;
  }
  if (gap.empty()) {
    gap_until_ms_ = steady_ms() + static_cast<uint64_t>(std::max<int64_t>(cfg().replay_wait.count(), 1));
    schedule_deadline();
  }
  gap.push_back(std::move(h));
  core().metrics().gap_held->Increment();
}

void Link::release_gap(bool all) {
  if (!extras_) return;
  auto& gap = extras_->gap;
  std::size_t i = 0;
  for (; i < gap.size(); ++i) {
    if (state_ != State::kOpen) return;
    Held& h = gap[i];
    if (!all && h.after_seq > seen_seq_) break;
    PushMeta meta{h.seq, std::move(h.message_id), h.ack_required, false, h.after_seq};
    enqueue(h.lane, h.frame, &meta);
  }
  gap.erase(gap.begin(), gap.begin() + static_cast<std::ptrdiff_t>(i));
  if (gap.empty()) {
    gap_until_ms_ = 0;
    trim_extras();
  }
}

void Link::push_shared(const SharedFrame& frame, Lane lane) {
  if (state_ != State::kOpen) return;
  enqueue(lane, frame, nullptr);
}

void Link::replay_complete(uint64_t epoch, uint64_t highest_seq) {
  if (state_ != State::kOpen || epoch != epoch_ || !replay_pending_) return;
  replay_pending_ = false;
  core().metrics().replay_completed->Increment();
  holding_ = false;
  seen_seq_ = std::max(seen_seq_, highest_seq);
  release_held(highest_seq);
  if (extras_ && !extras_->gap.empty()) release_gap(/*all=*/false);
  schedule_deadline();
}

void Link::end_hold_without_replay() {
  holding_ = false;
  if (!extras_ || extras_->held.empty()) return;
  // Pushes the store does not keep (ttl 0) go out now, in seq order; the
  // others stay held until the replay completes (replay_complete releases
  // those above its highest_seq).
  std::vector<Held> out;
  std::vector<Held> keep;
  for (auto& h : extras_->held) {
    (h.ack_required && h.seq != 0 ? keep : out).push_back(std::move(h));
  }
  extras_->held = std::move(keep);
  core().metrics().held_deferred->Increment(static_cast<double>(extras_->held.size()));
  std::stable_sort(out.begin(), out.end(),
                   [](const Held& a, const Held& b) { return a.seq < b.seq; });
  for (auto& h : out) {
    if (state_ != State::kOpen) return;
    PushMeta meta{h.seq, std::move(h.message_id), h.ack_required, false};
    enqueue(h.lane, h.frame, &meta);
  }
}

void Link::release_held(uint64_t above_seq) {
  if (!extras_ || extras_->held.empty()) return;
  std::vector<Held> held;
  held.swap(extras_->held);
  trim_extras();
  std::stable_sort(held.begin(), held.end(),
                   [](const Held& a, const Held& b) { return a.seq < b.seq; });
  for (auto& h : held) {
    if (state_ != State::kOpen) return;
    if (h.seq != 0 && h.seq <= above_seq) {
      core().metrics().held_dropped->Increment();  // the replay already sent it
      continue;
    }
    deliver_in_order(std::move(h));
  }
}

// ---- closing ---------------------------------------------------------------

void Link::queue_final(const v1::Frame& frame, bool drop_queued) {
  if (closing()) return;
  if (state_ == State::kHandshake) {
    abort_transport();  // no channel to send on yet
    return;
  }
  end_session(frame.has_error() && frame.error().code() == v1::SESSION_REPLACED);
  while (queue_.take_one(Lane::kMarketing)) {
  }
  if (drop_queued) queue_.clear();
  count_out(frame);
  queue_.push_unbounded(Lane::kNormal, encode_shared(frame));
  state_ = State::kClosing;
  deadline_ms_ = steady_ms() + kCloseLingerMs;
  schedule_deadline();
  request_flush();
}

void Link::fail(v1::ErrorCode code, std::string_view message) {
  if (closing()) return;
  const int c = static_cast<int>(code);
  if (c >= 0 && c < static_cast<int>(core().metrics().errors_sent.size())) {
    core().metrics().errors_sent[c]->Increment();
  }
  v1::Frame f;
  f.mutable_error()->set_code(code);
  f.mutable_error()->set_message(std::string(message));
  queue_final(f, code == v1::SLOW_CONSUMER);
}

void Link::redirect(const v1::Redirect& redirect) {
  if (closing()) return;
  v1::Frame f;
  *f.mutable_redirect() = redirect;
  queue_final(f, false);
}

void Link::close_gracefully() {
  if (closing()) return;
  if (state_ == State::kHandshake) {
    abort_transport();
    return;
  }
  end_session(false);
  state_ = State::kClosing;
  deadline_ms_ = steady_ms() + kCloseLingerMs;
  schedule_deadline();
  request_flush();
}

void Link::terminate() {
  if (closed()) return;
  end_session(false);
  abort_transport();
}

void Link::on_bad_input(v1::ErrorCode code, std::string_view message) {
  fail(code, message);
}

void Link::end_session(bool replaced) {
  if (!registered_) return;
  registered_ = false;
  holding_ = false;
  replay_pending_ = false;
  std::vector<std::string> topics;
  if (extras_) {
    topics.swap(extras_->topics);
    extras_->held.clear();
    extras_->sent.clear();
    trim_extras();
  }
  for (const auto& t : topics) worker_.unsubscribe(*this, app_id_, t);
  core().session_closed(session_info(), epoch_, std::move(topics), replaced);
  core().link_gone(kind_);
}

void Link::on_closed() {
  if (state_ == State::kClosed) return;
  auto self = shared_from_this();
  end_session(false);
  state_ = State::kClosed;
  worker_.wheel().cancel(*this);
  queue_.clear();
  extras_.reset();
  worker_.remove_link(id_);
}

// ---- receiving -------------------------------------------------------------

void Link::on_handshake_done() {
  if (state_ != State::kHandshake) return;
  state_ = State::kAwaitHello;
  if (kind_ == ListenerKind::kTls || kind_ == ListenerKind::kWss) {
    auto& m = core().metrics();
    (tls_resumed() ? m.handshakes_resumed : m.handshakes_full)[static_cast<int>(kind_)]->Increment();
  }
}

asio::awaitable<bool> Link::on_first_frame(v1::Frame frame) {
  if (state_ != State::kAwaitHello) co_return false;
  auto& m = core().metrics();
  m.frames_in[frame_type_index(frame)]->Increment();
  if (!frame.has_hello()) {
    fail(v1::BAD_FRAME, "the first frame must be Hello");
    co_return false;
  }
  v1::Hello& hello = *frame.mutable_hello();
  if (hello.protocol_version() != 1) {
    fail(v1::UNSUPPORTED_VERSION, "protocol_version must be 1");
    co_return false;
  }
  if (!valid_id(hello.app_id()) || !valid_id(hello.device_id())) {
    fail(v1::BAD_FRAME, "app_id and device_id must be 1..128 bytes of [A-Za-z0-9._:-]");
    co_return false;
  }
  const auth::AppConfig* app = core().apps().find(hello.app_id());
  if (app == nullptr) {
    m.auth_failure("unknown_app").Increment();
    fail(v1::AUTH_FAILED, "unknown app");
    co_return false;
  }
  auth::DeviceClaims claims;
  const auth::TokenError te =
      auth::verify_device_token(hello.token(), app->device_secret, hello.app_id(),
                                hello.device_id(), core().clock().now_s(), &claims);
  if (te != auth::TokenError::kOk) {
    m.auth_failure(auth::token_error_name(te)).Increment();
    fail(te == auth::TokenError::kExpired ? v1::TOKEN_EXPIRED : v1::AUTH_FAILED,
         te == auth::TokenError::kExpired ? "token expired" : "token rejected");
    co_return false;
  }
  if (core().draining()) {
    redirect(core().redirect_for(kind_, "draining"));
    co_return false;
  }
  state_ = State::kAdmitting;
  app_id_ = hello.app_id();
  device_id_ = hello.device_id();
  user_id_ = std::move(claims.user_id);
  platform_ = hello.platform();
  last_seq_ = hello.last_seq();
  seen_seq_ = last_seq_;
  session_id_ = core().new_session_id();

  auto self = shared_from_this();
  const Admission a = co_await core().admit(session_info());
  if (state_ != State::kAdmitting) {
    // Closed (timeout, transport gone) while registering: roll back.
    if (a.error == v1::ERROR_UNSPECIFIED) {
      core().session_closed(session_info(), a.epoch, {}, false);
    }
    co_return false;
  }
  if (a.error != v1::ERROR_UNSPECIFIED) {
    fail(a.error, a.message);
    co_return false;
  }
  epoch_ = a.epoch;
  registered_ = true;
  state_ = State::kOpen;
  core().link_opened(kind_);
  m.sessions[static_cast<int>(kind_)]->Increment();

  v1::Frame welcome;
  auto* w = welcome.mutable_welcome();
  w->set_session_id(session_id_);
  w->set_node_id(core().node_id());
  w->set_heartbeat_s(cfg().limits.heartbeat_s);
  w->set_server_time_ms(core().clock().now_ms());
  w->set_resume_ticket(core().node_id() + "." + std::to_string(epoch_));
  send_control(welcome);

  const uint64_t now = steady_ms();
  last_rx_ms_ = now;
  if (cfg().replay_wait.count() > 0) {
    holding_ = true;
    replay_pending_ = true;
    hold_until_ms_ = now + static_cast<uint64_t>(cfg().replay_wait.count());
  }
  schedule_deadline();

  if (hello.topics_size() > 0) {
    v1::Subscribe sub;
    for (auto& t : *hello.mutable_topics()) sub.add_add(std::move(t));
    on_subscribe(sub, /*reply=*/false);
  }
  co_return state_ == State::kOpen;
}

bool Link::on_frame(v1::Frame& frame) {
  if (state_ != State::kOpen) return false;
  last_rx_ms_ = steady_ms();
  core().metrics().frames_in[frame_type_index(frame)]->Increment();
  switch (frame.body_case()) {
    case v1::Frame::kPing: {
      v1::Frame pong;
      pong.mutable_pong()->set_client_time_ms(frame.ping().client_time_ms());
      pong.mutable_pong()->set_server_time_ms(core().clock().now_ms());
      send_control(pong);
      break;
    }
    case v1::Frame::kAck:
      on_ack(frame.ack());
      break;
    case v1::Frame::kUpstream:
      on_upstream(*frame.mutable_upstream());
      break;
    case v1::Frame::kSubscribe:
      on_subscribe(frame.subscribe(), /*reply=*/true);
      break;
    case v1::Frame::kBye:
      close_gracefully();
      return false;
    case v1::Frame::kHello:
      fail(v1::BAD_FRAME, "Hello was already received");
      return false;
    default:
      fail(v1::BAD_FRAME, "frame type not allowed from a client");
      return false;
  }
  return state_ == State::kOpen;
}

void Link::on_ack(const v1::Ack& ack) {
  bus::v1::AckEvent ev;
  ev.set_schema_version(1);
  ev.set_app_id(app_id_);
  ev.set_device_id(device_id_);
  ev.set_node_id(core().node_id());
  ev.set_at_ms(core().clock().now_ms());
  ev.set_last_seq(ack.last_seq());
  auto* sent = extras_ ? &extras_->sent : nullptr;
  int n = 0;
  for (const auto& id : ack.message_ids()) {
    if (++n > kMaxAckIds) break;
    auto* a = ev.add_acked();
    a->set_message_id(id);
    core().count_acked(id);
    if (sent != nullptr) {
      auto it = std::find_if(sent->begin(), sent->end(),
                             [&](const auto& e) { return e.first == id; });
      if (it != sent->end()) {
        a->set_seq(it->second);
        sent->erase(it);
      }
    }
  }
  if (sent != nullptr && ack.last_seq() > 0) {
    std::erase_if(*sent, [&](const auto& e) { return e.second != 0 && e.second <= ack.last_seq(); });
  }
  trim_extras();
  if (ev.acked_size() == 0 && ev.last_seq() == 0) return;
  core().publish_ack(std::move(ev));
}

void Link::send_upstream_ack(const std::string& request_id, bool accepted,
                             std::string_view reason) {
  v1::Frame f;
  auto* a = f.mutable_upstream_ack();
  a->set_request_id(request_id);
  a->set_accepted(accepted);
  a->set_reason(std::string(reason));
  send_control(f);
}

void Link::on_upstream(v1::Upstream& up) {
  auto& m = core().metrics();
  auto reject = [&](std::string_view reason) {
    m.upstream_rejected->Increment();
    send_upstream_ack(up.request_id(), false, reason);
  };
  if (!valid_id(up.request_id())) return reject("bad_request_id");
  const auth::AppConfig* app = core().apps().find(app_id_);
  if (app == nullptr || !auth::valid_channel_name(up.channel()) ||
      !app->upstream_allowed(up.channel())) {
    return reject("unknown_channel");
  }
  if (up.payload().size() > cfg().limits.max_upstream_bytes) return reject("payload_too_large");
  auto& inflight = extras().upstream;
  for (auto& u : inflight) {
    if (u.request_id == up.request_id()) {
      ++u.waiters;  // answered together with the first
      return;
    }
  }
  if (inflight.size() >= cfg().limits.max_upstream_in_flight) {
    trim_extras();
    return reject("too_many_in_flight");
  }
  inflight.push_back(Upstream{up.request_id(), 0});
  common::spawn_logged(worker_.executor(), publish_upstream(shared_from_this(), std::move(up)),
                       "conn-node upstream");
}

asio::awaitable<void> Link::publish_upstream(std::shared_ptr<Link> self, v1::Upstream up) {
  const UpstreamOutcome out = co_await self->core().upstream(self->session_info(), up);
  uint32_t answers = 1;
  if (self->extras_) {
    auto& inflight = self->extras_->upstream;
    auto it = std::find_if(inflight.begin(), inflight.end(),
                           [&](const Upstream& u) { return u.request_id == up.request_id(); });
    if (it != inflight.end()) {
      answers += it->waiters;
      inflight.erase(it);
    }
    self->trim_extras();
  }
  for (uint32_t i = 0; i < answers; ++i) {
    self->send_upstream_ack(up.request_id(), out.accepted, out.reason);
  }
}

void Link::on_subscribe(const v1::Subscribe& sub, bool reply) {
  std::vector<std::string> added;
  std::vector<std::string> removed;
  auto& topics = extras().topics;
  for (const auto& t : sub.remove()) {
    auto it = std::find(topics.begin(), topics.end(), t);
    if (it == topics.end()) continue;
    topics.erase(it);
    worker_.unsubscribe(*this, app_id_, t);
    removed.push_back(t);
  }
  for (const auto& t : sub.add()) {
    if (!valid_id(t)) continue;  // not a topic name: ignored (SubscribeAck shows what holds)
    if (std::find(topics.begin(), topics.end(), t) != topics.end()) continue;
    if (topics.size() >= cfg().limits.max_topics_per_link) break;
    topics.push_back(t);
    worker_.subscribe(*this, app_id_, t);
    added.push_back(t);
  }
  trim_extras();
  if (added.empty() && removed.empty()) {
    if (reply) send_subscribe_ack();
    return;
  }
  // Started now (not from a spawned coroutine) so the node sees every
  // change of this link in order, and before its close.
  std::function<void()> done;
  if (reply) {
    done = [self = shared_from_this()] {
      asio::post(self->worker_.executor(), [self] { self->send_subscribe_ack(); });
    };
  }
  core().change_topics(app_id_, std::move(added), std::move(removed), std::move(done));
}

void Link::send_subscribe_ack() {
  v1::Frame f;
  auto* a = f.mutable_subscribe_ack();
  if (extras_) {
    for (const auto& t : extras_->topics) a->add_topics(t);
  }
  send_control(f);
}

}  // namespace pushgw::conn_node
