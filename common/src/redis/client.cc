#include "common/redis/client.h"

#include <boost/asio/strand.hpp>

#include "clients.h"

namespace pushgw::redis {

result<std::unique_ptr<Client>> make_client(boost::asio::any_io_executor ex, ClientConfig config,
                                            prometheus::Registry* metrics) {
  if (config.nodes.empty()) return errc::invalid_argument;
  if (config.mode == ClientConfig::Mode::standalone && config.nodes.size() != 1) {
    return errc::invalid_argument;
  }
  if (config.max_redirects < 0) return errc::invalid_argument;
  auto m = std::make_shared<detail::Metrics>(metrics, config.name);
  auto strand = boost::asio::make_strand(ex);
  if (config.mode == ClientConfig::Mode::cluster) {
    return detail::make_cluster_client(strand, std::move(config), std::move(m));
  }
  return detail::make_standalone_client(strand, std::move(config), std::move(m));
}

boost::asio::awaitable<std::vector<result<Reply>>> Client::exec_buffer(CommandBuffer cmds) {
  if (!cmds.complete()) {
    co_return std::vector<result<Reply>>(cmds.size(), make_error_code(errc::invalid_argument));
  }
  std::vector<Command> decoded;
  decoded.reserve(cmds.size());
  for (std::size_t i = 0; i < cmds.size(); ++i) decoded.push_back(cmds.command(i));
  co_return co_await exec_pipeline(std::move(decoded));
}

}  // namespace pushgw::redis
