#include "metrics.h"

namespace pushgw::bus::detail {

ProducerMetrics ProducerMetrics::make(prometheus::Registry* registry,
                                      const std::string& client_id) {
  ProducerMetrics m;
  if (registry == nullptr) {
    return m;
  }
  const prometheus::Labels labels{{"client", client_id}};
  m.produced = &prometheus::BuildCounter()
                    .Name("pushgw_bus_produced_total")
                    .Help("Records acknowledged by Kafka (delivery report without error)")
                    .Register(*registry)
                    .Add(labels);
  m.delivery_failures =
      &prometheus::BuildCounter()
           .Name("pushgw_bus_delivery_failures_total")
           .Help("Records that failed to produce (report error or refused locally)")
           .Register(*registry)
           .Add(labels);
  m.in_flight = &prometheus::BuildGauge()
                     .Name("pushgw_bus_produce_in_flight")
                     .Help("Records handed to librdkafka awaiting their delivery report")
                     .Register(*registry)
                     .Add(labels);
  return m;
}

ConsumerMetrics ConsumerMetrics::make(prometheus::Registry* registry, const std::string& client_id,
                                      const std::string& group_id) {
  ConsumerMetrics m;
  if (registry == nullptr) {
    return m;
  }
  m.client_id_ = client_id;
  m.group_id_ = group_id;
  const prometheus::Labels labels{{"client", client_id}, {"group", group_id}};
  m.consumed = &prometheus::BuildCounter()
                    .Name("pushgw_bus_consumed_total")
                    .Help("Records fetched and handed to the buffer of a consumer")
                    .Register(*registry)
                    .Add(labels);
  m.commits = &prometheus::BuildCounter()
                   .Name("pushgw_bus_commits_total")
                   .Help("Offset commits acknowledged by the group coordinator")
                   .Register(*registry)
                   .Add(labels);
  m.commit_failures = &prometheus::BuildCounter()
                           .Name("pushgw_bus_commit_failures_total")
                           .Help("Offset commits that failed")
                           .Register(*registry)
                           .Add(labels);
  m.rebalances = &prometheus::BuildCounter()
                      .Name("pushgw_bus_rebalances_total")
                      .Help("Partition assignments and revocations seen by a consumer")
                      .Register(*registry)
                      .Add(labels);
  m.lag_family_ = &prometheus::BuildGauge()
                       .Name("pushgw_bus_consumer_lag")
                       .Help("High watermark minus next offset to fetch, per owned partition")
                       .Register(*registry);
  return m;
}

void ConsumerMetrics::set_lag(const TopicPartition& tp, int64_t lag) {
  if (lag_family_ == nullptr) {
    return;
  }
  auto it = lag_.find(tp);
  if (it == lag_.end()) {
    auto& g = lag_family_->Add({{"client", client_id_},
                                {"group", group_id_},
                                {"topic", tp.topic},
                                {"partition", std::to_string(tp.partition)}});
    it = lag_.emplace(tp, &g).first;
  }
  it->second->Set(static_cast<double>(lag));
}

void ConsumerMetrics::forget_lag(const TopicPartition& tp) {
  auto it = lag_.find(tp);
  if (it == lag_.end()) {
    return;
  }
  lag_family_->Remove(it->second);
  lag_.erase(it);
}

}  // namespace pushgw::bus::detail
