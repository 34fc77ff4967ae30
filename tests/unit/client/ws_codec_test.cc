#include "pushgw_client/ws_codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace pushgw::client::ws {
namespace {

/// A server-to-client frame built independently of the code under test.
std::string server_frame(uint8_t first_byte, std::string_view payload) {
  std::string out;
  out.push_back(static_cast<char>(first_byte));
  const uint64_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n < 65536) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  }
  out.append(payload);
  return out;
}

constexpr uint8_t kFin = 0x80;

TEST(WsCodecTest, AcceptKeyMatchesRfc6455Example) {
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsCodecTest, KeysAreFreshBase64Of16Bytes) {
  const std::string a = make_key();
  const std::string b = make_key();
  EXPECT_EQ(a.size(), 24u);
  EXPECT_EQ(a.substr(22), "==");
  EXPECT_NE(a, b);
}

TEST(WsCodecTest, UpgradeRequestCarriesTheHandshakeHeaders) {
  const std::string req = upgrade_request("127.0.0.1:7080", "/ws", "abc==");
  EXPECT_EQ(req.rfind("GET /ws HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(req.find("\r\nHost: 127.0.0.1:7080\r\n"), std::string::npos);
  EXPECT_NE(req.find("\r\nUpgrade: websocket\r\n"), std::string::npos);
  EXPECT_NE(req.find("\r\nConnection: Upgrade\r\n"), std::string::npos);
  EXPECT_NE(req.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_NE(req.find("\r\nSec-WebSocket-Key: abc==\r\n"), std::string::npos);
  EXPECT_EQ(req.substr(req.size() - 4), "\r\n\r\n");
}

std::string good_response(std::string_view key, std::string_view extra = "") {
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, "
         "Upgrade\r\nSec-WebSocket-Accept: " +
         accept_key(key) + "\r\n" + std::string(extra) + "\r\n";
}

TEST(WsCodecTest, AcceptsA101AndReportsTheHeadSize) {
  const std::string key = make_key();
  const std::string head = good_response(key);
  const std::string data = head + server_frame(kFin | 0x2, "xy");
  size_t head_bytes = 0;
  std::string why;
  EXPECT_EQ(check_upgrade_response(data, key, head_bytes, why), UpgradeStatus::kAccepted) << why;
  EXPECT_EQ(head_bytes, head.size());
}

TEST(WsCodecTest, NeedsMoreUntilTheHeadIsComplete) {
  const std::string key = make_key();
  const std::string head = good_response(key);
  size_t head_bytes = 0;
  std::string why;
  for (size_t n = 0; n < head.size(); ++n) {
    EXPECT_EQ(check_upgrade_response(head.substr(0, n), key, head_bytes, why),
              UpgradeStatus::kNeedMore)
        << n;
  }
}

TEST(WsCodecTest, RejectsBadUpgradeResponses) {
  const std::string key = make_key();
  size_t head_bytes = 0;
  std::string why;
  EXPECT_EQ(check_upgrade_response("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", key,
                                   head_bytes, why),
            UpgradeStatus::kRejected);
  EXPECT_NE(why.find("404"), std::string::npos);

  const std::string wrong_accept =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      accept_key("other") + "\r\n\r\n";
  EXPECT_EQ(check_upgrade_response(wrong_accept, key, head_bytes, why), UpgradeStatus::kRejected);

  const std::string no_upgrade =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      accept_key(key) + "\r\n\r\n";
  EXPECT_EQ(check_upgrade_response(no_upgrade, key, head_bytes, why), UpgradeStatus::kRejected);

  EXPECT_EQ(check_upgrade_response(good_response(key,
                                                 "Sec-WebSocket-Extensions: "
                                                 "permessage-deflate\r\n"),
                                   key, head_bytes, why),
            UpgradeStatus::kRejected);
  EXPECT_EQ(check_upgrade_response("garbage\r\n\r\n", key, head_bytes, why),
            UpgradeStatus::kRejected);
  EXPECT_EQ(check_upgrade_response("HTTP/1.1 101 OK\r\nX: " + std::string(9000, 'a'), key,
                                   head_bytes, why),
            UpgradeStatus::kRejected);
}

/// Undoes the client mask of a frame made by append_client_frame.
std::string unmask(std::string_view frame, size_t head, uint8_t* first_byte = nullptr) {
  if (first_byte) *first_byte = static_cast<uint8_t>(frame[0]);
  const auto* key = reinterpret_cast<const unsigned char*>(frame.data() + head - 4);
  std::string out;
  for (size_t i = head; i < frame.size(); ++i) {
    out.push_back(static_cast<char>(static_cast<unsigned char>(frame[i]) ^ key[(i - head) % 4]));
  }
  return out;
}

TEST(WsCodecTest, ClientFramesAreMaskedWithMinimalLengths) {
  struct Case {
    size_t size;
    size_t head;
    uint8_t len_byte;
  };
  for (const Case c : {Case{0, 6, 0x80}, Case{125, 6, 0x80 | 125}, Case{126, 8, 0x80 | 126},
                       Case{65535, 8, 0x80 | 126}, Case{65536, 14, 0x80 | 127}}) {
    std::string payload(c.size, '\0');
    for (size_t i = 0; i < c.size; ++i) payload[i] = static_cast<char>(i * 7);
    std::string frame;
    append_client_frame(Opcode::kBinary, payload, 0xA1B2C3D4u, frame);
    ASSERT_EQ(frame.size(), c.head + c.size) << c.size;
    EXPECT_EQ(static_cast<uint8_t>(frame[0]), 0x82);
    EXPECT_EQ(static_cast<uint8_t>(frame[1]), c.len_byte);
    EXPECT_EQ(static_cast<uint8_t>(frame[c.head - 4]), 0xA1);
    EXPECT_EQ(static_cast<uint8_t>(frame[c.head - 1]), 0xD4);
    EXPECT_EQ(unmask(frame, c.head), payload) << c.size;
  }
  std::string text;
  append_client_frame(Opcode::kText, "hi", 0, text);
  EXPECT_EQ(static_cast<uint8_t>(text[0]), 0x81);
}

TEST(WsCodecTest, ClosePayloadHasCodeAndBoundedReason) {
  const std::string p = close_payload(1002, std::string(300, 'r'));
  ASSERT_EQ(p.size(), 125u);
  EXPECT_EQ(static_cast<uint8_t>(p[0]), 0x03);
  EXPECT_EQ(static_cast<uint8_t>(p[1]), 0xEA);
}

TEST(WsCodecTest, ReadsWholeMessagesFedByteByByte) {
  Reader reader(1 << 20);
  const std::string big(70000, 'b');
  const std::string stream = server_frame(kFin | 0x2, "hello") + server_frame(kFin | 0x2, big) +
                             server_frame(kFin | 0x2, "");
  Message m;
  std::vector<std::string> got;
  for (char c : stream) {
    reader.feed(std::string_view(&c, 1));
    while (reader.next(m) == Reader::Status::kMessage) {
      EXPECT_EQ(m.opcode, Opcode::kBinary);
      got.push_back(m.payload);
    }
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "hello");
  EXPECT_EQ(got[1], big);
  EXPECT_EQ(got[2], "");
  EXPECT_EQ(reader.buffered(), 0u);
  EXPECT_TRUE(reader.error().empty());
}

TEST(WsCodecTest, ReassemblesFragmentsAroundControlFrames) {
  Reader reader(1024);
  reader.feed(server_frame(0x2, "ab") + server_frame(kFin | 0x9, "ping!") +
              server_frame(0x0, "cd") + server_frame(kFin | 0xA, "") +
              server_frame(kFin | 0x0, "ef"));
  Message m;
  ASSERT_EQ(reader.next(m), Reader::Status::kMessage);
  EXPECT_EQ(m.opcode, Opcode::kPing);
  EXPECT_EQ(m.payload, "ping!");
  ASSERT_EQ(reader.next(m), Reader::Status::kMessage);
  EXPECT_EQ(m.opcode, Opcode::kPong);
  ASSERT_EQ(reader.next(m), Reader::Status::kMessage);
  EXPECT_EQ(m.opcode, Opcode::kBinary);
  EXPECT_EQ(m.payload, "abcdef");
  EXPECT_EQ(reader.next(m), Reader::Status::kNeedMore);
}

TEST(WsCodecTest, ReportsTextAndCloseFrames) {
  Reader reader(1024);
  reader.feed(server_frame(kFin | 0x1, "txt") +
              server_frame(kFin | 0x8,
                           "\x03\xE8"
                           "bye") +
              server_frame(kFin | 0x8, ""));
  Message m;
  ASSERT_EQ(reader.next(m), Reader::Status::kMessage);
  EXPECT_EQ(m.opcode, Opcode::kText);
  EXPECT_EQ(m.payload, "txt");
  ASSERT_EQ(reader.next(m), Reader::Status::kMessage);
  EXPECT_EQ(m.opcode, Opcode::kClose);
  EXPECT_EQ(m.close_code, 1000);
  EXPECT_EQ(m.payload, "bye");
  ASSERT_EQ(reader.next(m), Reader::Status::kMessage);
  EXPECT_EQ(m.opcode, Opcode::kClose);
  EXPECT_EQ(m.close_code, 1005);
}

TEST(WsCodecTest, RejectsProtocolViolations) {
  struct Case {
    const char* name;
    std::string bytes;
  };
  std::string masked = server_frame(kFin | 0x2, "");
  masked[1] = static_cast<char>(0x80);
  masked += "\x01\x02\x03\x04";
  std::string non_minimal16 = {static_cast<char>(0x82), static_cast<char>(126), 0, 5};
  non_minimal16 += "hello";
  std::string non_minimal64 = {
      static_cast<char>(0x82), static_cast<char>(127), 0, 0, 0, 0, 0, 0, 0, 5};
  std::string huge = {static_cast<char>(0x82),
                      static_cast<char>(127),
                      static_cast<char>(0x80),
                      0,
                      0,
                      0,
                      0,
                      0,
                      0,
                      0};
  const Case cases[] = {
      {"masked", masked},
      {"rsv1", server_frame(kFin | 0x40 | 0x2, "x")},
      {"opcode 3", server_frame(kFin | 0x3, "x")},
      {"opcode 11", server_frame(kFin | 0xB, "x")},
      {"long ping", server_frame(kFin | 0x9, std::string(126, 'p'))},
      {"fragmented ping", server_frame(0x9, "p")},
      {"bare continuation", server_frame(kFin | 0x0, "x")},
      {"nested message", server_frame(0x2, "a") + server_frame(kFin | 0x2, "b")},
      {"too large", server_frame(kFin | 0x2, std::string(101, 'x'))},
      {"too large in fragments",
       server_frame(0x2, std::string(60, 'x')) + server_frame(kFin | 0x0, std::string(60, 'x'))},
      {"non-minimal 16", non_minimal16},
      {"non-minimal 64", non_minimal64},
      {"top bit length", huge},
      {"1-byte close", server_frame(kFin | 0x8, "x")},
  };
  for (const auto& c : cases) {
    Reader reader(100);
    reader.feed(c.bytes);
    Message m;
    Reader::Status s;
    while ((s = reader.next(m)) == Reader::Status::kMessage) {
    }
    EXPECT_EQ(s, Reader::Status::kError) << c.name;
    EXPECT_FALSE(reader.error().empty()) << c.name;
    // Sticky: more good input does not revive it.
    reader.feed(server_frame(kFin | 0x2, "ok"));
    EXPECT_EQ(reader.next(m), Reader::Status::kError) << c.name;
  }
}

TEST(WsCodecTest, TooLargeIsDetectedFromTheHeaderAlone) {
  Reader reader(1000);
  std::string head = {static_cast<char>(0x82), static_cast<char>(127), 0, 0, 0, 1, 0, 0, 0, 0};
  reader.feed(head);  // announces 4 GiB; no payload bytes yet
  Message m;
  EXPECT_EQ(reader.next(m), Reader::Status::kError);
}

}  // namespace
}  // namespace pushgw::client::ws
