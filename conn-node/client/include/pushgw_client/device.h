#pragma once
/// A device session on top of a Link: typed helpers for every client frame of
/// device-protocol.md and the Hello/Welcome exchange.
///
///   auto link = co_await Link::connect(ex, *parse_endpoint("tls://127.0.0.1:7443"), opts);
///   Device dev(std::move(*link));
///   auto reply = co_await dev.hello("demo", "dev-1", token, 0, {"news"});
///   if (reply && reply->welcome) { co_await dev.ping(); auto f = co_await dev.recv(5s); }
///
/// Same executor model as Link (the Device is used from the link's executor,
/// one recv at a time). Frames that recv_until() skips are kept, in order,
/// and returned by the next recv()/recv_until() first.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "proto/pushgw.pb.h"
#include "pushgw_client/link.h"

namespace pushgw::client {

struct HelloOptions {
  v1::Platform platform = v1::OTHER;
  std::string app_version;
  std::string resume_ticket;
  /// Sent as Hello.protocol_version (tests send other values on purpose).
  uint32_t protocol_version = 1;
  /// How long to wait for the server's answer.
  std::chrono::milliseconds timeout{10'000};
};

/// The server's answer to Hello: exactly one member is set. An Error or a
/// Redirect means the server is closing the link.
struct HelloReply {
  std::optional<v1::Welcome> welcome;
  std::optional<v1::Error> error;
  std::optional<v1::Redirect> redirect;

  bool accepted() const noexcept { return welcome.has_value(); }
};

class Device {
 public:
  explicit Device(std::unique_ptr<Link> link);
  Device(Device&&) noexcept;
  Device& operator=(Device&&) noexcept;
  ~Device();

  Link& link() noexcept { return *link_; }
  /// The Welcome of the last accepted hello().
  const std::optional<v1::Welcome>& welcome() const noexcept { return welcome_; }

  /// Sends Hello and waits for Welcome, Error or Redirect. Transport errors,
  /// errc::timeout (no answer in options.timeout) and errc::protocol_error
  /// (another frame came first) are errors; the server's refusal is a value.
  asio::awaitable<result<HelloReply>> hello(std::string app_id, std::string device_id,
                                            std::string token, uint64_t last_seq = 0,
                                            std::vector<std::string> topics = {},
                                            HelloOptions options = {});

  /// Ping with `client_time_ms` (0: the current unix time in ms).
  asio::awaitable<result<void>> ping(uint64_t client_time_ms = 0);
  asio::awaitable<result<void>> ack(std::vector<std::string> message_ids, uint64_t last_seq = 0);
  asio::awaitable<result<void>> upstream(std::string request_id, std::string channel,
                                         std::string payload);
  asio::awaitable<result<void>> subscribe(std::vector<std::string> add,
                                          std::vector<std::string> remove = {});
  asio::awaitable<result<void>> bye(std::string reason = {});

  /// The next frame (Push, Pong, UpstreamAck, SubscribeAck, Redirect, Error,
  /// Bye, ...): kept frames first, then the link.
  asio::awaitable<result<v1::Frame>> recv(std::chrono::milliseconds timeout);

  /// The next frame of kind `kind`, keeping every other frame that arrives
  /// meanwhile for later recv()s. An Error frame from the server ends the
  /// wait early and is returned (the server closes after it). `timeout` bounds
  /// the whole wait.
  asio::awaitable<result<v1::Frame>> recv_until(v1::Frame::BodyCase kind,
                                                std::chrono::milliseconds timeout);

  /// Number of frames kept by recv_until().
  size_t pending() const noexcept { return kept_.size(); }

  asio::awaitable<void> close();

 private:
  std::unique_ptr<Link> link_;
  std::optional<v1::Welcome> welcome_;
  std::vector<v1::Frame> kept_;
};

}  // namespace pushgw::client
