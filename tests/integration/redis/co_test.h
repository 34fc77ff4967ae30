#pragma once
// Runs one coroutine on a test's io_context until it finishes, bounded in time.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>

namespace pushgw::test {

namespace asio = boost::asio;

inline void drive(asio::io_context& io, const bool& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  io.restart();
  while (!done && std::chrono::steady_clock::now() < deadline) io.run_one_until(deadline);
  if (!done) throw std::runtime_error("coroutine did not finish in time");
}

template <class T>
T run_co(asio::io_context& io, asio::awaitable<T> aw,
         std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  std::optional<T> out;
  std::exception_ptr ex;
  bool done = false;
  asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e, T v) {
    ex = e;
    if (!e) out.emplace(std::move(v));
    done = true;
  });
  drive(io, done, timeout);
  if (ex) std::rethrow_exception(ex);
  return std::move(*out);
}

inline void run_co(asio::io_context& io, asio::awaitable<void> aw,
                   std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  std::exception_ptr ex;
  bool done = false;
  asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e) {
    ex = e;
    done = true;
  });
  drive(io, done, timeout);
  if (ex) std::rethrow_exception(ex);
}

/// Lets pending work (closing connections) finish before the io_context goes.
inline void settle(asio::io_context& io) {
  io.restart();
  io.run_for(std::chrono::milliseconds(200));
}

}  // namespace pushgw::test

// gtest's ASSERT_* return from the function, which a coroutine cannot do.
// These record the failure and co_return (void coroutines only).
#define CO_ASSERT_TRUE(cond)                               \
  do {                                                     \
    if (!(cond)) {                                         \
      ADD_FAILURE() << "CO_ASSERT_TRUE(" #cond ") failed"; \
      co_return;                                           \
    }                                                      \
  } while (0)
#define CO_ASSERT_FALSE(cond) CO_ASSERT_TRUE(!(cond))
#define CO_ASSERT_EQ(a, b)                                                            \
  do {                                                                                \
    const auto& co_assert_a_ = (a);                                                   \
    const auto& co_assert_b_ = (b);                                                   \
    if (!(co_assert_a_ == co_assert_b_)) {                                            \
      EXPECT_EQ(co_assert_a_, co_assert_b_) << "CO_ASSERT_EQ(" #a ", " #b ") failed"; \
      co_return;                                                                      \
    }                                                                                 \
  } while (0)
