// ensure_topics(): metadata first (existing topics need nothing), then the
// Admin API's CreateTopics for the missing ones, then (optionally) broker
// auto-creation through a metadata request when no controller answers
// CreateTopics, which is the case of librdkafka 2.0.2's mock cluster.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <thread>

#include "common/bus/kafka.h"
#include "rdkafka_util.h"

namespace pushgw::bus {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(1, left.count()));
}

// Partition counts of every topic the cluster knows.
result<std::map<std::string, int>> list_topics(rd_kafka_t* rk, Clock::time_point deadline) {
  const rd_kafka_metadata_t* raw = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &raw, remaining_ms(deadline));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::warn("kafka ensure_topics: metadata request failed: {}", rd_kafka_err2str(err));
    return detail::to_error_code(err);
  }
  detail::MetadataPtr md(raw);
  std::map<std::string, int> out;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& t = md->topics[i];
    if (t.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      out[t.topic] = t.partition_cnt;
    }
  }
  return out;
}

// Metadata for one topic; brokers that allow it auto-create the topic.
result<int> auto_create(rd_kafka_t* rk, const std::string& name, Clock::time_point deadline) {
  detail::TopicPtr topic(rd_kafka_topic_new(rk, name.c_str(), nullptr));
  if (!topic) {
    return errc::invalid_argument;
  }
  // The first answer may still say "leader not available" while the broker
  // creates the topic: ask again until the deadline.
  for (;;) {
    const rd_kafka_metadata_t* raw = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, topic.get(), &raw, remaining_ms(deadline));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return detail::to_error_code(err);
    }
    detail::MetadataPtr md(raw);
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topics[0].partition_cnt > 0) {
      return md->topics[0].partition_cnt;
    }
    rd_kafka_resp_err_t terr =
        md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (Clock::now() >= deadline) {
      spdlog::error("kafka ensure_topics: broker did not auto-create {}: {}", name,
                    rd_kafka_err2str(terr));
      return errc::rejected;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

result<std::vector<TopicInfo>> ensure_topics(const KafkaConfig& cfg, std::vector<TopicSpec> topics,
                                             EnsureTopicsOptions options) {
  for (const auto& t : topics) {
    if (t.name.empty() || t.partitions < 1 || t.replication_factor == 0 ||
        t.replication_factor < -1) {
      spdlog::error("kafka ensure_topics: bad topic spec \"{}\" partitions={} replication={}",
                    t.name, t.partitions, t.replication_factor);
      return errc::invalid_argument;
    }
  }
  if (cfg.bootstrap_servers.empty()) {
    throw ConfigError("kafka bootstrap_servers: must not be empty");
  }
  Properties props{{"bootstrap.servers", cfg.bootstrap_servers},
                   {"client.id", cfg.client_id.empty() ? "pushgw-admin" : cfg.client_id}};
  for (const auto& [k, v] : cfg.properties) {
    props.emplace_back(k, v);
  }
  auto rk = detail::make_handle(RD_KAFKA_PRODUCER, detail::make_conf(props));
  const auto deadline = Clock::now() + options.timeout;

  auto existing = list_topics(rk.get(), deadline);
  if (!existing) {
    return existing.error();
  }
  std::vector<TopicInfo> out(topics.size());
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < topics.size(); ++i) {
    out[i].name = topics[i].name;
    auto it = existing->find(topics[i].name);
    if (it == existing->end()) {
      missing.push_back(i);
      continue;
    }
    out[i].partitions = it->second;
    if (it->second < topics[i].partitions) {
      spdlog::warn("kafka ensure_topics: topic {} has {} partitions, {} wanted; left as it is",
                   topics[i].name, it->second, topics[i].partitions);
    }
  }
  if (missing.empty()) {
    return out;
  }

  std::array<char, 512> errstr{};
  std::vector<rd_kafka_NewTopic_t*> new_topics;
  for (std::size_t i : missing) {
    new_topics.push_back(rd_kafka_NewTopic_new(topics[i].name.c_str(), topics[i].partitions,
                                               topics[i].replication_factor, errstr.data(),
                                               errstr.size()));
    if (new_topics.back() == nullptr) {
      spdlog::error("kafka ensure_topics: topic {}: {}", topics[i].name, errstr.data());
      new_topics.pop_back();
      rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());
      return errc::invalid_argument;
    }
  }
  // With the fallback on, keep half of the budget for it.
  const auto create_deadline =
      options.auto_create_fallback ? Clock::now() + (deadline - Clock::now()) / 2 : deadline;
  const int create_ms = remaining_ms(create_deadline);
  rd_kafka_AdminOptions_t* opts =
      rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(opts, create_ms, errstr.data(), errstr.size());
  rd_kafka_AdminOptions_set_operation_timeout(opts, create_ms, errstr.data(), errstr.size());
  detail::QueuePtr queue(rd_kafka_queue_new(rk.get()));
  rd_kafka_CreateTopics(rk.get(), new_topics.data(), new_topics.size(), opts, queue.get());
  rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());
  rd_kafka_AdminOptions_destroy(opts);
  detail::EventPtr ev(rd_kafka_queue_poll(queue.get(), create_ms + 1'000));

  if (!ev) {
    spdlog::warn("kafka ensure_topics: no CreateTopics answer in {} ms", create_ms);
  } else if (rd_kafka_event_error(ev.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::warn("kafka ensure_topics: CreateTopics failed: {}",
                 rd_kafka_event_error_string(ev.get()));
  } else {
    const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev.get());
    size_t n = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t r = 0; r < n; ++r) {
      std::string name = rd_kafka_topic_result_name(results[r]);
      rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[r]);
      auto idx = std::find_if(missing.begin(), missing.end(),
                              [&](std::size_t i) { return topics[i].name == name; });
      if (idx == missing.end()) {
        continue;
      }
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        out[*idx].partitions = topics[*idx].partitions;
        out[*idx].created = true;
        spdlog::info("kafka ensure_topics: created {} with {} partitions", name,
                     topics[*idx].partitions);
      } else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* why = rd_kafka_topic_result_error_string(results[r]);
        spdlog::error("kafka ensure_topics: creating {} failed: {}", name,
                      why ? why : rd_kafka_err2str(err));
        return errc::rejected;
      }
    }
    // Topics created concurrently by someone else: read their real size.
    bool need_counts = std::any_of(missing.begin(), missing.end(),
                                   [&](std::size_t i) { return out[i].partitions == 0; });
    if (need_counts) {
      auto now_existing = list_topics(rk.get(), deadline);
      if (!now_existing) {
        return now_existing.error();
      }
      for (std::size_t i : missing) {
        if (out[i].partitions == 0) {
          auto it = now_existing->find(out[i].name);
          out[i].partitions = it == now_existing->end() ? topics[i].partitions : it->second;
        }
      }
    }
    return out;
  }

  if (!options.auto_create_fallback) {
    return errc::timeout;
  }
  for (std::size_t i : missing) {
    auto parts = auto_create(rk.get(), topics[i].name, deadline);
    if (!parts) {
      return parts.error();
    }
    out[i].partitions = *parts;
    out[i].created = true;
    spdlog::info("kafka ensure_topics: {} auto-created by the broker with {} partitions ({} asked)",
                 topics[i].name, *parts, topics[i].partitions);
  }
  return out;
}

}  // namespace pushgw::bus
