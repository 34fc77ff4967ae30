#include "common/redis/protocol.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <new>
#include <vector>

namespace pushgw::redis {
namespace {

// hiredis builds the reply tree through these callbacks, so replies are
// parsed straight into Reply values (no redisReply copy). Children live by
// value inside their parent's elements vector, which is sized by createArray
// before any child arrives; the root lives in the parser (the reader's
// privdata), one reply at a time: no allocation per reply.
Reply* place(const redisReadTask* task, Reply&& value) noexcept {
  try {
    if (task->parent != nullptr) {
      auto* parent = static_cast<Reply*>(task->parent->obj);
      auto& slot = parent->elements()[static_cast<std::size_t>(task->idx)];
      slot = std::move(value);
      return &slot;
    }
    auto* root = static_cast<Reply*>(task->privdata);
    *root = std::move(value);
    return root;
  } catch (const std::bad_alloc&) {
    return nullptr;  // hiredis reports out-of-memory
  }
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
  try {
    std::string s(str, len);
    switch (task->type) {
      case REDIS_REPLY_ERROR:
        return place(task, Reply::error(std::move(s)));
      case REDIS_REPLY_STATUS:
        return place(task, Reply::simple(std::move(s)));
      default:
        return place(task, Reply::bulk(std::move(s)));
    }
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void* create_array(const redisReadTask* task, int elements) {
  try {
    std::vector<Reply> v(static_cast<std::size_t>(elements < 0 ? 0 : elements));
    return place(task, Reply::array(std::move(v)));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void* create_integer(const redisReadTask* task, long long value) {
  return place(task, Reply::integer(static_cast<std::int64_t>(value)));
}

void* create_nil(const redisReadTask* task) { return place(task, Reply::nil()); }

// hiredis frees only roots (a reply it gives up on, or one never taken):
// the parser's slot is just cleared.
void free_object(void* obj) { *static_cast<Reply*>(obj) = Reply(); }

redisReplyObjectFunctions kFunctions = {create_string, create_array, create_integer, create_nil,
                                        free_object};

struct ReaderDeleter {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};

}  // namespace

result<void> append_command(std::string& out, const Command& cmd) {
  if (cmd.empty()) return errc::invalid_argument;
  // RESP request: *<argc>\r\n then $<len>\r\n<bytes>\r\n per argument. Written
  // by hand: hiredis' formatters (sprintf / sdscatfmt based) took a third of
  // the client's CPU in bench_status_store. Unit tests check the bytes
  // against redisFormatCommandArgv.
  std::size_t total = 16;
  for (std::size_t i = 0; i < cmd.size(); ++i) total += cmd[i].size() + 16;
  if (out.capacity() < out.size() + total)
    out.reserve(std::max(out.capacity() * 2, out.size() + total));
  char num[24];
  auto put_header = [&](char kind, std::size_t v) {
    out.push_back(kind);
    auto [p, ec] = std::to_chars(num, num + sizeof(num), v);
    out.append(num, static_cast<std::size_t>(p - num));
    out.append("\r\n", 2);
  };
  put_header('*', cmd.size());
  for (std::size_t i = 0; i < cmd.size(); ++i) {
    auto a = cmd[i];
    put_header('$', a.size());
    out.append(a.data(), a.size());
    out.append("\r\n", 2);
  }
  return {};
}

struct ReplyParser::Impl {
  // Declared before the reader: redisReaderFree may still clear it.
  Reply root;
  std::unique_ptr<redisReader, ReaderDeleter> reader;

  void make() {
    reader.reset(redisReaderCreateWithFunctions(&kFunctions));
    if (!reader) throw std::bad_alloc();
    reader->privdata = &root;
    // Keep the input buffer between reads instead of freeing it when idle.
    reader->maxbuf = 0;
  }
};

ReplyParser::ReplyParser() : impl_(std::make_unique<Impl>()) { impl_->make(); }

ReplyParser::~ReplyParser() = default;

result<void> ReplyParser::feed(const char* data, std::size_t n) {
  if (redisReaderFeed(impl_->reader.get(), data, n) != REDIS_OK) return errc::protocol_error;
  return {};
}

result<std::optional<Reply>> ReplyParser::next() {
  void* obj = nullptr;
  if (redisReaderGetReply(impl_->reader.get(), &obj) != REDIS_OK) {
    return errc::protocol_error;
  }
  if (obj == nullptr) return std::optional<Reply>();
  auto* root = static_cast<Reply*>(obj);
  std::optional<Reply> out(std::move(*root));
  *root = Reply();
  return out;
}

void ReplyParser::reset() { impl_->make(); }

std::string ReplyParser::last_error() const {
  return impl_->reader->err ? std::string(impl_->reader->errstr) : std::string();
}

}  // namespace pushgw::redis
