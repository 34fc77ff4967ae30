#pragma once
// Internal to pushgw_bus: RAII owners for librdkafka handles, error mapping,
// and the property -> rd_kafka_conf_t builder. Never include from a public
// header.
#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>
#include <vector>

#include "common/bus/config.h"
#include "common/bus/types.h"
#include "common/error.h"

namespace pushgw::bus::detail {

struct KafkaDeleter {
  void operator()(rd_kafka_t* p) const noexcept { rd_kafka_destroy(p); }
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* p) const noexcept { rd_kafka_conf_destroy(p); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* p) const noexcept {
    rd_kafka_topic_partition_list_destroy(p);
  }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* p) const noexcept { rd_kafka_queue_destroy(p); }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* p) const noexcept { rd_kafka_message_destroy(p); }
};
struct ErrorDeleter {
  void operator()(rd_kafka_error_t* p) const noexcept { rd_kafka_error_destroy(p); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* p) const noexcept { rd_kafka_event_destroy(p); }
};
struct TopicDeleter {
  void operator()(rd_kafka_topic_t* p) const noexcept { rd_kafka_topic_destroy(p); }
};
struct HeadersDeleter {
  void operator()(rd_kafka_headers_t* p) const noexcept { rd_kafka_headers_destroy(p); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* p) const noexcept { rd_kafka_metadata_destroy(p); }
};

using KafkaPtr = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;
using HeadersPtr = std::unique_ptr<rd_kafka_headers_t, HeadersDeleter>;
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;

/// Maps a librdkafka error to the pushgw error code callers branch on.
errc to_errc(rd_kafka_resp_err_t err) noexcept;
inline boost::system::error_code to_error_code(rd_kafka_resp_err_t err) noexcept {
  return make_error_code(to_errc(err));
}

/// Builds a conf from properties; throws ConfigError naming the property
/// librdkafka refused. Also routes librdkafka logs to spdlog.
ConfPtr make_conf(const Properties& props);

/// rd_kafka_new() with error text turned into a ConfigError (librdkafka
/// checks property combinations there).
KafkaPtr make_handle(rd_kafka_type_t type, ConfPtr conf);

std::vector<TopicPartition> to_vector(const rd_kafka_topic_partition_list_t* list);

/// librdkafka log callback -> spdlog (syslog levels mapped).
void log_to_spdlog(const rd_kafka_t* rk, int level, const char* fac, const char* buf);

}  // namespace pushgw::bus::detail
