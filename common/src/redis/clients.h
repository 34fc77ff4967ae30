#pragma once
// The two Client implementations (see client.h), built by make_client().
#include <memory>

#include "common/redis/client.h"
#include "metrics.h"

namespace pushgw::redis::detail {

std::unique_ptr<Client> make_standalone_client(boost::asio::any_io_executor strand,
                                               ClientConfig config,
                                               std::shared_ptr<Metrics> metrics);
std::unique_ptr<Client> make_cluster_client(boost::asio::any_io_executor strand,
                                            ClientConfig config, std::shared_ptr<Metrics> metrics);

}  // namespace pushgw::redis::detail
