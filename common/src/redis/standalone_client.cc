#include <algorithm>
#include <boost/asio/async_result.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "clients.h"
#include "connection_impl.h"

namespace pushgw::redis::detail {
namespace {

class StandaloneClient final : public Client {
 public:
  StandaloneClient(asio::any_io_executor strand, ClientConfig config,
                   std::shared_ptr<Metrics> metrics)
      : strand_(std::move(strand)),
        metrics_(metrics),
        conn_(std::make_shared<ConnectionImpl>(strand_, config.nodes.front(), config.connection,
                                               std::move(metrics))) {
    asio::dispatch(strand_, [c = conn_] { c->start(); });
  }

  ~StandaloneClient() override { close(); }

  asio::awaitable<result<void>> connect() override {
    Command ping_cmd{"PING"};
    auto r = co_await exec(std::move(ping_cmd));
    if (!r) co_return r.error();
    if (!r->is_string() || r->str() != "PONG") co_return errc::protocol_error;
    co_return result<void>{};
  }

  asio::awaitable<result<Reply>> exec(Command cmd) override {
    std::vector<Command> one;
    one.push_back(std::move(cmd));
    auto res = co_await exec_pipeline(std::move(one));
    co_return std::move(res.front());
  }

  asio::awaitable<std::vector<result<Reply>>> exec_pipeline(std::vector<Command> cmds) override {
    // The common case in one hop to the strand and one back, no coroutine
    // spawned there (a co_spawn per request was ~19k instructions).
    auto results = co_await asio::async_initiate<decltype(asio::use_awaitable),
                                                 void(std::vector<result<Reply>>)>(
        [this, &cmds](auto handler) {
          asio::any_io_executor ex = asio::get_associated_executor(handler);
          auto work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
          asio::dispatch(strand_, [conn = conn_, &cmds, h = BatchHandler(std::move(handler)),
                                   work = std::move(work)]() mutable {
            std::vector<const Command*> ptrs;
            ptrs.reserve(cmds.size());
            for (const auto& c : cmds) ptrs.push_back(&c);
            conn->submit_async(ptrs.data(), ptrs.size(), std::move(h), std::move(work));
          });
        },
        asio::use_awaitable);
    if (!needs_script_load(cmds, results)) co_return results;
    co_return co_await run_on(strand_,
                              load_scripts_and_retry(conn_, metrics_, std::move(cmds),
                                                     std::move(results)));
  }

  asio::awaitable<std::vector<result<Reply>>> exec_buffer(CommandBuffer cmds) override {
    if (!cmds.complete()) {
      co_return std::vector<result<Reply>>(cmds.size(), make_error_code(errc::invalid_argument));
    }
    // As exec_pipeline(), with the bytes as encoded (plain commands only, so
    // no NOSCRIPT retry).
    co_return co_await asio::async_initiate<decltype(asio::use_awaitable),
                                            void(std::vector<result<Reply>>)>(
        [this, &cmds](auto handler) {
          asio::any_io_executor ex = asio::get_associated_executor(handler);
          auto work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
          asio::dispatch(strand_, [conn = conn_, &cmds, h = BatchHandler(std::move(handler)),
                                   work = std::move(work)]() mutable {
            conn->submit_encoded_async(cmds.bytes(), cmds.size(), std::move(h), std::move(work));
          });
        },
        asio::use_awaitable);
  }

  ClientStats stats() const override {
    auto s = metrics_->stats();
    s.reconnects = conn_->reconnects();
    return s;
  }

  asio::any_io_executor executor() const override { return strand_; }

  void close() override {
    asio::dispatch(strand_, [c = conn_] { c->close(); });
  }

 private:
  static bool needs_script_load(const std::vector<Command>& cmds,
                                const std::vector<result<Reply>>& results) {
    for (std::size_t i = 0; i < results.size() && i < cmds.size(); ++i) {
      if (results[i] && results[i]->error_is("NOSCRIPT") && cmds[i].script()) return true;
    }
    return false;
  }

  // Scripts unknown to the server (flushed, restarted): load each once, then
  // resend the affected commands, in one round trip.
  static asio::awaitable<std::vector<result<Reply>>> load_scripts_and_retry(
      std::shared_ptr<ConnectionImpl> conn, std::shared_ptr<Metrics> metrics,
      std::vector<Command> cmds, std::vector<result<Reply>> results) {
    std::vector<std::size_t> retry;
    std::vector<Command> loads;
    std::vector<Script> scripts;
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (!results[i] || !results[i]->error_is("NOSCRIPT") || !cmds[i].script()) continue;
      retry.push_back(i);
      if (std::find(scripts.begin(), scripts.end(), *cmds[i].script()) == scripts.end()) {
        scripts.push_back(*cmds[i].script());
        loads.push_back(scripts.back().load_command());
        metrics->noscript();
      }
    }
    std::vector<const Command*> ptrs;
    for (const auto& c : loads) ptrs.push_back(&c);
    for (auto i : retry) ptrs.push_back(&cmds[i]);
    auto again = co_await ConnectionImpl::wait(conn->submit(ptrs.data(), ptrs.size()));
    for (std::size_t j = 0; j < retry.size(); ++j) {
      results[retry[j]] = std::move(again[loads.size() + j]);
    }
    co_return results;
  }

  asio::any_io_executor strand_;
  std::shared_ptr<Metrics> metrics_;
  std::shared_ptr<ConnectionImpl> conn_;
};

}  // namespace

std::unique_ptr<Client> make_standalone_client(asio::any_io_executor strand, ClientConfig config,
                                               std::shared_ptr<Metrics> metrics) {
  return std::make_unique<StandaloneClient>(std::move(strand), std::move(config),
                                            std::move(metrics));
}

}  // namespace pushgw::redis::detail
