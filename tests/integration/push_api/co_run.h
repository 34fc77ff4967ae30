#pragma once
// Runs one coroutine on a test's io_context until it finishes, bounded in time.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>

namespace pushgw::push_api::testing {

template <class T>
T run_co(boost::asio::io_context& io, boost::asio::awaitable<T> aw,
         std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  std::optional<T> out;
  std::exception_ptr ex;
  bool done = false;
  boost::asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e, T v) {
    ex = e;
    if (!e) out.emplace(std::move(v));
    done = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  io.restart();
  while (!done && std::chrono::steady_clock::now() < deadline) io.run_one_until(deadline);
  if (!done) throw std::runtime_error("coroutine did not finish in time");
  if (ex) std::rethrow_exception(ex);
  return std::move(*out);
}

/// Lets pending work (closing connections) finish before the io_context goes.
inline void settle(boost::asio::io_context& io) {
  io.restart();
  io.run_for(std::chrono::milliseconds(100));
}

}  // namespace pushgw::push_api::testing
