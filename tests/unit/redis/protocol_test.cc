#include "common/redis/protocol.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <random>
#include <string>
#include <vector>

namespace pushgw::redis {
namespace {

std::string encode(const Command& c) {
  std::string out;
  auto r = append_command(out, c);
  EXPECT_TRUE(r);
  return out;
}

TEST(Encode, SimpleCommand) {
  EXPECT_EQ(encode(Command{"SET", "k", "v"}), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
}

TEST(Encode, BinaryAndEmptyArgumentsAreLengthPrefixed) {
  std::string bin("a\0b\r\nc", 6);
  Command c{"SET", bin, ""};
  EXPECT_EQ(encode(c), std::string("*3\r\n$3\r\nSET\r\n$6\r\n") + bin + "\r\n$0\r\n\r\n");
}

TEST(Encode, IntegerArguments) {
  Command c{"EXPIRE"};
  c.arg("k").arg(-5).arg(std::uint64_t{18446744073709551615ULL}).arg(true);
  EXPECT_EQ(
      encode(c),
      "*5\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n-5\r\n$20\r\n18446744073709551615\r\n$1\r\n1\r\n");
}

TEST(Encode, AppendsToExistingBuffer) {
  std::string out = "x";
  ASSERT_TRUE(append_command(out, Command{"PING"}));
  EXPECT_EQ(out, "x*1\r\n$4\r\nPING\r\n");
}

std::string hiredis_encoding(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* out = nullptr;
  int n = redisFormatCommandArgv(&out, static_cast<int>(args.size()), argv.data(), lens.data());
  std::string s(out, static_cast<std::size_t>(n));
  redisFreeCommand(out);
  return s;
}

TEST(Encode, ByteIdenticalToHiredisFormatter) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> argc_dist(1, 40), len_dist(0, 300), byte(0, 255);
  for (int round = 0; round < 500; ++round) {
    std::vector<std::string> args(static_cast<std::size_t>(argc_dist(rng)));
    Command c;
    for (auto& a : args) {
      a.resize(static_cast<std::size_t>(round % 50 == 0 ? len_dist(rng) * 100 : len_dist(rng)));
      for (auto& ch : a) ch = static_cast<char>(byte(rng));
      c.arg(a);
    }
    ASSERT_EQ(encode(c), hiredis_encoding(args)) << "round " << round;
  }
}

// CommandBuffer writes the same bytes as append_command() (and so as hiredis)
// for many commands in a row, and decodes each back into its Command.
TEST(CommandBuffer, SameBytesAsCommandsAndDecodesBack) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> argc_dist(1, 12), len_dist(0, 200), byte(0, 255);
  CommandBuffer b;
  std::vector<Command> cmds;
  std::string expected;
  for (int i = 0; i < 300; ++i) {
    Command c;
    const auto argc = static_cast<std::size_t>(argc_dist(rng));
    b.begin(argc);
    for (std::size_t k = 0; k < argc; ++k) {
      std::string a(static_cast<std::size_t>(len_dist(rng)), '\0');
      for (auto& ch : a) ch = static_cast<char>(byte(rng));
      c.arg(a);
      if (k % 3 == 1) {
        // The same argument written from pieces.
        const std::string_view v(a);
        b.arg_concat({v.substr(0, v.size() / 2), std::string_view(), v.substr(v.size() / 2)});
      } else {
        b.arg(a);
      }
    }
    expected += encode(c);
    cmds.push_back(std::move(c));
  }
  b.begin(4).arg("SET").arg_int(-42).arg_uint(18446744073709551615ULL).arg("");
  Command ints{"SET"};
  ints.arg(-42).arg(std::uint64_t{18446744073709551615ULL}).arg("");
  expected += encode(ints);
  cmds.push_back(std::move(ints));

  ASSERT_TRUE(b.complete());
  ASSERT_EQ(b.size(), cmds.size());
  EXPECT_EQ(b.bytes(), expected);
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    const auto d = b.command(i);
    ASSERT_EQ(d.size(), cmds[i].size()) << i;
    for (std::size_t k = 0; k < d.size(); ++k) EXPECT_EQ(d[k], cmds[i][k]) << i << "/" << k;
  }
  EXPECT_TRUE(b.command(cmds.size()).empty());
}

TEST(CommandBuffer, MissingOrExtraArgumentsMakeItIncomplete) {
  CommandBuffer missing;
  missing.begin(2).arg("GET");
  EXPECT_FALSE(missing.complete());
  missing.begin(1).arg("PING");  // the previous one never got its key
  EXPECT_FALSE(missing.complete());
  EXPECT_TRUE(missing.command(0).empty());

  CommandBuffer extra;
  extra.begin(1).arg("PING").arg("x");
  EXPECT_FALSE(extra.complete());

  CommandBuffer zero;
  zero.begin(0);
  EXPECT_FALSE(zero.complete());

  CommandBuffer fine;
  EXPECT_TRUE(fine.complete());
  EXPECT_TRUE(fine.empty());
  fine.begin(1).arg("PING");
  EXPECT_TRUE(fine.complete());
  EXPECT_EQ(fine.bytes(), "*1\r\n$4\r\nPING\r\n");
}

TEST(Encode, EmptyCommandIsRejected) {
  std::string out;
  auto r = append_command(out, Command{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::invalid_argument));
  EXPECT_TRUE(out.empty());
}

Reply parse_one(std::string_view wire) {
  ReplyParser p;
  EXPECT_TRUE(p.feed(wire.data(), wire.size()));
  auto r = p.next();
  EXPECT_TRUE(r);
  if (!r || !*r) {
    ADD_FAILURE() << "no complete reply in: " << wire;
    return Reply::nil();
  }
  auto again = p.next();
  EXPECT_TRUE(again && !*again) << "unexpected second reply";
  return std::move(**r);
}

TEST(Parse, EveryReplyType) {
  EXPECT_EQ(parse_one("+OK\r\n"), Reply::simple("OK"));
  EXPECT_EQ(parse_one("-ERR bad thing\r\n"), Reply::error("ERR bad thing"));
  EXPECT_EQ(parse_one(":-42\r\n"), Reply::integer(-42));
  EXPECT_EQ(parse_one("$5\r\nhello\r\n"), Reply::bulk("hello"));
  EXPECT_EQ(parse_one("$0\r\n\r\n"), Reply::bulk(""));
  EXPECT_EQ(parse_one("$-1\r\n"), Reply::nil());
  EXPECT_EQ(parse_one("*-1\r\n"), Reply::nil());
  EXPECT_EQ(parse_one("*0\r\n"), Reply::array({}));
}

TEST(Parse, BulkStringsAreBinarySafe) {
  auto r = parse_one(std::string("$4\r\na\0\r\n\r\n", 10));
  EXPECT_EQ(r.type(), Reply::Type::bulk_string);
  EXPECT_EQ(r.str(), std::string("a\0\r\n", 4));
}

TEST(Parse, NestedArrays) {
  auto r = parse_one("*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n*1\r\n*1\r\n+x\r\n");
  auto expected = Reply::array({Reply::integer(1), Reply::array({Reply::bulk("a"), Reply::nil()}),
                                Reply::array({Reply::array({Reply::simple("x")})})});
  EXPECT_EQ(r, expected) << r.to_string();
}

TEST(Parse, ByteByByteFeedingYieldsSameReplies) {
  std::string wire = "*2\r\n$3\r\nfoo\r\n:7\r\n+PONG\r\n-ERR x\r\n";
  ReplyParser p;
  std::vector<Reply> got;
  for (char c : wire) {
    ASSERT_TRUE(p.feed(&c, 1));
    for (;;) {
      auto r = p.next();
      ASSERT_TRUE(r);
      if (!*r) break;
      got.push_back(std::move(**r));
    }
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], Reply::array({Reply::bulk("foo"), Reply::integer(7)}));
  EXPECT_EQ(got[1], Reply::simple("PONG"));
  EXPECT_EQ(got[2], Reply::error("ERR x"));
}

TEST(Parse, ManyRepliesInOneFeed) {
  std::string wire;
  for (int i = 0; i < 1000; ++i) wire += ":" + std::to_string(i) + "\r\n";
  ReplyParser p;
  ASSERT_TRUE(p.feed(wire.data(), wire.size()));
  for (int i = 0; i < 1000; ++i) {
    auto r = p.next();
    ASSERT_TRUE(r && *r);
    EXPECT_EQ((*r)->integer(), i);
  }
  auto end = p.next();
  ASSERT_TRUE(end);
  EXPECT_FALSE(*end);
}

TEST(Parse, GarbageIsAProtocolErrorUntilReset) {
  ReplyParser p;
  std::string bad = "?what\r\n";
  ASSERT_TRUE(p.feed(bad.data(), bad.size()));
  auto r = p.next();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(errc::protocol_error));
  EXPECT_FALSE(p.last_error().empty());
  std::string good = "+OK\r\n";
  EXPECT_FALSE(p.feed(good.data(), good.size()));
  p.reset();
  ASSERT_TRUE(p.feed(good.data(), good.size()));
  auto ok = p.next();
  ASSERT_TRUE(ok && *ok);
  EXPECT_EQ(**ok, Reply::simple("OK"));
}

TEST(Parse, IncompleteReplyWaitsForMoreBytes) {
  ReplyParser p;
  std::string part = "$10\r\nhello";
  ASSERT_TRUE(p.feed(part.data(), part.size()));
  auto r = p.next();
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
  std::string rest = "world\r\n";
  ASSERT_TRUE(p.feed(rest.data(), rest.size()));
  r = p.next();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(**r, Reply::bulk("helloworld"));
}

TEST(Reply, Helpers) {
  EXPECT_EQ(Reply::integer(5).to_int(), 5);
  EXPECT_EQ(Reply::bulk("-17").to_int(), -17);
  EXPECT_FALSE(Reply::bulk("17x").to_int());
  EXPECT_FALSE(Reply::bulk("").to_int());
  EXPECT_FALSE(Reply::nil().to_int());
  EXPECT_TRUE(Reply::error("MOVED 1 h:1").error_is("MOVED"));
  EXPECT_TRUE(Reply::error("TRYAGAIN").error_is("TRYAGAIN"));
  EXPECT_FALSE(Reply::error("MOVEDX 1").error_is("MOVED"));
  EXPECT_FALSE(Reply::bulk("MOVED 1").error_is("MOVED"));
  EXPECT_EQ(Reply::array({Reply::bulk("a"), Reply::integer(1), Reply::nil()}).to_string(),
            "[\"a\", 1, nil]");
  EXPECT_TRUE(Reply().is_nil());
}

}  // namespace
}  // namespace pushgw::redis
