#include "test_server.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cstdio>
#include <stdexcept>

#include "proto/pushgw.pb.h"

namespace pushgw::client::testing {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;

SelfSignedCert make_self_signed_cert() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  if (key == nullptr || x == nullptr) throw std::runtime_error("cannot create key/cert");
  X509_set_version(x, 2);
  unsigned char serial[8];
  RAND_bytes(serial, sizeof serial);
  ASN1_INTEGER_set(X509_get_serialNumber(x),
                   static_cast<long>(serial[0]) << 16 | serial[1] << 8 | serial[2]);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    if (ext == nullptr) throw std::runtime_error("cannot build extension");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(x, key, EVP_sha256()) == 0) throw std::runtime_error("cannot sign");
  auto pem = [](auto write) {
    BIO* b = BIO_new(BIO_s_mem());
    write(b);
    char* data = nullptr;
    const long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(b);
    return out;
  };
  SelfSignedCert out;
  out.cert_pem = pem([x](BIO* b) { PEM_write_bio_X509(b, x); });
  out.key_pem = pem(
      [key](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

struct TestServer::Impl {
  // Destroyed bottom-up: the acceptor, then the io_context (with every
  // session frame), then the TLS context the sessions used.
  std::unique_ptr<ssl::context> tls;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  ServerMode mode = ServerMode::kFrames;
};

namespace {

enum class Action {
  kEcho,
  kReply,
  kClose,
  kReset,
  kNothing,
  kZero,
  kTooLarge,
  kGarbage,
  kText,
  kBurst,
  kWsPing
};

/// What to do with `in`; `reply` is set for kReply (and kClose with a last
/// frame), `count` for kBurst.
Action classify(const v1::Frame& in, v1::Frame& reply, int& count) {
  if (in.has_hello()) {
    const auto& app = in.hello().app_id();
    if (app == "welcome") {
      auto* w = reply.mutable_welcome();
      w->set_session_id(in.hello().device_id());
      w->set_node_id("test-node");
      w->set_heartbeat_s(30);
      w->set_resume_ticket(in.hello().SerializeAsString());  // lets tests see the Hello
      return Action::kReply;
    }
    if (app == "refuse") {
      reply.mutable_error()->set_code(v1::AUTH_FAILED);
      reply.mutable_error()->set_message("bad token");
      return Action::kClose;
    }
    if (app == "redirect") {
      reply.mutable_redirect()->set_retry_after_ms(500);
      reply.mutable_redirect()->add_endpoints("127.0.0.1:1");
      return Action::kClose;
    }
    if (app == "silent") return Action::kNothing;
  }
  if (in.has_bye() && in.bye().reason() == "close") return Action::kClose;
  if (in.has_bye() && in.bye().reason() == "reset") return Action::kReset;
  if (in.has_upstream()) {
    const auto& ch = in.upstream().channel();
    const auto& p = in.upstream().payload();
    if (ch == "bad") {
      if (p == "zero") return Action::kZero;
      if (p == "too_large") return Action::kTooLarge;
      if (p == "text") return Action::kText;
      return Action::kGarbage;
    }
    if (ch == "burst") {
      count = std::stoi(p);
      return Action::kBurst;
    }
    if (ch == "ping") return Action::kWsPing;
  }
  return Action::kEcho;
}

std::string framed(const std::string& body) {
  const auto n = static_cast<uint32_t>(body.size());
  std::string out = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)};
  return out + body;
}

std::string burst_frame(int i) {
  v1::Frame f;
  f.mutable_ping()->set_client_time_ms(static_cast<uint64_t>(i));
  return f.SerializeAsString();
}

template <class Stream>
asio::awaitable<void> shutdown_stream(Stream&) {
  co_return;
}

asio::awaitable<void> shutdown_stream(ssl::stream<tcp::socket>& s) {
  // close_notify; the peer's answer is awaited briefly only.
  asio::steady_timer timer(s.get_executor(), std::chrono::seconds(1));
  co_await asio::experimental::make_parallel_group(s.async_shutdown(asio::deferred),
                                                   timer.async_wait(asio::deferred))
      .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
}

tcp::socket& lowest(tcp::socket& s) { return s; }
tcp::socket& lowest(ssl::stream<tcp::socket>& s) { return s.next_layer(); }

template <class Stream>
asio::awaitable<void> framed_session(Stream& stream) {
  for (;;) {
    unsigned char prefix[4];
    auto [ec, n] = co_await asio::async_read(stream, asio::buffer(prefix),
                                             asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    const uint32_t len = (uint32_t{prefix[0]} << 24) | (uint32_t{prefix[1]} << 16) |
                         (uint32_t{prefix[2]} << 8) | prefix[3];
    if (len == 0 || len > (1u << 20)) co_return;
    std::string body(len, '\0');
    std::tie(ec, n) =
        co_await asio::async_read(stream, asio::buffer(body), asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    v1::Frame in;
    if (!in.ParseFromString(body)) co_return;
    v1::Frame reply;
    int count = 0;
    std::string out;
    switch (classify(in, reply, count)) {
      case Action::kEcho:
      case Action::kWsPing:
        out = framed(body);
        break;
      case Action::kReply:
        out = framed(reply.SerializeAsString());
        break;
      case Action::kClose:
        if (reply.body_case() != v1::Frame::BODY_NOT_SET) {
          co_await asio::async_write(stream, asio::buffer(framed(reply.SerializeAsString())),
                                     asio::as_tuple(asio::use_awaitable));
        }
        co_await shutdown_stream(stream);
        lowest(stream).shutdown(tcp::socket::shutdown_send, ec);
        co_return;
      case Action::kReset:
        lowest(stream).set_option(tcp::socket::linger(true, 0), ec);
        lowest(stream).close(ec);
        co_return;
      case Action::kNothing:
        continue;
      case Action::kZero:
        out = std::string(4, '\0');
        break;
      case Action::kTooLarge:
        out = framed(std::string(70000, 'x'));
        break;
      case Action::kGarbage:
      case Action::kText:
        out = framed("\xff\xff\xff");
        break;
      case Action::kBurst:
        for (int i = 1; i <= count; ++i) out += framed(burst_frame(i));
        break;
    }
    std::tie(ec, n) =
        co_await asio::async_write(stream, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
  }
}

template <class Ws>
asio::awaitable<void> ws_session(Ws& ws, std::atomic<int>* pongs) {
  ws.write_buffer_bytes(1024);  // large messages go out fragmented
  ws.control_callback([pongs](websocket::frame_type kind, boost::beast::string_view) {
    if (kind == websocket::frame_type::pong) pongs->fetch_add(1);
  });
  for (;;) {
    boost::beast::flat_buffer buf;
    auto [ec, n] = co_await ws.async_read(buf, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    const std::string body = boost::beast::buffers_to_string(buf.data());
    std::vector<std::string> out;  // binary messages to send
    if (ws.got_text()) {
      v1::Frame bye;
      bye.mutable_bye()->set_reason("text:" + body);
      out.push_back(bye.SerializeAsString());
    } else {
      v1::Frame in;
      if (!in.ParseFromString(body)) co_return;
      v1::Frame reply;
      int count = 0;
      switch (classify(in, reply, count)) {
        case Action::kEcho:
          out.push_back(body);
          break;
        case Action::kWsPing:
          std::tie(ec) = co_await ws.async_ping({}, asio::as_tuple(asio::use_awaitable));
          if (ec) co_return;
          out.push_back(body);
          break;
        case Action::kReply:
          out.push_back(reply.SerializeAsString());
          break;
        case Action::kClose:
          if (reply.body_case() != v1::Frame::BODY_NOT_SET) {
            ws.binary(true);
            co_await ws.async_write(asio::buffer(reply.SerializeAsString()),
                                    asio::as_tuple(asio::use_awaitable));
          }
          co_await ws.async_close(websocket::close_code::normal,
                                  asio::as_tuple(asio::use_awaitable));
          co_return;
        case Action::kReset: {
          auto& sock = boost::beast::get_lowest_layer(ws);
          sock.set_option(tcp::socket::linger(true, 0), ec);
          sock.close(ec);
          co_return;
        }
        case Action::kNothing:
          continue;
        case Action::kZero:
          out.emplace_back();
          break;
        case Action::kTooLarge:
          out.push_back(std::string(70000, 'x'));
          break;
        case Action::kGarbage:
          out.push_back("\xff\xff\xff");
          break;
        case Action::kText:
          ws.text(true);
          std::tie(ec, n) = co_await ws.async_write(asio::buffer(std::string("hello")),
                                                    asio::as_tuple(asio::use_awaitable));
          continue;
        case Action::kBurst:
          for (int i = 1; i <= count; ++i) out.push_back(burst_frame(i));
          break;
      }
    }
    for (const auto& m : out) {
      ws.binary(true);
      std::tie(ec, n) =
          co_await ws.async_write(asio::buffer(m), asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
    }
  }
}

asio::awaitable<void> mute_session(tcp::socket socket) {
  // Reads and drops whatever comes, never answers.
  char buf[1024];
  for (;;) {
    auto [ec, n] =
        co_await socket.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
  }
}

asio::awaitable<void> http404_session(tcp::socket socket) {
  std::string got;
  char buf[1024];
  while (got.find("\r\n\r\n") == std::string::npos) {
    auto [ec, n] =
        co_await socket.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    got.append(buf, n);
  }
  const std::string answer = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
  co_await asio::async_write(socket, asio::buffer(answer), asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<void> session(tcp::socket socket, Transport transport, TestServer::Impl* impl,
                              std::atomic<int>* handshakes, std::atomic<int>* resumed,
                              std::atomic<int>* pongs) {
  if (impl->mode == ServerMode::kMute) {
    co_await mute_session(std::move(socket));
    co_return;
  }
  if (impl->mode == ServerMode::kHttp404) {
    co_await http404_session(std::move(socket));
    co_return;
  }
  switch (transport) {
    case Transport::kTcp:
      co_await framed_session(socket);
      break;
    case Transport::kTls: {
      ssl::stream<tcp::socket> stream(std::move(socket), *impl->tls);
      auto [ec] = co_await stream.async_handshake(ssl::stream_base::server,
                                                  asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      handshakes->fetch_add(1);
      if (SSL_session_reused(stream.native_handle()) == 1) resumed->fetch_add(1);
      co_await framed_session(stream);
      break;
    }
    case Transport::kWs: {
      websocket::stream<tcp::socket> ws(std::move(socket));
      auto [ec] = co_await ws.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      co_await ws_session(ws, pongs);
      break;
    }
    case Transport::kWss: {
      websocket::stream<ssl::stream<tcp::socket>> ws(std::move(socket), *impl->tls);
      auto [ec] = co_await ws.next_layer().async_handshake(ssl::stream_base::server,
                                                           asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      handshakes->fetch_add(1);
      if (SSL_session_reused(ws.next_layer().native_handle()) == 1) resumed->fetch_add(1);
      std::tie(ec) = co_await ws.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      co_await ws_session(ws, pongs);
      break;
    }
  }
}

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "test server: escaped exception: %s\n", ex.what());
  }
}

}  // namespace

struct AcceptLoop {
  static asio::awaitable<void> run(TestServer::Impl* impl, Transport transport, std::mutex* mu,
                                   std::vector<std::string>* peers, std::atomic<int>* handshakes,
                                   std::atomic<int>* resumed, std::atomic<int>* pongs) {
    for (;;) {
      auto [ec, socket] = co_await impl->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      const auto remote = socket.remote_endpoint(ignored);
      {
        std::lock_guard lock(*mu);
        peers->push_back(remote.address().to_string());
      }
      asio::co_spawn(impl->ioc,
                     session(std::move(socket), transport, impl, handshakes, resumed, pongs),
                     log_exception);
    }
  }
};

TestServer::TestServer(Transport transport, const SelfSignedCert* cert, ServerMode mode)
    : transport_(transport), impl_(std::make_unique<Impl>()) {
  impl_->mode = mode;
  if (uses_tls(transport) && mode == ServerMode::kFrames) {
    if (cert == nullptr) throw std::runtime_error("TLS test server needs a certificate");
    impl_->tls = std::make_unique<ssl::context>(ssl::context::tls_server);
    impl_->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                            ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                            ssl::context::no_tlsv1_1);
    impl_->tls->use_certificate_chain(asio::buffer(cert->cert_pem));
    impl_->tls->use_private_key(asio::buffer(cert->key_pem), ssl::context::pem);
    // Session tickets are on by default (stateless, TLS 1.2 and 1.3).
  }
  const tcp::endpoint where(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(where.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(where);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->ioc,
                 AcceptLoop::run(impl_.get(), transport, &mu_, &peers_, &tls_handshakes_,
                                 &tls_resumed_, &pongs_),
                 log_exception);
  thread_ = std::thread([this] { impl_->ioc.run(); });
}

TestServer::~TestServer() {
  impl_->ioc.stop();
  if (thread_.joinable()) thread_.join();
}

Endpoint TestServer::endpoint() const {
  Endpoint e;
  e.transport = transport_;
  e.host = "127.0.0.1";
  e.port = port_;
  return e;
}

std::vector<std::string> TestServer::peers() const {
  std::lock_guard lock(mu_);
  return peers_;
}

}  // namespace pushgw::client::testing
