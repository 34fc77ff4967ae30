#pragma once
/// co_spawn with the completion handler STYLE.md requires on every co_spawn:
/// an exception escaping the coroutine is logged (logger "common", level
/// error, with `what` naming the task) instead of being lost or terminating.
///
///   pushgw::common::spawn_logged(strand, session(std::move(socket)), "admin session");
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

namespace pushgw::common {

namespace detail {
/// Logs `e` (never throws). Out of line so this header needs no spdlog.
void log_escaped_exception(std::string_view what, std::exception_ptr e) noexcept;
}  // namespace detail

/// Starts `task` on `ex` detached. The coroutine's result, if any, is dropped.
template <class Executor, class T, class AwaitableExecutor>
void spawn_logged(const Executor& ex, boost::asio::awaitable<T, AwaitableExecutor> task,
                  std::string what) {
  boost::asio::co_spawn(ex, std::move(task),
                        [what = std::move(what)](std::exception_ptr e, auto&&...) {
                          if (e) detail::log_escaped_exception(what, e);
                        });
}

}  // namespace pushgw::common
