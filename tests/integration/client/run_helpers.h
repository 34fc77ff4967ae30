#pragma once
// Runs one coroutine step of a test on the test thread's io_context, bounded
// in time, and hands its result back so assertions stay in the test body.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace pushgw::client::testing {

template <class T>
T run(boost::asio::io_context& ioc, boost::asio::awaitable<T> task,
      std::chrono::milliseconds limit = std::chrono::seconds(15)) {
  struct State {
    bool done = false;
    std::exception_ptr error;
    std::optional<T> value;
  };
  auto state = std::make_shared<State>();
  boost::asio::co_spawn(ioc, std::move(task), [state](std::exception_ptr e, T v) {
    state->error = e;
    if (!e) state->value.emplace(std::move(v));
    state->done = true;
  });
  ioc.restart();
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!state->done && std::chrono::steady_clock::now() < deadline) {
    ioc.run_one_for(deadline - std::chrono::steady_clock::now());
  }
  if (!state->done) throw std::runtime_error("test step did not finish in time");
  if (state->error) std::rethrow_exception(state->error);
  return std::move(*state->value);
}

inline void run(boost::asio::io_context& ioc, boost::asio::awaitable<void> task,
                std::chrono::milliseconds limit = std::chrono::seconds(15)) {
  struct State {
    bool done = false;
    std::exception_ptr error;
  };
  auto state = std::make_shared<State>();
  boost::asio::co_spawn(ioc, std::move(task), [state](std::exception_ptr e) {
    state->error = e;
    state->done = true;
  });
  ioc.restart();
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!state->done && std::chrono::steady_clock::now() < deadline) {
    ioc.run_one_for(deadline - std::chrono::steady_clock::now());
  }
  if (!state->done) throw std::runtime_error("test step did not finish in time");
  if (state->error) std::rethrow_exception(state->error);
}

}  // namespace pushgw::client::testing
