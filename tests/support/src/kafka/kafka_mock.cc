#include "testsupport/kafka_mock.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <array>
#include <stdexcept>

namespace pushgw::testsupport {
namespace {

std::string sanitize(std::string_view in) {
  std::string out;
  for (char c : in) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  return out;
}

struct Handle {
  rd_kafka_t* rk = nullptr;
  ~Handle() {
    if (rk != nullptr) {
      rd_kafka_destroy(rk);
    }
  }
};

struct PartitionList {
  rd_kafka_topic_partition_list_t* list;
  ~PartitionList() { rd_kafka_topic_partition_list_destroy(list); }
};

rd_kafka_t* new_handle(rd_kafka_type_t type, const std::string& bootstrap,
                       const std::string& group) {
  std::array<char, 512> err{};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const char* k, const std::string& v) {
    if (rd_kafka_conf_set(conf, k, v.c_str(), err.data(), err.size()) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(std::string("KafkaMock: ") + err.data());
    }
  };
  set("bootstrap.servers", bootstrap);
  set("log_level", "4");
  if (!group.empty()) {
    set("group.id", group);
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err.data(), err.size());
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("KafkaMock: ") + err.data());
  }
  return rk;
}

}  // namespace

KafkaMock::KafkaMock(int brokers) {
  auto c = bus::MockCluster::start(brokers);
  if (!c) {
    throw std::runtime_error("KafkaMock: cannot start mock cluster: " + c.error().message());
  }
  cluster_ = std::move(*c);
}

KafkaMock::~KafkaMock() = default;

std::string KafkaMock::unique_name(std::string_view prefix) {
  std::string test = "notest";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    test = sanitize(info->test_suite_name()) + "." + sanitize(info->name());
  }
  std::string name = std::string(prefix) + "." + test + "." + std::to_string(::getpid()) + "." +
                     std::to_string(++counter_);
  if (name.size() > 200) {
    name = name.substr(name.size() - 200);
  }
  return name;
}

std::string KafkaMock::create_topic(int partitions, std::string_view prefix) {
  std::string name = unique_name(prefix);
  auto r = cluster_->create_topic(name, partitions);
  if (!r) {
    throw std::runtime_error("KafkaMock: cannot create topic " + name + ": " + r.error().message());
  }
  return name;
}

void KafkaMock::set_broker_down(int32_t broker_id) {
  if (!cluster_->set_broker_down(broker_id)) {
    throw std::runtime_error("KafkaMock: set_broker_down failed");
  }
}

void KafkaMock::set_broker_up(int32_t broker_id) {
  if (!cluster_->set_broker_up(broker_id)) {
    throw std::runtime_error("KafkaMock: set_broker_up failed");
  }
}

bus::ProducerConfig KafkaMock::producer_config(std::string client_id) const {
  bus::ProducerConfig cfg;
  cfg.kafka.bootstrap_servers = bootstrap_servers();
  cfg.kafka.client_id = std::move(client_id);
  cfg.kafka.properties = {{"topic.metadata.refresh.interval.ms", "500"},
                          {"reconnect.backoff.ms", "50"},
                          {"reconnect.backoff.max.ms", "500"}};
  cfg.message_timeout = std::chrono::seconds(10);
  cfg.linger = std::chrono::milliseconds(1);
  return cfg;
}

bus::ConsumerConfig KafkaMock::consumer_config(std::string group_id, std::string client_id) const {
  bus::ConsumerConfig cfg;
  cfg.kafka.bootstrap_servers = bootstrap_servers();
  cfg.kafka.client_id = std::move(client_id);
  cfg.kafka.properties = {{"topic.metadata.refresh.interval.ms", "500"},
                          {"fetch.wait.max.ms", "50"},
                          {"reconnect.backoff.ms", "50"},
                          {"reconnect.backoff.max.ms", "500"}};
  cfg.group_id = std::move(group_id);
  cfg.session_timeout = std::chrono::milliseconds(3000);
  cfg.heartbeat_interval = std::chrono::milliseconds(500);
  cfg.max_poll_interval = std::chrono::milliseconds(10000);
  cfg.auto_commit_interval = std::chrono::milliseconds(200);
  return cfg;
}

std::map<int32_t, int64_t> KafkaMock::committed(const std::string& group, const std::string& topic,
                                                int partitions, std::chrono::milliseconds timeout) {
  Handle h{new_handle(RD_KAFKA_CONSUMER, bootstrap_servers(), group)};
  PartitionList parts{rd_kafka_topic_partition_list_new(partitions)};
  for (int32_t p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(parts.list, topic.c_str(), p);
  }
  rd_kafka_resp_err_t err = rd_kafka_committed(h.rk, parts.list, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error(std::string("KafkaMock: rd_kafka_committed: ") +
                             rd_kafka_err2str(err));
  }
  std::map<int32_t, int64_t> out;
  for (int i = 0; i < parts.list->cnt; ++i) {
    out[parts.list->elems[i].partition] = parts.list->elems[i].offset;
  }
  rd_kafka_consumer_close(h.rk);
  return out;
}

std::vector<bus::Record> KafkaMock::read(const std::string& topic, int partitions,
                                         std::size_t count, std::chrono::milliseconds timeout) {
  Handle h{new_handle(RD_KAFKA_CONSUMER, bootstrap_servers(), unique_name("reader"))};
  PartitionList parts{rd_kafka_topic_partition_list_new(partitions)};
  for (int32_t p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(parts.list, topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  if (rd_kafka_assign(h.rk, parts.list) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("KafkaMock: assign failed");
  }
  std::vector<bus::Record> out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(h.rk, 100);
    if (m == nullptr) {
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      bus::Record r;
      r.topic = rd_kafka_topic_name(m->rkt);
      r.partition = m->partition;
      r.offset = m->offset;
      if (m->key != nullptr) {
        r.key.assign(static_cast<const char*>(m->key), m->key_len);
      }
      if (m->payload != nullptr) {
        r.value.assign(static_cast<const char*>(m->payload), m->len);
      }
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0;
             rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          r.headers.push_back(
              {name, value ? std::string(static_cast<const char*>(value), size) : std::string()});
        }
      }
      out.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(h.rk);
  return out;
}

int64_t KafkaMock::high_watermark(const std::string& topic, int32_t partition,
                                  std::chrono::milliseconds timeout) {
  Handle h{new_handle(RD_KAFKA_PRODUCER, bootstrap_servers(), "")};
  int64_t low = 0;
  int64_t high = 0;
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
      h.rk, topic.c_str(), partition, &low, &high, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error(std::string("KafkaMock: query watermarks: ") + rd_kafka_err2str(err));
  }
  return high;
}

}  // namespace pushgw::testsupport
