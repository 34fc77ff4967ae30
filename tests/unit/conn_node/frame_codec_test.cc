#include "conn_node/frame_codec.h"

#include <gtest/gtest.h>

namespace pushgw::conn_node {
namespace {

v1::Frame ping(uint64_t t) {
  v1::Frame f;
  f.mutable_ping()->set_client_time_ms(t);
  return f;
}

TEST(FrameCodec, PrefixIsBigEndianLength) {
  std::string wire = encode_framed(ping(7));
  ASSERT_GE(wire.size(), kPrefixBytes);
  EXPECT_EQ(read_prefix(reinterpret_cast<const unsigned char*>(wire.data())),
            wire.size() - kPrefixBytes);
  EXPECT_EQ(static_cast<unsigned char>(wire[0]), 0);
}

TEST(FrameCodec, ReaderDecodesFramesSplitAtEveryByte) {
  std::string wire = encode_framed(ping(1)) + encode_framed(ping(2)) + encode_framed(ping(3));
  FrameReader r;
  std::vector<uint64_t> got;
  for (char c : wire) {
    r.feed(std::string_view(&c, 1));
    v1::Frame f;
    while (r.next(f) == FrameReader::Status::kFrame) got.push_back(f.ping().client_time_ms());
  }
  EXPECT_EQ(got, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(FrameCodec, ZeroLengthIsBadFrame) {
  FrameReader r;
  r.feed(std::string("\0\0\0\0", 4));
  v1::Frame f;
  EXPECT_EQ(r.next(f), FrameReader::Status::kError);
  EXPECT_EQ(r.error(), FrameError::kEmpty);
  EXPECT_EQ(to_error_code(r.error()), v1::BAD_FRAME);
}

TEST(FrameCodec, OversizedPrefixIsTooLargeBeforeBodyArrives) {
  FrameReader r(1024);
  r.feed(std::string("\0\0\x04\x01", 4));  // 1025
  v1::Frame f;
  EXPECT_EQ(r.next(f), FrameReader::Status::kError);
  EXPECT_EQ(r.error(), FrameError::kTooLarge);
  EXPECT_EQ(to_error_code(r.error()), v1::FRAME_TOO_LARGE);
  EXPECT_EQ(check_length(1024, 1024), FrameError::kOk);
}

TEST(FrameCodec, GarbageBodyIsMalformed) {
  FrameReader r;
  r.feed(std::string("\0\0\0\x03\xff\xff\xff", 7));
  v1::Frame f;
  EXPECT_EQ(r.next(f), FrameReader::Status::kError);
  EXPECT_EQ(r.error(), FrameError::kMalformed);
  // A failed reader stays failed.
  r.feed(encode_framed(ping(1)));
  EXPECT_EQ(r.next(f), FrameReader::Status::kError);
}

TEST(FrameCodec, FrameWithoutBodyIsMalformed) {
  v1::Frame f;
  EXPECT_EQ(parse_body("", f), FrameError::kMalformed);
}

TEST(FrameCodec, ClientFrameKinds) {
  v1::Frame f;
  f.mutable_hello();
  EXPECT_TRUE(is_client_frame(f));
  f.mutable_ack();
  EXPECT_TRUE(is_client_frame(f));
  f.mutable_push();
  EXPECT_FALSE(is_client_frame(f));
  f.mutable_welcome();
  EXPECT_FALSE(is_client_frame(f));
  f.mutable_error();
  EXPECT_FALSE(is_client_frame(f));
}

TEST(FrameCodec, IdRule) {
  EXPECT_TRUE(valid_id("dev-1_a.b:c"));
  EXPECT_TRUE(valid_id(std::string(128, 'a')));
  EXPECT_FALSE(valid_id(std::string(129, 'a')));
  EXPECT_FALSE(valid_id(""));
  EXPECT_FALSE(valid_id("a b"));
  EXPECT_FALSE(valid_id("a/b"));
  EXPECT_FALSE(valid_id("caf\xc3\xa9"));
}

}  // namespace
}  // namespace pushgw::conn_node
