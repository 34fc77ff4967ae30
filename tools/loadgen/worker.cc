#include "worker.h"

#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/auth/device_token.h"
#include "pushgw_client/device.h"

namespace pushgw::loadgen {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

std::string device_id(const std::string& prefix, uint32_t i) {
  char b[16];
  std::snprintf(b, sizeof b, "%07u", i);
  return prefix + b;
}

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void emit(const json::object& o) {
  const std::string s = json::serialize(o) + "\n";
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

struct Sim {
  uint32_t index = 0;  // global
  std::string device_id;
  client::Transport transport = client::Transport::kTcp;
  std::shared_ptr<client::Device> dev;
  std::string node_id;
  uint64_t last_seq = 0;
  bool open = false;
  bool failed = false;
};

class Worker {
 public:
  explicit Worker(const WorkerOptions& o) : o_(o), rng_(std::random_device{}() + o.index) {}

  int run() {
    for (const auto& t : o_.transports) {
      if (t == "tcp") transports_.push_back(client::Transport::kTcp);
      else if (t == "tls") transports_.push_back(client::Transport::kTls);
      else if (t == "ws") transports_.push_back(client::Transport::kWs);
      else if (t == "wss") transports_.push_back(client::Transport::kWss);
      else {
        std::fprintf(stderr, "loadgen worker: unknown transport %s\n", t.c_str());
        return 2;
      }
    }
    client::TlsOptions to;
    to.verify_peer = false;  // the local cluster's certificate is self-signed
    auto tls = client::ClientTls::create(to);
    if (!tls) {
      std::fprintf(stderr, "loadgen worker: TLS context: %s\n", tls.error().message().c_str());
      return 1;
    }
    tls_ = *tls;
    sims_.resize(o_.count);
    for (uint32_t i = 0; i < o_.count; ++i) {
      Sim& s = sims_[i];
      s.index = o_.first + i;
      s.device_id = device_id(o_.device_prefix, s.index);
      s.transport = transports_[s.index % transports_.size()];
    }
    // Control: "stop" (or EOF) on stdin ends the run.
    std::thread control([this] {
      std::string line;
      while (std::getline(std::cin, line)) {
        if (line == "stop") break;
      }
      asio::post(io_, [this] { asio::co_spawn(io_, stop(), asio::detached); });
    });
    control.detach();
    connect_t0_ = std::chrono::steady_clock::now();
    openers_ = std::min<uint32_t>(std::max<uint32_t>(o_.inflight, 1), std::max<uint32_t>(o_.count, 1));
    for (uint32_t i = 0; i < openers_; ++i) asio::co_spawn(io_, opener(), asio::detached);
    asio::co_spawn(io_, reporter(), asio::detached);
    io_.run();
    return 0;
  }

 private:
  // --- connecting ---------------------------------------------------------

  asio::awaitable<void> opener() {
    for (;;) {
      const uint32_t i = next_++;
      if (i >= o_.count) break;
      Sim& s = sims_[i];
      std::string err;
      for (uint32_t a = 0; a < o_.attempts && !s.open; ++a) {
        if (stopping_) break;
        err = co_await connect_device(s);
        if (!s.open) {
          ++retries_;
          asio::steady_timer t(io_);
          t.expires_after(std::chrono::milliseconds(200 * (a + 1)));
          co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        }
      }
      if (s.open) {
        ++connected_;
      } else {
        s.failed = true;
        ++failed_;
        if (first_error_.empty()) first_error_ = s.device_id + ": " + err;
      }
    }
    if (++openers_done_ == openers_) connected_event();
  }

  // GET /v1/dispatch from the worker's source address.
  asio::awaitable<result<std::string>> dispatch(const std::string& dev_id) {
    auto ex = co_await asio::this_coro::executor;
    boost::system::error_code ec;
    tcp::socket sock(ex);
    sock.open(tcp::v4(), ec);
    if (ec) co_return ec;
    if (!o_.source.empty()) {
      // Ports of the source address are picked at connect time, per destination.
      int one = 1;
      ::setsockopt(sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      sock.bind(tcp::endpoint(asio::ip::make_address(o_.source), 0), ec);
      if (ec) co_return ec;
    }
    beast::tcp_stream stream(std::move(sock));
    stream.expires_after(std::chrono::seconds(o_.connect_timeout_s));
    tcp::endpoint api(asio::ip::make_address(o_.api_host, ec),
                      static_cast<uint16_t>(std::stoi(o_.api_port)));
    if (ec) co_return ec;
    auto [cec] = co_await stream.async_connect(api, asio::as_tuple(asio::use_awaitable));
    if (cec) co_return cec;
    http::request<http::empty_body> req{http::verb::get,
                                        "/v1/dispatch?app_id=" + o_.app_id + "&device_id=" + dev_id,
                                        11};
    req.set(http::field::host, o_.api_host + ":" + o_.api_port);
    req.keep_alive(false);
    auto [wec, wn] = co_await http::async_write(stream, req, asio::as_tuple(asio::use_awaitable));
    if (wec) co_return wec;
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    auto [rec, rn] =
        co_await http::async_read(stream, buf, res, asio::as_tuple(asio::use_awaitable));
    if (rec) co_return rec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    if (res.result_int() != 200) co_return make_error_code(errc::unavailable);
    co_return std::move(res.body());
  }

  // One attempt: dispatch, then the endpoints in the order dispatch gave
  // them until one accepts the Hello. "" on success, else the last reason.
  asio::awaitable<std::string> connect_device(Sim& s) {
    auto body = co_await dispatch(s.device_id);
    if (!body) co_return "dispatch: " + body.error().message();
    boost::system::error_code ec;
    auto v = json::parse(*body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("endpoints") ||
        !v.at("endpoints").is_array() || v.at("endpoints").as_array().empty()) {
      co_return "dispatch: no live node (" + *body + ")";
    }
    const std::string key(client::to_string(s.transport));
    std::string err = "no endpoint";
    size_t tried = 0;
    for (const auto& e : v.at("endpoints").as_array()) {
      if (tried >= 3) break;
      if (!e.is_object()) continue;
      const auto* addr = e.as_object().if_contains(key);
      if (!addr || !addr->is_string() || addr->as_string().empty()) {
        err = "dispatch: node has no " + key + " listener";
        continue;
      }
      ++tried;
      std::string url = key + "://" + std::string(addr->as_string());
      if (client::uses_websocket(s.transport)) url += "/ws";
      auto ep = client::parse_endpoint(url);
      if (!ep) {
        err = "bad endpoint " + url;
        continue;
      }
      err = co_await hello(s, *ep);
      if (s.open) co_return "";
    }
    co_return err;
  }

  asio::awaitable<std::string> hello(Sim& s, client::Endpoint ep) {
    client::ConnectOptions co;
    co.tls = tls_;
    co.local_address = o_.source;
    co.connect_timeout = std::chrono::seconds(o_.connect_timeout_s);
    auto link = co_await client::Link::connect(io_.get_executor(), ep, co);
    if (!link) co_return "connect " + client::to_url(ep) + ": " + link.error().message();
    auto dev = std::make_shared<client::Device>(std::move(*link));
    auth::DeviceClaims claims;
    claims.app_id = o_.app_id;
    claims.device_id = s.device_id;
    claims.exp_s = static_cast<uint64_t>(now_ms() / 1000 + 86400);
    std::string token = auth::mint_device_token(claims, o_.device_secret);
    std::string app_id = o_.app_id;
    std::string dev_id = s.device_id;
    std::vector<std::string> topics;
    client::HelloOptions ho;
    ho.platform = v1::ANDROID;
    ho.timeout = std::chrono::seconds(o_.connect_timeout_s);
    auto hello_op = dev->hello(std::move(app_id), std::move(dev_id), std::move(token), s.last_seq,
                               std::move(topics), std::move(ho));
    auto reply = co_await std::move(hello_op);
    if (!reply) {
      co_await dev->close();
      co_return "hello: " + reply.error().message();
    }
    if (!reply->welcome) {
      co_await dev->close();
      co_return "hello refused: " + (reply->error ? reply->error->ShortDebugString()
                                                  : reply->redirect->ShortDebugString());
    }
    s.node_id = reply->welcome->node_id();
    s.dev = dev;
    s.open = true;
    uint32_t hb = o_.heartbeat_s ? o_.heartbeat_s : reply->welcome->heartbeat_s();
    if (hb == 0) hb = 30;
    asio::co_spawn(io_, reader(&s, dev), asio::detached);
    asio::co_spawn(io_, pinger(&s, dev, hb), asio::detached);
    co_return "";
  }

  // --- running ------------------------------------------------------------

  asio::awaitable<void> reader(Sim* s, std::shared_ptr<client::Device> dev) {
    std::string why;
    for (;;) {
      auto f = co_await dev->recv(client::kNoTimeout);
      if (!f) {
        why = f.error().message();
        break;
      }
      if (f->has_push()) {
        const auto& p = f->push();
        const int64_t lat = now_ms() - static_cast<int64_t>(p.created_ms());
        rx_.emplace_back(json::array{json::string(p.message_id()), s->index, lat});
        ++received_;
        if (p.seq() > s->last_seq) s->last_seq = p.seq();
        if (p.ack_required()) {
          std::vector<std::string> ids;
          ids.push_back(p.message_id());
          auto ack_op = dev->ack(std::move(ids), s->last_seq);
          (void)co_await std::move(ack_op);
        }
      } else if (f->has_pong()) {
        ++pongs_;
      } else if (f->has_error() || f->has_redirect() || f->has_bye()) {
        why = f->ShortDebugString();
        break;
      }
    }
    if (s->dev == dev) {
      s->open = false;
      if (!stopping_) {
        ++dropped_;
        if (first_drop_.empty()) first_drop_ = s->device_id + ": " + why;
      }
    }
  }

  asio::awaitable<void> pinger(Sim* s, std::shared_ptr<client::Device> dev, uint32_t hb_s) {
    asio::steady_timer t(io_);
    const auto hb = std::chrono::milliseconds(int64_t{hb_s} * 1000);
    std::uniform_int_distribution<int64_t> half(hb.count() / 2, hb.count());
    std::uniform_int_distribution<int64_t> first(0, hb.count());
    auto wait = o_.heartbeat_random ? std::chrono::milliseconds(first(rng_)) : hb;
    for (;;) {
      t.expires_after(wait);
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      if (stopping_ || !s->open || s->dev != dev) co_return;
      auto ping_op = dev->ping();
      auto r = co_await std::move(ping_op);
      if (!r) co_return;
      ++pings_;
      wait = o_.heartbeat_random ? std::chrono::milliseconds(half(rng_)) : hb;
    }
  }

  // --- reporting ----------------------------------------------------------

  void connected_event() {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - connect_t0_).count();
    json::object nodes;
    json::array failed;
    for (const auto& s : sims_) {
      if (s.open) {
        auto& c = nodes[s.node_id];
        c = c.is_null() ? 1 : c.as_int64() + 1;
      }
      if (s.failed) failed.push_back(s.index);
    }
    json::object o{{"ev", "connected"}, {"worker", o_.index},   {"connected", connected_},
                   {"failed", failed_}, {"retries", retries_}, {"seconds", secs},
                   {"nodes", std::move(nodes)}, {"failed_devices", std::move(failed)},
                   {"first_error", first_error_}};
    emit(o);
  }

  void flush_rx() {
    while (!rx_.empty()) {
      json::array chunk;
      const size_t n = std::min<size_t>(rx_.size(), 4000);
      for (size_t i = 0; i < n; ++i) chunk.push_back(std::move(rx_[i]));
      rx_.erase(rx_.begin(), rx_.begin() + static_cast<long>(n));
      json::object o{{"ev", "rx"}, {"r", std::move(chunk)}};
      emit(o);
    }
  }

  json::object stats(const char* ev) const {
    uint64_t open = 0;
    for (const auto& s : sims_) open += s.open ? 1 : 0;
    return json::object{{"ev", ev},           {"worker", o_.index},   {"connected", connected_},
                        {"failed", failed_},  {"open", open},         {"dropped", dropped_},
                        {"pings", pings_},    {"pongs", pongs_},      {"received", received_},
                        {"first_drop", first_drop_}};
  }

  asio::awaitable<void> reporter() {
    asio::steady_timer t(io_);
    auto last_progress = std::chrono::steady_clock::now();
    while (!stopping_) {
      t.expires_after(100ms);
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      flush_rx();
      if (std::chrono::steady_clock::now() - last_progress >= 1s) {
        last_progress = std::chrono::steady_clock::now();
        emit(stats("progress"));
      }
    }
  }

  asio::awaitable<void> stop() {
    if (stopping_) co_return;
    flush_rx();
    auto final_stats = stats("done");
    stopping_ = true;
    for (auto& s : sims_) {
      if (!s.dev) continue;
      auto dev = s.dev;
      s.open = false;
      auto bye_op = dev->bye("loadgen done");
      (void)co_await std::move(bye_op);
      co_await dev->close();
    }
    emit(final_stats);
    std::fflush(stdout);
    // Links are closed; skip the teardown of tens of thousands of coroutine frames.
    ::_exit(0);
  }

  WorkerOptions o_;
  asio::io_context io_{1};
  std::shared_ptr<client::ClientTls> tls_;
  std::vector<client::Transport> transports_;
  std::vector<Sim> sims_;
  std::mt19937_64 rng_;
  std::chrono::steady_clock::time_point connect_t0_;
  uint32_t next_ = 0;
  uint32_t openers_ = 0;
  uint32_t openers_done_ = 0;
  uint64_t connected_ = 0, failed_ = 0, retries_ = 0, dropped_ = 0;
  uint64_t pings_ = 0, pongs_ = 0, received_ = 0;
  std::string first_error_, first_drop_;
  std::vector<json::value> rx_;
  bool stopping_ = false;
};

}  // namespace

int run_worker(const WorkerOptions& o) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < o.count + o.inflight + 64) {
      std::fprintf(stderr, "loadgen worker %u: fd limit %llu is too low for %u devices\n", o.index,
                   static_cast<unsigned long long>(rl.rlim_cur), o.count);
      return 2;
    }
  }
  Worker w(o);
  return w.run();
}

}  // namespace pushgw::loadgen
