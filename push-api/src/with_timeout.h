#pragma once
// Bounded waits for awaitables that cannot be cancelled (a Kafka produce, a
// Redis round trip): the operation runs detached and keeps its own state; the
// caller stops waiting after `limit`. Must be awaited from a strand or a
// single-threaded executor (the completion and the timer share it).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>

#include "common/spawn.h"

namespace pushgw::push_api::detail {

template <class T>
boost::asio::awaitable<std::optional<T>> with_timeout(boost::asio::awaitable<T> op,
                                                      std::chrono::milliseconds limit) {
  namespace asio = boost::asio;
  struct State {
    explicit State(asio::any_io_executor ex) : timer(std::move(ex)) {}
    asio::steady_timer timer;
    std::optional<T> value;
    bool done = false;
  };
  auto ex = co_await asio::this_coro::executor;
  auto state = std::make_shared<State>(ex);
  state->timer.expires_after(limit);
  asio::co_spawn(ex, std::move(op), [state](std::exception_ptr e, T v) {
    if (e) {
      common::detail::log_escaped_exception("push-api bounded wait", e);
    } else {
      state->value.emplace(std::move(v));
    }
    state->done = true;
    state->timer.cancel();
  });
  if (!state->done) co_await state->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!state->done) co_return std::nullopt;
  co_return std::move(state->value);
}

}  // namespace pushgw::push_api::detail
