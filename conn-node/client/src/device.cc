#include "pushgw_client/device.h"

#include <algorithm>
#include <chrono>

namespace pushgw::client {
namespace {

using SteadyClock = std::chrono::steady_clock;

uint64_t unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

/// What is left of `timeout` after `start` (kNoTimeout stays unbounded).
std::chrono::milliseconds remaining(std::chrono::milliseconds timeout,
                                    SteadyClock::time_point start) {
  if (timeout == kNoTimeout) return timeout;
  const auto spent =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
  return std::max(timeout - spent, std::chrono::milliseconds(0));
}

}  // namespace

Device::Device(std::unique_ptr<Link> link) : link_(std::move(link)) {}
Device::Device(Device&&) noexcept = default;
Device& Device::operator=(Device&&) noexcept = default;
Device::~Device() = default;

asio::awaitable<result<HelloReply>> Device::hello(std::string app_id, std::string device_id,
                                                  std::string token, uint64_t last_seq,
                                                  std::vector<std::string> topics,
                                                  HelloOptions options) {
  v1::Frame frame;
  auto* hello = frame.mutable_hello();
  hello->set_protocol_version(options.protocol_version);
  hello->set_app_id(std::move(app_id));
  hello->set_device_id(std::move(device_id));
  hello->set_token(std::move(token));
  hello->set_platform(options.platform);
  hello->set_app_version(std::move(options.app_version));
  hello->set_last_seq(last_seq);
  for (auto& t : topics) hello->add_topics(std::move(t));
  hello->set_resume_ticket(std::move(options.resume_ticket));
  if (auto sent = co_await link_->send(frame); !sent) co_return sent.error();

  auto answer = co_await link_->recv(options.timeout);
  if (!answer) co_return answer.error();
  HelloReply reply;
  switch (answer->body_case()) {
    case v1::Frame::kWelcome:
      reply.welcome = std::move(*answer->mutable_welcome());
      welcome_ = reply.welcome;
      break;
    case v1::Frame::kError:
      reply.error = std::move(*answer->mutable_error());
      break;
    case v1::Frame::kRedirect:
      reply.redirect = std::move(*answer->mutable_redirect());
      break;
    default:
      co_return make_error_code(errc::protocol_error);
  }
  co_return reply;
}

asio::awaitable<result<void>> Device::ping(uint64_t client_time_ms) {
  v1::Frame frame;
  frame.mutable_ping()->set_client_time_ms(client_time_ms != 0 ? client_time_ms : unix_ms());
  co_return co_await link_->send(frame);
}

asio::awaitable<result<void>> Device::ack(std::vector<std::string> message_ids, uint64_t last_seq) {
  v1::Frame frame;
  auto* ack = frame.mutable_ack();
  for (auto& id : message_ids) ack->add_message_ids(std::move(id));
  ack->set_last_seq(last_seq);
  co_return co_await link_->send(frame);
}

asio::awaitable<result<void>> Device::upstream(std::string request_id, std::string channel,
                                               std::string payload) {
  v1::Frame frame;
  auto* up = frame.mutable_upstream();
  up->set_request_id(std::move(request_id));
  up->set_channel(std::move(channel));
  up->set_payload(std::move(payload));
  co_return co_await link_->send(frame);
}

asio::awaitable<result<void>> Device::subscribe(std::vector<std::string> add,
                                                std::vector<std::string> remove) {
  v1::Frame frame;
  auto* sub = frame.mutable_subscribe();
  for (auto& t : add) sub->add_add(std::move(t));
  for (auto& t : remove) sub->add_remove(std::move(t));
  co_return co_await link_->send(frame);
}

asio::awaitable<result<void>> Device::bye(std::string reason) {
  v1::Frame frame;
  frame.mutable_bye()->set_reason(std::move(reason));
  co_return co_await link_->send(frame);
}

asio::awaitable<result<v1::Frame>> Device::recv(std::chrono::milliseconds timeout) {
  if (!kept_.empty()) {
    v1::Frame frame = std::move(kept_.front());
    kept_.erase(kept_.begin());
    co_return frame;
  }
  co_return co_await link_->recv(timeout);
}

asio::awaitable<result<v1::Frame>> Device::recv_until(v1::Frame::BodyCase kind,
                                                      std::chrono::milliseconds timeout) {
  for (auto it = kept_.begin(); it != kept_.end(); ++it) {
    if (it->body_case() == kind || it->body_case() == v1::Frame::kError) {
      v1::Frame frame = std::move(*it);
      kept_.erase(it);
      co_return frame;
    }
  }
  const auto start = SteadyClock::now();
  for (;;) {
    auto next = co_await link_->recv(remaining(timeout, start));
    if (!next) co_return next.error();
    if (next->body_case() == kind || next->body_case() == v1::Frame::kError) co_return next;
    kept_.push_back(std::move(*next));
  }
}

asio::awaitable<void> Device::close() { co_await link_->close(); }

}  // namespace pushgw::client
