// libFuzzer target for the device-protocol frame decoder: any byte stream fed
// in any split must decode to frames or a clean error, never crash or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "conn_node/frame_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using pushgw::conn_node::FrameReader;
  if (size == 0) return 0;
  // First byte picks the split size so chunked reads are explored too.
  const size_t chunk = 1 + data[0] % 64;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  FrameReader reader(4096);
  pushgw::v1::Frame frame;
  for (size_t at = 0; at < in.size(); at += chunk) {
    reader.feed(in.substr(at, chunk));
    for (;;) {
      auto st = reader.next(frame);
      if (st == FrameReader::Status::kFrame) {
        (void)pushgw::conn_node::is_client_frame(frame);
        if (frame.has_hello()) (void)pushgw::conn_node::valid_id(frame.hello().device_id());
        continue;
      }
      if (st == FrameReader::Status::kError) return 0;
      break;
    }
  }
  return 0;
}
