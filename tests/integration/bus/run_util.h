#pragma once
// Helpers for driving coroutines from a test thread with hard time bounds.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>

#include "common/bus/types.h"

namespace pushgw::bus::testing {

namespace asio = boost::asio;
using namespace std::chrono_literals;

/// The outcome of a spawned coroutine, filled in on the io_context thread.
template <class T>
struct Spawned {
  bool done = false;
  std::optional<T> value;
  std::exception_ptr error;
};

/// Spawns `aw` on `ctx`; the returned state is filled when it completes (an
/// escaped exception is kept and rethrown by get()).
template <class T>
std::shared_ptr<Spawned<T>> spawn(asio::io_context& ctx, asio::awaitable<T> aw) {
  auto state = std::make_shared<Spawned<T>>();
  asio::co_spawn(ctx, std::move(aw), [state](std::exception_ptr e, T v) {
    if (e) {
      state->error = e;
    } else {
      state->value.emplace(std::move(v));
    }
    state->done = true;
  });
  return state;
}

inline std::shared_ptr<Spawned<bool>> spawn(asio::io_context& ctx, asio::awaitable<void> aw) {
  auto state = std::make_shared<Spawned<bool>>();
  asio::co_spawn(ctx, std::move(aw), [state](std::exception_ptr e) {
    if (e) {
      state->error = e;
    } else {
      state->value.emplace(true);
    }
    state->done = true;
  });
  return state;
}

/// Runs `ctx` until `pred()` holds or `timeout` passes; returns pred().
inline bool run_until(asio::io_context& ctx, const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred() && std::chrono::steady_clock::now() < deadline) {
    ctx.restart();
    ctx.run_for(10ms);
  }
  return pred();
}

/// Runs `ctx` for `d` (handlers due in that time run).
inline void run_for(asio::io_context& ctx, std::chrono::milliseconds d) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < deadline) {
    ctx.restart();
    ctx.run_for(10ms);
  }
}

/// Spawns `aw` and runs `ctx` until it completes or `timeout` passes.
/// nullopt on timeout; rethrows an escaped exception.
template <class T>
std::optional<T> await_for(asio::io_context& ctx, asio::awaitable<T> aw,
                           std::chrono::milliseconds timeout) {
  auto s = spawn(ctx, std::move(aw));
  run_until(
      ctx, [&] { return s->done; }, timeout);
  if (s->error) {
    std::rethrow_exception(s->error);
  }
  return s->value;
}

inline bool await_for(asio::io_context& ctx, asio::awaitable<void> aw,
                      std::chrono::milliseconds timeout) {
  auto s = spawn(ctx, std::move(aw));
  run_until(
      ctx, [&] { return s->done; }, timeout);
  if (s->error) {
    std::rethrow_exception(s->error);
  }
  return s->done;
}

}  // namespace pushgw::bus::testing
