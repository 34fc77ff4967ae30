#include "common/redis/reply.h"

#include <charconv>

namespace pushgw::redis {

Reply Reply::integer(std::int64_t v) {
  Reply r;
  r.type_ = Type::integer;
  r.integer_ = v;
  return r;
}

Reply Reply::simple(std::string s) {
  Reply r;
  r.type_ = Type::simple_string;
  r.str_ = std::move(s);
  return r;
}

Reply Reply::bulk(std::string s) {
  Reply r;
  r.type_ = Type::bulk_string;
  r.str_ = std::move(s);
  return r;
}

Reply Reply::error(std::string message) {
  Reply r;
  r.type_ = Type::error;
  r.str_ = std::move(message);
  return r;
}

Reply Reply::array(std::vector<Reply> elements) {
  Reply r;
  r.type_ = Type::array;
  r.elements_ = std::move(elements);
  return r;
}

std::optional<std::int64_t> Reply::to_int() const {
  if (type_ == Type::integer) return integer_;
  if (!is_string() || str_.empty()) return std::nullopt;
  std::int64_t v = 0;
  const char* end = str_.data() + str_.size();
  auto [p, ec] = std::from_chars(str_.data(), end, v);
  if (ec != std::errc() || p != end) return std::nullopt;
  return v;
}

bool Reply::error_is(std::string_view prefix) const {
  if (type_ != Type::error) return false;
  std::string_view s(str_);
  return s.substr(0, prefix.size()) == prefix &&
         (s.size() == prefix.size() || s[prefix.size()] == ' ');
}

namespace {

void render(const Reply& r, std::string& out) {
  switch (r.type()) {
    case Reply::Type::nil:
      out += "nil";
      return;
    case Reply::Type::integer:
      out += std::to_string(r.integer());
      return;
    case Reply::Type::simple_string:
      out += r.str();
      return;
    case Reply::Type::bulk_string:
      out += '"';
      out += r.str();
      out += '"';
      return;
    case Reply::Type::error:
      out += "(error) ";
      out += r.str();
      return;
    case Reply::Type::array: {
      out += '[';
      bool first = true;
      for (const auto& e : r.elements()) {
        if (!first) out += ", ";
        first = false;
        render(e, out);
      }
      out += ']';
      return;
    }
  }
}

}  // namespace

std::string Reply::to_string() const {
  std::string out;
  render(*this, out);
  return out;
}

std::string_view to_string(Reply::Type t) {
  switch (t) {
    case Reply::Type::nil:
      return "nil";
    case Reply::Type::integer:
      return "integer";
    case Reply::Type::simple_string:
      return "simple_string";
    case Reply::Type::bulk_string:
      return "bulk_string";
    case Reply::Type::error:
      return "error";
    case Reply::Type::array:
      return "array";
  }
  return "unknown";
}

}  // namespace pushgw::redis
