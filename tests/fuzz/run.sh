#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + fuzzer) and runs each
# for a short time. Usage: tests/fuzz/run.sh [seconds per target, default 30]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
out=build/fuzz
mkdir -p "$out/gen/proto" "$out/corpus/frame_decoder"
protoc --cpp_out="$out/gen/proto" -I proto proto/pushgw.proto
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I "$out/gen" -I "$out/gen/proto" -I conn-node/include -I common/include)
clang++ "${flags[@]}" tests/fuzz/frame_decoder_fuzz.cc conn-node/src/frame_codec.cc \
  "$out/gen/proto/pushgw.pb.cc" -lprotobuf -lpthread -o "$out/frame_decoder_fuzz"
# Seed: a valid Ping frame and a valid Hello frame.
printf '\x01\x00\x00\x00\x04\x1a\x02\x08\x07' > "$out/corpus/frame_decoder/ping"
printf '\x05\x00\x00\x00\x0b\x0a\x09\x08\x01\x12\x01a\x1a\x01d' > "$out/corpus/frame_decoder/hello"
"$out/frame_decoder_fuzz" -max_total_time="$secs" -max_len=8192 -timeout=5 \
  "$out/corpus/frame_decoder" 2>&1 | tail -5
echo "fuzz: frame_decoder ran ${secs}s without a crash"
