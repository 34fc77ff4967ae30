#include "testsupport/ports.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <stdexcept>

namespace pushgw::testsupport {

bool port_is_free(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

std::uint16_t free_port(bool with_cluster_bus) {
  static thread_local std::mt19937 rng{std::random_device{}()};
  // Cluster nodes need port + 10000 free as well, and below the ephemeral range.
  std::uniform_int_distribution<int> dist(20000, with_cluster_bus ? 22700 : 31999);
  for (int i = 0; i < 500; ++i) {
    auto p = static_cast<std::uint16_t>(dist(rng));
    if (!port_is_free(p)) continue;
    if (with_cluster_bus && !port_is_free(static_cast<std::uint16_t>(p + 10000))) continue;
    return p;
  }
  throw std::runtime_error("free_port: no free loopback port found");
}

}  // namespace pushgw::testsupport
