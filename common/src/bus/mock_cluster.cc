#include "common/bus/mock_cluster.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <spdlog/spdlog.h>

#include "rdkafka_util.h"

namespace pushgw::bus {

struct MockCluster::Handles {
  detail::KafkaPtr rk;  // librdkafka keeps its book-keeping on this handle
  rd_kafka_mock_cluster_t* mcluster = nullptr;
  ~Handles() {
    // The cluster must go before the handle it was created on.
    if (mcluster != nullptr) {
      rd_kafka_mock_cluster_destroy(mcluster);
    }
  }
};

namespace {

result<void> check(rd_kafka_resp_err_t err, const char* what, int32_t broker_id) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    return {};
  }
  spdlog::warn("kafka mock: {} broker {}: {}", what, broker_id, rd_kafka_err2str(err));
  if (err == RD_KAFKA_RESP_ERR__UNKNOWN_BROKER) {
    return errc::not_found;
  }
  return detail::to_error_code(err);
}

bool valid_topic_name(const std::string& name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace

result<std::unique_ptr<MockCluster>> MockCluster::start(int brokers) {
  if (brokers < 1 || brokers > 64) {
    return errc::invalid_argument;
  }
  // This handle only hosts the cluster; it never connects anywhere, so its
  // "no bootstrap.servers" notice is silenced (log_level 4 = warnings).
  auto handles = std::make_unique<Handles>();
  handles->rk = detail::make_handle(RD_KAFKA_PRODUCER, detail::make_conf({{"log_level", "4"}}));
  handles->mcluster = rd_kafka_mock_cluster_new(handles->rk.get(), brokers);
  if (handles->mcluster == nullptr) {
    spdlog::error("kafka mock: could not start {} broker(s)", brokers);
    return errc::unavailable;
  }
  std::string bootstrap = rd_kafka_mock_cluster_bootstraps(handles->mcluster);
  return std::unique_ptr<MockCluster>(new MockCluster(std::move(handles), bootstrap, brokers));
}

MockCluster::MockCluster(std::unique_ptr<Handles> handles, std::string bootstrap, int brokers)
    : handles_(std::move(handles)), bootstrap_(std::move(bootstrap)), brokers_(brokers) {}

MockCluster::~MockCluster() = default;

result<void> MockCluster::create_topic(const std::string& name, int partitions,
                                       int replication_factor) {
  if (!valid_topic_name(name) || partitions < 1 || replication_factor < 1) {
    return errc::invalid_argument;
  }
  rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(handles_->mcluster, name.c_str(), partitions,
                                                       std::min(replication_factor, brokers_));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::warn("kafka mock: creating topic {} failed: {}", name, rd_kafka_err2str(err));
    return errc::rejected;
  }
  return {};
}

result<void> MockCluster::set_broker_down(int32_t broker_id) {
  return check(rd_kafka_mock_broker_set_down(handles_->mcluster, broker_id), "set down", broker_id);
}

result<void> MockCluster::set_broker_up(int32_t broker_id) {
  return check(rd_kafka_mock_broker_set_up(handles_->mcluster, broker_id), "set up", broker_id);
}

result<void> MockCluster::set_broker_rtt(int32_t broker_id, int rtt_ms) {
  return check(rd_kafka_mock_broker_set_rtt(handles_->mcluster, broker_id, rtt_ms), "set rtt",
               broker_id);
}

void MockCluster::push_request_errors(ApiKey api, const std::vector<int>& errors) {
  std::vector<rd_kafka_resp_err_t> errs;
  errs.reserve(errors.size());
  for (int e : errors) {
    errs.push_back(static_cast<rd_kafka_resp_err_t>(e));
  }
  rd_kafka_mock_push_request_errors_array(handles_->mcluster, static_cast<int16_t>(api),
                                          errs.size(), errs.data());
}

result<void> MockCluster::push_broker_request_error_rtts(
    int32_t broker_id, ApiKey api, const std::vector<std::pair<int, int>>& error_rtts) {
  // librdkafka 2.0.2 has only a variadic form: push one entry at a time
  // (each call appends to the broker's FIFO error stack).
  for (const auto& [err, rtt] : error_rtts) {
    auto r = check(rd_kafka_mock_broker_push_request_error_rtts(
                       handles_->mcluster, broker_id, static_cast<int16_t>(api), 1,
                       static_cast<rd_kafka_resp_err_t>(err), rtt),
                   "push request error", broker_id);
    if (!r) {
      return r;
    }
  }
  return {};
}

void MockCluster::clear_request_errors(ApiKey api) {
  rd_kafka_mock_clear_request_errors(handles_->mcluster, static_cast<int16_t>(api));
}

}  // namespace pushgw::bus
