#pragma once
/// A Redis reply as a plain value: no hiredis types, safe to copy and move
/// across executors. Transport failures never become a Reply; they are the
/// error side of `pushgw::result<Reply>`. An error *reply* from the server
/// (e.g. "WRONGTYPE ...", "MOVED ...") is a Reply of type `error`.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pushgw::redis {

class Reply {
 public:
  enum class Type : std::uint8_t { nil, integer, simple_string, bulk_string, error, array };

  /// A nil reply.
  Reply() = default;

  static Reply nil() { return Reply(); }
  static Reply integer(std::int64_t v);
  static Reply simple(std::string s);
  static Reply bulk(std::string s);
  static Reply error(std::string message);
  static Reply array(std::vector<Reply> elements);

  Type type() const { return type_; }
  bool is_nil() const { return type_ == Type::nil; }
  bool is_integer() const { return type_ == Type::integer; }
  bool is_error() const { return type_ == Type::error; }
  bool is_array() const { return type_ == Type::array; }
  /// Simple or bulk string.
  bool is_string() const { return type_ == Type::simple_string || type_ == Type::bulk_string; }

  /// The integer value; 0 unless is_integer().
  std::int64_t integer() const { return integer_; }
  /// Text of a simple string, bulk string or error; empty otherwise.
  const std::string& str() const { return str_; }
  std::string& str() { return str_; }
  /// Elements of an array; empty otherwise.
  const std::vector<Reply>& elements() const { return elements_; }
  std::vector<Reply>& elements() { return elements_; }

  /// An integer reply, or a string reply holding a base-10 integer.
  std::optional<std::int64_t> to_int() const;
  /// True for an error reply whose first word equals `prefix` (e.g. "MOVED").
  bool error_is(std::string_view prefix) const;
  /// Human-readable form for logs and test failures, e.g. `["a", 1, nil]`.
  std::string to_string() const;

  bool operator==(const Reply&) const = default;

 private:
  Type type_ = Type::nil;
  std::int64_t integer_ = 0;
  std::string str_;
  std::vector<Reply> elements_;
};

std::string_view to_string(Reply::Type t);

}  // namespace pushgw::redis
