#pragma once
// Helpers shared by the msg-store unit tests: records and a store in a temp dir.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "msg_store/rocksdb_store.h"
#include "testsupport/temp_dir.h"

namespace pushgw::msg_store::testing {

inline constexpr uint64_t kHour = 3'600'000;

inline bus::v1::DeliveryRecord record(const std::string& app, const std::string& device,
                                      uint64_t seq, uint64_t expires_ms,
                                      const std::string& collapse_key = {},
                                      const std::string& id = {}) {
  bus::v1::DeliveryRecord r;
  r.set_schema_version(1);
  r.set_app_id(app);
  r.set_device_id(device);
  auto* p = r.mutable_push();
  p->set_message_id(id.empty() ? app + "-" + device + "-m" + std::to_string(seq) : id);
  p->set_seq(seq);
  p->set_payload("payload-" + std::to_string(seq));
  p->set_collapse_key(collapse_key);
  p->set_expires_ms(expires_ms);
  p->set_ack_required(true);
  return r;
}

inline std::vector<uint64_t> seqs_of(const ReadResult& r) {
  std::vector<uint64_t> out;
  for (const auto& m : r.messages) out.push_back(m.seq());
  return out;
}

class StoreFixture : public ::testing::Test {
 protected:
  StoreOptions options() {
    StoreOptions o;
    o.clock = &clock_;
    o.max_per_device = max_per_device_;
    o.max_collapsible_per_device = max_collapsible_;
    o.write_buffer_bytes = 1 << 20;
    o.block_cache_bytes = 1 << 20;
    o.faults = faults_;
    return o;
  }
  void open() {
    store_.reset();
    auto s = open_rocksdb_store(dir_.path() / "db", options());
    ASSERT_TRUE(s) << s.error().message();
    store_ = std::move(*s);
  }
  void SetUp() override { open(); }

  // Stores records one call each and returns the outcomes.
  std::vector<StoreOutcome> put(const std::vector<bus::v1::DeliveryRecord>& records) {
    auto r = store_->store(records);
    EXPECT_TRUE(r) << r.error().message();
    return r ? r->outcomes : std::vector<StoreOutcome>{};
  }
  std::vector<uint64_t> read_seqs(const std::string& app, const std::string& device,
                                  uint64_t after = 0) {
    auto r = store_->read(app, device, after, 10'000);
    EXPECT_TRUE(r) << r.error().message();
    return r ? seqs_of(*r) : std::vector<uint64_t>{};
  }
  uint64_t later() const { return clock_.now_ms() + kHour; }

  ManualClock clock_;
  uint32_t max_per_device_ = 100;
  uint32_t max_collapsible_ = 100;
  std::shared_ptr<FaultInjection> faults_ = std::make_shared<FaultInjection>();
  testsupport::TempDir dir_{"msg-store-test"};
  std::unique_ptr<MessageStore> store_;
};

}  // namespace pushgw::msg_store::testing
