#pragma once
// loadgen worker process: holds a range of simulated devices and reports to
// the coordinator as JSON lines on stdout (see README.md "Control protocol").
#include <cstdint>
#include <string>
#include <vector>

namespace pushgw::loadgen {

struct WorkerOptions {
  uint32_t index = 0;
  uint32_t first = 0;   // first global device index
  uint32_t count = 0;   // devices of this worker
  std::string device_prefix = "lg-";
  std::string source;   // local address to bind ("" = the OS chooses)
  std::string api_host = "127.0.0.1";
  std::string api_port = "8080";
  std::string app_id;
  std::string device_secret;
  std::vector<std::string> transports{"tcp"};
  uint32_t inflight = 64;        // link setups in flight
  uint32_t heartbeat_s = 0;      // 0: Welcome.heartbeat_s
  bool heartbeat_random = false; // random intervals in [hb/2, hb], random first ping
  uint32_t connect_timeout_s = 30;
  uint32_t attempts = 5;         // dispatch+connect attempts per device
};

/// Device id of global index `i`.
std::string device_id(const std::string& prefix, uint32_t i);

/// Runs the worker until "stop" or EOF on stdin; returns the exit code.
int run_worker(const WorkerOptions& o);

}  // namespace pushgw::loadgen
