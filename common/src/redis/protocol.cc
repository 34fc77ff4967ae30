#include "common/redis/protocol.h"

#include <hiredis/hiredis.h>

#include <array>
#include <cstdlib>
#include <new>
#include <vector>

namespace pushgw::redis {
namespace {

// hiredis builds the reply tree through these callbacks, so replies are
// parsed straight into Reply values (no redisReply copy). Children live by
// value inside their parent's elements vector, which is sized by createArray
// before any child arrives; only the root is heap-allocated and owned by us.
Reply* place(const redisReadTask* task, Reply&& value) noexcept {
  try {
    if (task->parent != nullptr) {
      auto* parent = static_cast<Reply*>(task->parent->obj);
      auto& slot = parent->elements()[static_cast<std::size_t>(task->idx)];
      slot = std::move(value);
      return &slot;
    }
    return new Reply(std::move(value));
  } catch (const std::bad_alloc&) {
    return nullptr;  // hiredis reports out-of-memory
  }
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
  try {
    std::string s(str, len);
    switch (task->type) {
      case REDIS_REPLY_ERROR: return place(task, Reply::error(std::move(s)));
      case REDIS_REPLY_STATUS: return place(task, Reply::simple(std::move(s)));
      default: return place(task, Reply::bulk(std::move(s)));
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

void free_object(void* obj) { delete static_cast<Reply*>(obj); }

redisReplyObjectFunctions kFunctions = {create_string, create_array, create_integer, create_nil,
                                        free_object};

struct ReaderDeleter {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};

}  // namespace

result<void> append_command(std::string& out, const Command& cmd) {
  if (cmd.empty()) return errc::invalid_argument;
  constexpr std::size_t kInline = 32;
  std::array<const char*, kInline> argv_inline;
  std::array<size_t, kInline> len_inline;
  std::vector<const char*> argv_heap;
  std::vector<size_t> len_heap;
  const char** argv = argv_inline.data();
  size_t* lens = len_inline.data();
  if (cmd.size() > kInline) {
    argv_heap.resize(cmd.size());
    len_heap.resize(cmd.size());
    argv = argv_heap.data();
    lens = len_heap.data();
  }
  for (std::size_t i = 0; i < cmd.size(); ++i) {
    auto a = cmd[i];
    argv[i] = a.data();
    lens[i] = a.size();
  }
  char* encoded = nullptr;
  int n = redisFormatCommandArgv(&encoded, static_cast<int>(cmd.size()), argv, lens);
  if (n < 0 || encoded == nullptr) return errc::invalid_argument;
  out.append(encoded, static_cast<std::size_t>(n));
  redisFreeCommand(encoded);
  return {};
}

struct ReplyParser::Impl {
  std::unique_ptr<redisReader, ReaderDeleter> reader;

  void make() {
    reader.reset(redisReaderCreateWithFunctions(&kFunctions));
    if (!reader) throw std::bad_alloc();
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
  std::unique_ptr<Reply> owned(static_cast<Reply*>(obj));
  return std::optional<Reply>(std::move(*owned));
}

void ReplyParser::reset() { impl_->make(); }

std::string ReplyParser::last_error() const {
  return impl_->reader->err ? std::string(impl_->reader->errstr) : std::string();
}

}  // namespace pushgw::redis
