#include "pushgw_client/endpoint.h"

#include <gtest/gtest.h>

namespace pushgw::client {
namespace {

TEST(EndpointTest, ParsesEveryScheme) {
  auto tcp = parse_endpoint("tcp://127.0.0.1:7000");
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->transport, Transport::kTcp);
  EXPECT_EQ(tcp->host, "127.0.0.1");
  EXPECT_EQ(tcp->port, 7000);

  auto tls = parse_endpoint("tls://node-1.example.com:7443");
  ASSERT_TRUE(tls);
  EXPECT_EQ(tls->transport, Transport::kTls);
  EXPECT_EQ(tls->host, "node-1.example.com");
  EXPECT_EQ(tls->port, 7443);

  auto ws = parse_endpoint("ws://localhost:7080/ws");
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->transport, Transport::kWs);
  EXPECT_EQ(ws->host, "localhost");
  EXPECT_EQ(ws->port, 7080);
  EXPECT_EQ(ws->ws_path, "/ws");

  auto wss = parse_endpoint("wss://10.0.0.5:7444/push/v1?app=demo");
  ASSERT_TRUE(wss);
  EXPECT_EQ(wss->transport, Transport::kWss);
  EXPECT_EQ(wss->port, 7444);
  EXPECT_EQ(wss->ws_path, "/push/v1?app=demo");
}

TEST(EndpointTest, WebSocketPathDefaultsToWs) {
  auto ws = parse_endpoint("ws://127.0.0.1:7080");
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->ws_path, "/ws");
}

TEST(EndpointTest, TcpAcceptsATrailingSlashOnly) {
  EXPECT_TRUE(parse_endpoint("tcp://h:1/"));
  EXPECT_FALSE(parse_endpoint("tcp://h:1/ws"));
  EXPECT_FALSE(parse_endpoint("tls://h:1/x"));
}

TEST(EndpointTest, ParsesBracketedIpv6) {
  auto e = parse_endpoint("tls://[::1]:7443");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->port, 7443);
  EXPECT_EQ(host_port(*e), "[::1]:7443");
  EXPECT_EQ(to_url(*e), "tls://[::1]:7443");
}

TEST(EndpointTest, RejectsMalformedUrls) {
  for (const char* url : {"",
                          "127.0.0.1:7000",
                          "http://h:80",
                          "TCP://h:1",
                          "tcp://",
                          "tcp://:7000",
                          "tcp://h",
                          "tcp://h:",
                          "tcp://h:0",
                          "tcp://h:65536",
                          "tcp://h:123456",
                          "tcp://h:7a",
                          "tcp://h:-1",
                          "tcp://h:+1",
                          "tcp://::1:7000",
                          "tcp://[::1]",
                          "tcp://[::1]7000",
                          "tcp://[127.0.0.1]:1",
                          "tcp://[::1:7000",
                          "tcp://user@h:1",
                          "tcp://h :1",
                          "ws://h:1/w s",
                          "ws://h:1/\x01",
                          "tcp://h:1\n"}) {
    auto e = parse_endpoint(url);
    EXPECT_FALSE(e) << "accepted: " << url;
    if (!e) {
      EXPECT_EQ(e.error(), make_error_code(errc::invalid_argument)) << url;
    }
  }
}

TEST(EndpointTest, UrlRoundTrips) {
  for (const char* url :
       {"tcp://127.0.0.1:7000", "tls://a.b:1", "ws://h:65535/ws", "wss://[fe80::1]:7444/x/y"}) {
    auto e = parse_endpoint(url);
    ASSERT_TRUE(e) << url;
    EXPECT_EQ(to_url(*e), url);
    auto again = parse_endpoint(to_url(*e));
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *e);
  }
}

TEST(EndpointTest, TransportHelpers) {
  EXPECT_EQ(to_string(Transport::kTcp), "tcp");
  EXPECT_EQ(to_string(Transport::kWss), "wss");
  EXPECT_TRUE(uses_tls(Transport::kTls));
  EXPECT_TRUE(uses_tls(Transport::kWss));
  EXPECT_FALSE(uses_tls(Transport::kWs));
  EXPECT_TRUE(uses_websocket(Transport::kWs));
  EXPECT_FALSE(uses_websocket(Transport::kTcp));
}

}  // namespace
}  // namespace pushgw::client
