// The conn-node binary as a process: config file, a device session, drain
// on SIGUSR1, orderly exit on SIGTERM; bad configs exit 2.
#include <signal.h>
#include <sys/wait.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "node_fixture.h"
#include "testsupport/ports.h"
#include "testsupport/process.h"

namespace pushgw::conn_node::testing {
namespace {

namespace asio = boost::asio;

std::string binary() { return CONN_NODE_BINARY; }

bool port_open(uint16_t port) {
  asio::io_context ioc;
  asio::ip::tcp::socket s(ioc);
  boost::system::error_code ec;
  s.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  return !ec;
}

/// One HTTP/1.1 request on a fresh connection; the status code (0 on failure).
int http_status(uint16_t port, const std::string& method, const std::string& path) {
  asio::io_context ioc;
  asio::ip::tcp::socket s(ioc);
  boost::system::error_code ec;
  s.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  if (ec) return 0;
  const std::string req = method + " " + path +
                          " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  asio::write(s, asio::buffer(req), ec);
  std::string resp;
  char buf[1024];
  for (;;) {
    const size_t n = s.read_some(asio::buffer(buf), ec);
    resp.append(buf, n);
    if (ec) break;
  }
  if (resp.size() < 12) return 0;
  return std::atoi(resp.substr(9, 3).c_str());
}

class BinaryTest : public NodeFixture {};

TEST_F(BinaryTest, RunsFromAConfigFileDrainsAndExitsOnSigterm) {
  (void)kafka_->cluster().create_topic("pushgw.deliver.bin-1", 1);
  NodeConfig c = node_config("bin-1");
  const uint16_t admin_port = testsupport::free_port();
  const std::string cfg_path = dir_.file("conn-node.toml").string();
  {
    std::ofstream out(cfg_path);
    out << "node_id = \"bin-1\"\nthreads = 1\napps_file = \"" << apps_file_ << "\"\n"
        << "[listen]\nhost = \"127.0.0.1\"\ntcp_port = " << c.listen.tcp_port
        << "\ntls_port = " << c.listen.tls_port << "\nws_port = 0\nwss_port = 0\n"
        << "[tls]\ncert_file = \"" << cert_file_ << "\"\nkey_file = \"" << key_file_ << "\"\n"
        << "[redis]\nurl = \"" << redis_->url() << "\"\n"
        << "[kafka]\nbootstrap = \"" << kafka_->bootstrap_servers() << "\"\n"
        << "session_timeout_ms = 3000\nheartbeat_interval_ms = 500\n"
        << "[drain]\nrate = 100\n"
        << "[admin]\nport = " << admin_port << "\n";
  }
  testsupport::SpawnOptions so;
  so.stdout_path = dir_.file("stdout.log").string();
  so.stderr_path = dir_.file("stderr.log").string();
  auto proc = testsupport::Process::spawn({binary(), "--config", cfg_path}, so);
  ASSERT_TRUE(eventually([&] { return port_open(c.listen.tcp_port); }, 30s))
      << "conn-node did not listen; its stderr:\n"
      << [&] {
           std::ifstream in(so.stderr_path);
           return std::string(std::istreambuf_iterator<char>(in), {});
         }();
  // The admin listener starts right after the device listeners.
  EXPECT_TRUE(eventually([&] { return http_status(admin_port, "GET", "/healthz") == 200; }));
  // Ready once its delivery topic is assigned (the group forms in ~3 s).
  EXPECT_TRUE(eventually([&] { return http_status(admin_port, "GET", "/readyz") == 200; }, 20s));

  client::Endpoint ep;
  ep.transport = client::Transport::kTls;
  ep.host = "127.0.0.1";
  ep.port = c.listen.tls_port;
  client::ConnectOptions opts;
  opts.tls = client_tls_;
  auto link =
      run(ioc_,
          [](asio::any_io_executor ex, client::Endpoint e,
             client::ConnectOptions o) -> asio::awaitable<result<std::unique_ptr<client::Link>>> {
            co_return co_await client::Link::connect(ex, std::move(e), std::move(o));
          }(ioc_.get_executor(), ep, opts));
  ASSERT_TRUE(link) << link.error().message();
  client::Device dev(std::move(*link));
  const auto reply = hello(dev, "dev-bin", token("dev-bin"));
  ASSERT_TRUE(reply.accepted());
  EXPECT_EQ(reply.welcome->node_id(), "bin-1");
  EXPECT_EQ(registered_node("dev-bin"), "bin-1");

  // SIGUSR1: drain -> the link gets a Redirect; /readyz turns 503.
  proc.signal(SIGUSR1);
  const v1::Frame f = recv(dev, 5s);
  ASSERT_TRUE(f.has_redirect()) << f.DebugString();
  EXPECT_EQ(f.redirect().reason(), "draining");
  EXPECT_TRUE(eventually([&] { return registered_node("dev-bin").empty(); }, 2s));
  EXPECT_TRUE(eventually([&] { return http_status(admin_port, "GET", "/readyz") == 503; }));

  // SIGTERM: unregister the node and exit 0.
  proc.signal(SIGTERM);
  const auto status = proc.wait(15s);
  ASSERT_TRUE(status.has_value()) << "conn-node did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_FALSE(node_info("bin-1").has_value());
}

TEST_F(BinaryTest, BadConfigExitsWithTwo) {
  const std::string cfg_path = dir_.file("bad.toml").string();
  {
    std::ofstream out(cfg_path);
    out << "node_id = \"x\"\n[limits]\nno_such_key = 1\n";
  }
  EXPECT_EQ(testsupport::run_command({binary(), "--config", cfg_path}, 10s,
                                     dir_.file("bad.log").string()),
            2);
  // TLS on without a certificate is refused before anything starts.
  EXPECT_EQ(testsupport::run_command(
                {binary(), "--set", "kafka.bootstrap=127.0.0.1:1", "--set", "tls.cert_file="}, 10s,
                dir_.file("bad2.log").string()),
            2);
  EXPECT_EQ(
      testsupport::run_command({binary(), "--help-config"}, 10s, dir_.file("help.log").string()),
      0);
}

}  // namespace
}  // namespace pushgw::conn_node::testing
