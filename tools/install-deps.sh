#!/usr/bin/env bash
# Installs the Debian packages pushgw needs to build, test and run on one box.
# Idempotent: does nothing when everything is already installed.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config ccache git clang
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libprotobuf-dev protobuf-compiler
  librdkafka-dev librocksdb-dev libhiredis-dev
  libspdlog-dev libfmt-dev prometheus-cpp-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libjemalloc-dev
  redis-server redis-tools procps curl openssl python3-yaml
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "pushgw: installing ${#missing[@]} Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "pushgw: packages installed"
