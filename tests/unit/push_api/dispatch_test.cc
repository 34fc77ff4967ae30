// Dispatch ranking: live non-draining nodes, least loaded first, device hash on ties.
#include "push_api/dispatch.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace pushgw::push_api {
namespace {

using status_store::NodeInfo;

NodeInfo node(std::string id, uint64_t connections, bool draining = false) {
  NodeInfo n;
  n.node_id = std::move(id);
  n.endpoints.tcp = n.node_id + ":7000";
  n.connections = connections;
  n.draining = draining;
  return n;
}

std::vector<std::string> ids(const std::vector<NodeInfo>& nodes) {
  std::vector<std::string> out;
  for (const auto& n : nodes) out.push_back(n.node_id);
  return out;
}

TEST(Dispatch, LeastLoadedFirstWithoutDrainingOrEndpointlessNodes) {
  NodeInfo silent = node("silent", 0);
  silent.endpoints = {};
  const auto ranked = rank_nodes(
      {node("c", 30), node("a", 10), node("d", 0, true), node("b", 20), silent}, "app", "dev", 10);
  EXPECT_EQ(ids(ranked), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ids(rank_nodes({node("c", 30), node("a", 10), node("b", 20)}, "app", "dev", 2)),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(rank_nodes({}, "app", "dev", 5).empty());
  EXPECT_TRUE(rank_nodes({node("x", 0, true)}, "app", "dev", 5).empty());
}

TEST(Dispatch, TiesAreStablePerDeviceAndSpreadAcrossDevices) {
  const std::vector<NodeInfo> nodes{node("n1", 5), node("n2", 5), node("n3", 5), node("n4", 9)};
  const auto once = ids(rank_nodes(nodes, "app", "device-42", 4));
  EXPECT_EQ(ids(rank_nodes(nodes, "app", "device-42", 4)), once);
  EXPECT_EQ(once.back(), "n4");
  // Input order does not matter.
  const std::vector<NodeInfo> reversed(nodes.rbegin(), nodes.rend());
  EXPECT_EQ(ids(rank_nodes(reversed, "app", "device-42", 4)), once);

  std::map<std::string, int> first;
  for (int i = 0; i < 3000; ++i) {
    ++first[rank_nodes(nodes, "app", "d" + std::to_string(i), 1).front().node_id];
  }
  ASSERT_EQ(first.size(), 3u);
  for (const auto& [id, n] : first) {
    EXPECT_GT(n, 800) << id;
    EXPECT_LT(n, 1200) << id;
  }
  // Another app's device of the same id may rank differently: weights include the app.
  EXPECT_NE(dispatch_weight("a1", "d", "n1"), dispatch_weight("a2", "d", "n1"));
}

}  // namespace
}  // namespace pushgw::push_api
