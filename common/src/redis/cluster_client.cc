#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/dispatch.hpp>
#include <charconv>
#include <exception>
#include <map>

#include "clients.h"
#include "common/redis/slot.h"
#include "connection_impl.h"

namespace pushgw::redis::detail {
namespace {

using namespace std::chrono_literals;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kTryAgainDelay = 20ms;

struct Redirect {
  std::uint16_t slot = 0;
  Endpoint target;
};

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 :6381" (empty host: same host as the
// node that answered).
std::optional<Redirect> parse_redirect(const std::string& msg, const Endpoint& from) {
  auto sp1 = msg.find(' ');
  if (sp1 == std::string::npos) return std::nullopt;
  auto sp2 = msg.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) return std::nullopt;
  std::string_view slot_txt(msg.data() + sp1 + 1, sp2 - sp1 - 1);
  std::string_view addr(msg.data() + sp2 + 1, msg.size() - sp2 - 1);
  unsigned slot = 0;
  auto [p, ec] = std::from_chars(slot_txt.data(), slot_txt.data() + slot_txt.size(), slot);
  if (ec != std::errc() || slot >= kSlotCount) return std::nullopt;
  auto colon = addr.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  unsigned port = 0;
  auto port_txt = addr.substr(colon + 1);
  auto [pp, pec] = std::from_chars(port_txt.data(), port_txt.data() + port_txt.size(), port);
  if (pec != std::errc() || port == 0 || port > 65535) return std::nullopt;
  Redirect r;
  r.slot = static_cast<std::uint16_t>(slot);
  r.target.host = colon == 0 ? from.host : std::string(addr.substr(0, colon));
  r.target.port = static_cast<std::uint16_t>(port);
  return r;
}

void log_escaped(const char* what, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("redis cluster: {} ended with an exception: {}", what, x.what());
  } catch (...) {
    spdlog::error("redis cluster: {} ended with an unknown exception", what);
  }
}

const Command& asking_command() {
  static const Command kAsking{"ASKING"};
  return kAsking;
}

// All cluster state; lives on `strand`, shared with the coroutines working on it.
struct ClusterState : std::enable_shared_from_this<ClusterState> {
  ClusterState(asio::any_io_executor s, ClientConfig c, std::shared_ptr<Metrics> m)
      : strand(std::move(s)), cfg(std::move(c)), metrics(std::move(m)), slots(kSlotCount) {}

  asio::any_io_executor strand;
  ClientConfig cfg;
  std::shared_ptr<Metrics> metrics;
  std::map<std::string, std::shared_ptr<ConnectionImpl>> nodes;  // by "host:port"
  std::vector<std::shared_ptr<ConnectionImpl>> slots;            // slot -> master
  bool map_loaded = false;
  bool refreshing = false;
  bool closed = false;
  std::shared_ptr<asio::steady_timer> refresh_done;
  std::chrono::steady_clock::time_point last_refresh{};

  /// The connection to `ep`, created on first use; nullptr once closed.
  std::shared_ptr<ConnectionImpl> node(const Endpoint& ep) {
    if (closed) return nullptr;
    auto key = ep.to_string();
    auto it = nodes.find(key);
    if (it != nodes.end()) return it->second;
    auto c = std::make_shared<ConnectionImpl>(strand, ep, cfg.connection, metrics);
    c->start();
    nodes.emplace(key, c);
    return c;
  }

  std::shared_ptr<ConnectionImpl> any_node() {
    for (auto& [k, c] : nodes) {
      if (c->connected()) return c;
    }
    return nodes.empty() ? nullptr : nodes.begin()->second;
  }

  std::shared_ptr<ConnectionImpl> route(const Command& c) {
    auto key = c.key();
    if (!key) return any_node();
    return slots[key_slot(*key)];
  }

  // Applies a CLUSTER SLOTS reply. False if it is malformed.
  bool apply_slots(const Reply& r, const Endpoint& from) {
    if (!r.is_array()) return false;
    std::vector<std::shared_ptr<ConnectionImpl>> fresh(kSlotCount);
    std::map<std::string, std::shared_ptr<ConnectionImpl>> used;
    for (const auto& range : r.elements()) {
      const auto& e = range.elements();
      if (!range.is_array() || e.size() < 3 || !e[0].is_integer() || !e[1].is_integer() ||
          !e[2].is_array() || e[2].elements().size() < 2) {
        return false;
      }
      auto lo = e[0].integer();
      auto hi = e[1].integer();
      const auto& master = e[2].elements();
      if (lo < 0 || hi >= kSlotCount || lo > hi || !master[1].is_integer()) return false;
      Endpoint ep;
      ep.host = master[0].is_string() ? master[0].str() : std::string();
      if (ep.host.empty() || ep.host == "?") ep.host = from.host;
      auto port = master[1].integer();
      if (port <= 0 || port > 65535) return false;
      ep.port = static_cast<std::uint16_t>(port);
      auto conn = node(ep);
      if (!conn) return false;
      used.emplace(ep.to_string(), conn);
      for (auto s = lo; s <= hi; ++s) fresh[static_cast<std::size_t>(s)] = conn;
    }
    slots = std::move(fresh);
    // Nodes that own no slot any more (or seed aliases of a master) are closed.
    for (auto it = nodes.begin(); it != nodes.end();) {
      if (used.count(it->first) == 0) {
        it->second->close();
        it = nodes.erase(it);
      } else {
        ++it;
      }
    }
    map_loaded = true;
    return true;
  }

  void schedule_refresh() {
    if (closed || refreshing) return;
    if (std::chrono::steady_clock::now() - last_refresh < cfg.slot_refresh_interval) return;
    asio::co_spawn(strand, refresh(shared_from_this()),
                   [](std::exception_ptr e, result<void>) { log_escaped("slot refresh", e); });
  }

  void close_all() {
    closed = true;
    for (auto& [k, c] : nodes) c->close();
    nodes.clear();
    slots.assign(kSlotCount, nullptr);
    if (refresh_done) refresh_done->cancel();
  }

  static asio::awaitable<result<void>> refresh(std::shared_ptr<ClusterState> self) {
    if (self->closed) co_return errc::shutting_down;
    if (self->refreshing) {
      auto ev = self->refresh_done;
      co_await ev->async_wait(kTuple);
      if (self->closed) co_return errc::shutting_down;
      co_return self->map_loaded ? result<void>{} : result<void>{errc::unavailable};
    }
    self->refreshing = true;
    auto ev =
        std::make_shared<asio::steady_timer>(self->strand, asio::steady_timer::time_point::max());
    self->refresh_done = ev;
    self->metrics->slot_refresh();

    // Known nodes first (connected ones before the others), then the seeds.
    std::vector<std::shared_ptr<ConnectionImpl>> candidates;
    for (auto& [k, c] : self->nodes) {
      if (c->connected()) candidates.push_back(c);
    }
    for (auto& [k, c] : self->nodes) {
      if (!c->connected()) candidates.push_back(c);
    }
    for (const auto& seed : self->cfg.nodes) {
      auto c = self->node(seed);
      if (c && std::find(candidates.begin(), candidates.end(), c) == candidates.end()) {
        candidates.push_back(c);
      }
    }
    result<void> outcome = errc::unavailable;
    const Command slots_cmd{"CLUSTER", "SLOTS"};
    const Command* p = &slots_cmd;
    for (auto& c : candidates) {
      if (self->closed) break;
      if (c->closed()) continue;
      auto res = co_await ConnectionImpl::wait(c->submit(&p, 1));
      auto& r = res.front();
      if (!r) {
        outcome = r.error();
        continue;
      }
      if (r->is_error()) {
        spdlog::warn("redis cluster: CLUSTER SLOTS on {}: {}", c->endpoint().to_string(), r->str());
        outcome = errc::rejected;
        continue;
      }
      if (!self->apply_slots(*r, c->endpoint())) {
        spdlog::warn("redis cluster: malformed CLUSTER SLOTS from {}", c->endpoint().to_string());
        outcome = errc::protocol_error;
        continue;
      }
      outcome = result<void>{};
      break;
    }
    if (self->closed) outcome = errc::shutting_down;
    self->refreshing = false;
    self->last_refresh = std::chrono::steady_clock::now();
    ev->cancel();
    co_return outcome;
  }

  struct Target {
    std::shared_ptr<ConnectionImpl> conn;
    bool asking = false;
  };

  struct Group {
    Target target;
    std::vector<std::size_t> index;  // input positions sent to this node
    std::vector<std::size_t> reply;  // where each one's reply is in the batch
    std::vector<Command> loads;      // SCRIPT LOADs sent first (after NOSCRIPT)
    std::vector<const Command*> cmds;
    BatchPtr batch;
  };

  static asio::awaitable<std::vector<result<Reply>>> pipeline(std::shared_ptr<ClusterState> self,
                                                              std::vector<Command> cmds) {
    const std::size_t n = cmds.size();
    std::vector<result<Reply>> results(n);
    if (self->closed) {
      for (auto& r : results) r = errc::shutting_down;
      co_return results;
    }
    if (!self->map_loaded) {
      auto loaded = co_await refresh(self);
      if (!loaded) {
        for (auto& r : results) r = loaded.error();
        co_return results;
      }
    }
    std::vector<Target> target(n);
    std::vector<int> attempts(n, 0);
    std::vector<char> load(n, 0);  // 1: load its script on the target first
    std::vector<std::size_t> pending(n);
    for (std::size_t i = 0; i < n; ++i) {
      pending[i] = i;
      target[i].conn = self->route(cmds[i]);
    }
    bool need_refresh = false;
    std::vector<std::size_t> next;
    std::vector<Group> groups;
    while (!pending.empty()) {
      groups.clear();
      for (auto i : pending) {
        auto& t = target[i];
        if (!t.conn) {
          results[i] = errc::unavailable;  // slot not covered by the map we have
          need_refresh = true;
          continue;
        }
        auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) {
          return x.target.conn == t.conn && x.target.asking == t.asking;
        });
        if (g == groups.end()) {
          groups.push_back(Group{t, {}, {}, {}, {}, nullptr});
          g = std::prev(groups.end());
        }
        g->index.push_back(i);
        if (load[i]) {
          auto cmd = cmds[i].script()->load_command();
          bool have = false;
          for (const auto& l : g->loads) have = have || l[2] == cmd[2];
          if (!have) {
            self->metrics->noscript();
            g->loads.push_back(std::move(cmd));
          }
        }
      }
      for (auto& g : groups) {
        for (const auto& l : g.loads) g.cmds.push_back(&l);
        for (auto i : g.index) {
          if (g.target.asking) g.cmds.push_back(&asking_command());
          g.reply.push_back(g.cmds.size());
          g.cmds.push_back(&cmds[i]);
        }
      }
      // Every node's part goes out before the first wait: one round trip in parallel.
      for (auto& g : groups) g.batch = g.target.conn->submit(g.cmds.data(), g.cmds.size());
      next.clear();
      bool try_again = false;
      for (auto& g : groups) {
        auto res = co_await ConnectionImpl::wait(g.batch);
        const Endpoint& from = g.target.conn->endpoint();
        for (std::size_t j = 0; j < g.index.size(); ++j) {
          const auto i = g.index[j];
          auto& r = res[g.reply[j]];
          load[i] = 0;
          if (!r) {
            if (r.error() == errc::unavailable) need_refresh = true;
            results[i] = std::move(r);
            continue;
          }
          const Reply& reply = *r;
          if (!reply.is_error()) {
            results[i] = std::move(r);
            continue;
          }
          const bool moved = reply.error_is("MOVED");
          const bool ask = !moved && reply.error_is("ASK");
          const bool again = reply.error_is("TRYAGAIN");
          const bool noscript = reply.error_is("NOSCRIPT") && cmds[i].script().has_value();
          if (!moved && !ask && !again && !noscript) {
            if (reply.error_is("CLUSTERDOWN")) need_refresh = true;
            results[i] = std::move(r);
            continue;
          }
          if (++attempts[i] > self->cfg.max_redirects) {
            results[i] = errc::redirect_limit;
            continue;
          }
          if (moved || ask) {
            auto red = parse_redirect(reply.str(), from);
            if (!red) {
              results[i] = errc::protocol_error;
              continue;
            }
            auto conn = self->node(red->target);
            if (!conn) {
              results[i] = errc::shutting_down;
              continue;
            }
            if (moved) {
              self->metrics->moved();
              self->slots[red->slot] = conn;
              need_refresh = true;
              target[i] = Target{conn, false};
            } else {
              self->metrics->ask();
              target[i] = Target{conn, true};
            }
          } else if (again) {
            try_again = true;
          } else {
            load[i] = 1;
          }
          next.push_back(i);
        }
      }
      if (try_again && !next.empty()) {
        asio::steady_timer t(self->strand, kTryAgainDelay);
        co_await t.async_wait(kTuple);
      }
      std::sort(next.begin(), next.end());
      pending.swap(next);
    }
    if (need_refresh) self->schedule_refresh();
    co_return results;
  }
};

class ClusterClient final : public Client {
 public:
  ClusterClient(asio::any_io_executor strand, ClientConfig config, std::shared_ptr<Metrics> metrics)
      : st_(std::make_shared<ClusterState>(std::move(strand), std::move(config),
                                           std::move(metrics))) {}

  ~ClusterClient() override { close(); }

  asio::awaitable<result<void>> connect() override {
    return run_on(st_->strand, connect_on_strand(st_));
  }

  asio::awaitable<result<Reply>> exec(Command cmd) override {
    std::vector<Command> one;
    one.push_back(std::move(cmd));
    auto res = co_await exec_pipeline(std::move(one));
    co_return std::move(res.front());
  }

  asio::awaitable<std::vector<result<Reply>>> exec_pipeline(std::vector<Command> cmds) override {
    return run_on(st_->strand, ClusterState::pipeline(st_, std::move(cmds)));
  }

  ClientStats stats() const override { return st_->metrics->stats(); }

  asio::any_io_executor executor() const override { return st_->strand; }

  void close() override {
    asio::dispatch(st_->strand, [st = st_] { st->close_all(); });
  }

 private:
  static asio::awaitable<result<void>> connect_on_strand(std::shared_ptr<ClusterState> st) {
    co_return co_await ClusterState::refresh(st);
  }

  std::shared_ptr<ClusterState> st_;
};

}  // namespace

std::unique_ptr<Client> make_cluster_client(asio::any_io_executor strand, ClientConfig config,
                                            std::shared_ptr<Metrics> metrics) {
  return std::make_unique<ClusterClient>(std::move(strand), std::move(config), std::move(metrics));
}

}  // namespace pushgw::redis::detail
