#include "msg_store/store_set.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "msg_store/error.h"

namespace pushgw::msg_store {

struct StoreSet::State {
  std::filesystem::path base_dir;
  StoreOptions options;
  std::chrono::milliseconds open_wait;
  std::mutex mu;
  std::condition_variable cv;
  std::map<int32_t, std::shared_ptr<MessageStore>> open;
  std::set<int32_t> opening;  // an open() of the partition is in progress
  std::set<int32_t> closing;  // a previous instance is still alive (held by someone)

  std::filesystem::path dir_of(int32_t partition) const {
    return base_dir / ("partition-" + std::to_string(partition));
  }
};

StoreSet::StoreSet(std::filesystem::path base_dir, StoreOptions options,
                   std::chrono::milliseconds open_wait)
    : state_(std::make_shared<State>()) {
  state_->base_dir = std::move(base_dir);
  state_->options = std::move(options);
  state_->open_wait = open_wait;
}

StoreSet::~StoreSet() { close_all(); }

std::filesystem::path StoreSet::dir_of(int32_t partition) const {
  return state_->dir_of(partition);
}

result<std::shared_ptr<MessageStore>> StoreSet::open(int32_t partition) {
  if (partition < 0) return store_errc::invalid_argument;
  const auto deadline = std::chrono::steady_clock::now() + state_->open_wait;
  std::unique_lock lk(state_->mu);
  for (;;) {
    if (auto it = state_->open.find(partition); it != state_->open.end()) return it->second;
    if (!state_->opening.contains(partition) && !state_->closing.contains(partition)) break;
    if (state_->cv.wait_until(lk, deadline) == std::cv_status::timeout) {
      return store_errc::locked;
    }
  }
  state_->opening.insert(partition);
  lk.unlock();

  result<std::unique_ptr<MessageStore>> opened = store_errc::locked;
  for (;;) {
    opened = open_rocksdb_store(state_->dir_of(partition), state_->options);
    // Another process may still hold the directory (it lost the partition
    // in the same rebalance and has not closed it yet): wait for it.
    if (opened || opened.error() != store_errc::locked ||
        std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  lk.lock();
  state_->opening.erase(partition);
  state_->cv.notify_all();
  if (!opened) return opened.error();
  std::shared_ptr<MessageStore> store(opened->release(), [st = state_, partition](MessageStore* s) {
    delete s;
    std::lock_guard g(st->mu);
    st->closing.erase(partition);
    st->cv.notify_all();
  });
  state_->open[partition] = store;
  return store;
}

std::shared_ptr<MessageStore> StoreSet::get(int32_t partition) const {
  std::lock_guard lk(state_->mu);
  auto it = state_->open.find(partition);
  return it == state_->open.end() ? nullptr : it->second;
}

void StoreSet::close(int32_t partition) {
  std::shared_ptr<MessageStore> store;
  {
    std::lock_guard lk(state_->mu);
    auto it = state_->open.find(partition);
    if (it == state_->open.end()) return;
    store = std::move(it->second);
    state_->open.erase(it);
    state_->closing.insert(partition);
  }
  // If this was the last holder, the database flushes and closes here.
  store.reset();
}

void StoreSet::close_all() {
  for (int32_t p : open_partitions()) close(p);
}

std::vector<int32_t> StoreSet::open_partitions() const {
  std::lock_guard lk(state_->mu);
  std::vector<int32_t> out;
  for (const auto& [p, s] : state_->open) out.push_back(p);
  return out;
}

}  // namespace pushgw::msg_store
