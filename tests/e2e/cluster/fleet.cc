#include "fleet.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <random>

#include "common/auth/device_token.h"

namespace pushgw::e2e {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using pushgw::client::Device;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

struct Fleet::Sim {
  int index = 0;
  std::string device_id;
  bool ws = false;
  std::mutex connect_mu;  // one connect at a time

  mutable std::mutex mu;  // everything below
  std::shared_ptr<Device> dev;
  bool connected = false;
  bool want = false;  // reconnect when the link ends (auto-reconnect)
  int connection = 0;
  std::string node;
  uint64_t last_seq = 0;
  std::vector<int> errors;
  int redirects = 0;
  std::string redirect_to;  // "host:port" from the last Redirect
  int64_t not_before_ms = 0;
  std::vector<Receipt> receipts;
};

namespace {

asio::awaitable<std::string> do_hello(std::shared_ptr<Device> dev, std::string app_id,
                                      std::string device_id, std::string token,
                                      uint64_t last_seq, std::string* node) {
  auto hello_op = dev->hello(std::move(app_id), std::move(device_id), std::move(token), last_seq);
  auto reply = co_await std::move(hello_op);
  if (!reply) co_return "hello: " + reply.error().message();
  if (reply->error) co_return "hello refused: " + reply->error->ShortDebugString();
  if (reply->redirect) co_return "hello redirected: " + reply->redirect->ShortDebugString();
  *node = reply->welcome->node_id();
  co_return "";
}

}  // namespace

Fleet::Fleet(const Cluster& cluster) : cluster_(cluster) {
  io_thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(io_);
    io_.run();
  });
  const size_t shards = 4;
  for (size_t t = 0; t < shards; ++t) {
    supervisors_.emplace_back([this, t, shards] { supervise(t, shards); });
  }
}

Fleet::~Fleet() {
  stop_ = true;
  for (auto& t : supervisors_) t.join();
  for (auto& s : sims_) {
    {
      std::lock_guard l(s->mu);
      s->want = false;
    }
    close_link(*s);
  }
  io_.stop();
  io_thread_.join();
}

int Fleet::add(const std::string& device_id, bool ws) {
  auto s = std::make_unique<Sim>();
  s->index = static_cast<int>(sims_.size());
  s->device_id = device_id;
  s->ws = ws;
  // Supervisors only look at sims_[0, published_) (see supervise()).
  std::lock_guard l(mu_);
  sims_.push_back(std::move(s));
  return static_cast<int>(sims_.size()) - 1;
}

void Fleet::add_many(int n, const std::string& prefix, bool mix_transports) {
  for (int i = 0; i < n; ++i) {
    char id[96];
    std::snprintf(id, sizeof id, "%s-%03d", prefix.c_str(), i);
    add(id, mix_transports && i % 2 == 1);
  }
}

const std::string& Fleet::device_id(int i) const { return sims_.at(static_cast<size_t>(i))->device_id; }

std::string Fleet::connect(int i, std::optional<uint64_t> last_seq,
                           const std::string& endpoint_url) {
  Sim& s = *sims_.at(static_cast<size_t>(i));
  std::lock_guard cl(s.connect_mu);
  uint64_t ls;
  {
    std::lock_guard l(s.mu);
    ls = last_seq.value_or(s.last_seq);
    s.want = true;
  }
  return connect_locked(s, ls, endpoint_url);
}

std::string Fleet::connect_locked(Sim& s, uint64_t last_seq, const std::string& endpoint_url) {
  if (!endpoint_url.empty()) return hello(s, endpoint_url, last_seq);
  const std::string path = "/v1/dispatch?app_id=" + cluster_.app().id + "&device_id=" + s.device_id;
  auto r = cluster_.call("GET", path, "", false, 5s);
  if (!r) return "dispatch: " + r.error().message();
  if (r->status != 200) return "dispatch: HTTP " + std::to_string(r->status) + " " + r->body;
  boost::system::error_code ec;
  auto v = json::parse(r->body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("endpoints") ||
      !v.at("endpoints").is_array() || v.at("endpoints").as_array().empty()) {
    return "dispatch: no live node (" + r->body + ")";
  }
  // Least loaded first; a node killed a moment ago may still be listed until
  // its lease expires: try the next one.
  std::string why;
  for (const auto& e : v.at("endpoints").as_array()) {
    const auto* key = s.ws ? "ws" : "tcp";
    const auto* addr = e.as_object().if_contains(key);
    if (!addr || !addr->is_string() || addr->as_string().empty()) continue;
    std::string url = std::string(key) + "://" + std::string(addr->as_string());
    if (s.ws) url += "/ws";
    why = hello(s, url, last_seq);
    if (why.empty()) return "";
  }
  return why.empty() ? "dispatch: no endpoint for the transport (" + r->body + ")" : why;
}

std::string Fleet::hello(Sim& s, const std::string& url, uint64_t last_seq) {
  auto ep = pushgw::client::parse_endpoint(url);
  if (!ep) return "bad endpoint " + url;
  pushgw::auth::DeviceClaims claims{cluster_.app().id, s.device_id, "",
                                    static_cast<uint64_t>(now_ms() / 1000 + 3600)};
  auto token = pushgw::auth::mint_device_token(claims, cluster_.app().device_secret);

  // Connect and Hello on the io thread.
  auto fut = asio::co_spawn(
      io_,
      [this, &s, endpoint = *ep, token = std::move(token),
       last_seq]() mutable -> asio::awaitable<std::string> {
        pushgw::client::ConnectOptions co;
        co.connect_timeout = 5s;
        co.send_timeout = 5s;
        auto link = co_await pushgw::client::Link::connect(io_.get_executor(), endpoint, co);
        if (!link) {
          co_return "connect " + pushgw::client::to_url(endpoint) + ": " + link.error().message();
        }
        auto dev = std::make_shared<Device>(std::move(*link));
        std::string node;
        // Named locals moved in (GCC 12 and by-value string temporaries in
        // co_await expressions: see tools/pushgw-demo/main.cc).
        std::string app_id = cluster_.app().id;
        std::string device_id = s.device_id;
        auto op = do_hello(dev, std::move(app_id), std::move(device_id), std::move(token),
                           last_seq, &node);
        std::string why = co_await std::move(op);
        if (!why.empty()) {
          co_await dev->close();
          co_return why;
        }
        int gen;
        {
          std::lock_guard l(s.mu);
          gen = ++s.connection;
          s.dev = dev;
          s.connected = true;
          s.node = node;
          s.redirect_to.clear();
        }
        // The reader: records and acks Pushes until the link ends.
        asio::co_spawn(
            io_,
            [this, &s, dev, gen]() -> asio::awaitable<void> {
              bool reconnect = true;
              int64_t delay_ms = 100;
              for (;;) {
                auto f = co_await dev->recv(10s);
                if (!f) {
                  if (f.error() == make_error_code(errc::timeout)) {
                    (void)co_await dev->ping();
                    continue;
                  }
                  break;
                }
                if (f->has_push()) {
                  const auto& p = f->push();
                  Receipt r;
                  r.device = s.index;
                  r.message_id = p.message_id();
                  r.seq = p.seq();
                  r.latency_ms = now_ms() - static_cast<int64_t>(p.created_ms());
                  r.connection = gen;
                  r.marketing = p.traffic_class() == v1::MARKETING;
                  uint64_t ls;
                  {
                    std::lock_guard l(s.mu);
                    s.receipts.push_back(r);
                    if (p.seq() > s.last_seq) s.last_seq = p.seq();
                    ls = s.last_seq;
                  }
                  {
                    std::lock_guard l(mu_);
                    by_id_[r.message_id].push_back(r);
                    ++total_;
                  }
                  if (p.ack_required() && auto_ack_) {
                    std::vector<std::string> ids{p.message_id()};
                    (void)co_await dev->ack(std::move(ids), ls);
                  }
                } else if (f->has_error()) {
                  std::lock_guard l(s.mu);
                  s.errors.push_back(static_cast<int>(f->error().code()));
                  if (f->error().code() == v1::SESSION_REPLACED) reconnect = false;
                  break;
                } else if (f->has_redirect()) {
                  std::lock_guard l(s.mu);
                  ++s.redirects;
                  if (f->redirect().endpoints_size() > 0) {
                    s.redirect_to = f->redirect().endpoints(0);
                  }
                  delay_ms = f->redirect().retry_after_ms();
                  break;
                } else if (f->has_bye()) {
                  break;
                }
              }
              co_await dev->close();
              static thread_local std::minstd_rand rng(std::random_device{}());
              std::lock_guard l(s.mu);
              if (s.connection == gen) {
                s.connected = false;
                s.dev.reset();
                if (!reconnect) s.want = false;
                s.not_before_ms = now_ms() + delay_ms + static_cast<int64_t>(rng() % 200);
              }
            },
            asio::detached);
        co_return "";
      },
      asio::use_future);
  if (fut.wait_for(30s) != std::future_status::ready) return "hello: no answer in 30 s";
  return fut.get();
}

std::string Fleet::connect_all() {
  std::atomic<size_t> next{0};
  std::mutex err_mu;
  std::string first;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (size_t i = next++; i < sims_.size(); i = next++) {
        auto why = connect(static_cast<int>(i));
        if (!why.empty()) {
          std::lock_guard l(err_mu);
          if (first.empty()) first = sims_[i]->device_id + ": " + why;
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  return first;
}

void Fleet::close_link(Sim& s) {
  std::shared_ptr<Device> dev;
  {
    std::lock_guard l(s.mu);
    dev = s.dev;
  }
  if (!dev) return;
  auto fut = asio::co_spawn(
      io_,
      [dev]() -> asio::awaitable<void> {
        std::string reason = "test done";
        (void)co_await dev->bye(std::move(reason));
        co_await dev->close();
      },
      asio::use_future);
  fut.wait_for(5s);
  // The reader sees the close and marks the device disconnected.
  eventually(
      [&] {
        std::lock_guard l(s.mu);
        return !s.connected;
      },
      5s, 10ms);
}

void Fleet::disconnect(int i) {
  Sim& s = *sims_.at(static_cast<size_t>(i));
  std::lock_guard cl(s.connect_mu);
  {
    std::lock_guard l(s.mu);
    s.want = false;
  }
  close_link(s);
}

bool Fleet::ack(int i, std::vector<std::string> message_ids, uint64_t last_seq) {
  Sim& s = *sims_.at(static_cast<size_t>(i));
  std::shared_ptr<Device> dev;
  {
    std::lock_guard l(s.mu);
    dev = s.dev;
  }
  if (!dev) return false;
  auto fut = asio::co_spawn(
      io_,
      [dev, ids = std::move(message_ids), last_seq]() mutable -> asio::awaitable<bool> {
        auto r = co_await dev->ack(std::move(ids), last_seq);
        co_return bool(r);
      },
      asio::use_future);
  if (fut.wait_for(10s) != std::future_status::ready) return false;
  return fut.get();
}

void Fleet::supervise(size_t shard, size_t shards) {
  while (!stop_) {
    std::this_thread::sleep_for(20ms);
    if (!auto_reconnect_) continue;
    size_t n;
    {
      std::lock_guard l(mu_);
      n = sims_.size();
    }
    for (size_t i = shard; i < n && !stop_; i += shards) {
      Sim* s;
      {
        std::lock_guard l(mu_);
        s = sims_[i].get();
      }
      std::unique_lock cl(s->connect_mu, std::try_to_lock);
      if (!cl.owns_lock()) continue;
      std::string redirect;
      uint64_t ls;
      {
        std::lock_guard l(s->mu);
        if (!s->want || s->connected || now_ms() < s->not_before_ms) continue;
        ls = s->last_seq;
        redirect = s->redirect_to;
        s->redirect_to.clear();
      }
      std::string url;
      if (!redirect.empty()) {
        url = (s->ws ? "ws://" : "tcp://") + redirect + (s->ws ? "/ws" : "");
      }
      auto why = connect_locked(*s, ls, url);
      if (!why.empty()) {
        std::lock_guard l(s->mu);
        s->not_before_ms = now_ms() + 300;
      }
    }
  }
}

bool Fleet::connected(int i) const {
  const Sim& s = *sims_.at(static_cast<size_t>(i));
  std::lock_guard l(s.mu);
  return s.connected;
}

int Fleet::connections(int i) const {
  const Sim& s = *sims_.at(static_cast<size_t>(i));
  std::lock_guard l(s.mu);
  return s.connection;
}

std::string Fleet::node_of(int i) const {
  const Sim& s = *sims_.at(static_cast<size_t>(i));
  std::lock_guard l(s.mu);
  return s.connected ? s.node : std::string();
}

uint64_t Fleet::last_seq(int i) const {
  const Sim& s = *sims_.at(static_cast<size_t>(i));
  std::lock_guard l(s.mu);
  return s.last_seq;
}

std::vector<int> Fleet::errors(int i) const {
  const Sim& s = *sims_.at(static_cast<size_t>(i));
  std::lock_guard l(s.mu);
  return s.errors;
}

int Fleet::redirects(int i) const {
  const Sim& s = *sims_.at(static_cast<size_t>(i));
  std::lock_guard l(s.mu);
  return s.redirects;
}

std::vector<Receipt> Fleet::receipts_of(int i) const {
  const Sim& s = *sims_.at(static_cast<size_t>(i));
  std::lock_guard l(s.mu);
  return s.receipts;
}

std::vector<Receipt> Fleet::receipts(const std::string& message_id) const {
  std::lock_guard l(mu_);
  auto it = by_id_.find(message_id);
  return it == by_id_.end() ? std::vector<Receipt>{} : it->second;
}

uint64_t Fleet::total_receipts() const {
  std::lock_guard l(mu_);
  return total_;
}

}  // namespace pushgw::e2e
