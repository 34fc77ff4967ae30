# All dependencies come from Debian packages (see .ci/run for the list).
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED COMPONENTS json url system)
find_package(OpenSSL REQUIRED)
find_package(Protobuf REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(prometheus-cpp REQUIRED)
find_package(RocksDB REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)
# jemalloc for the routers, the dev broker and their benches: their many
# short-lived allocations (records, replies, protobufs) cost less CPU than
# with glibc malloc (bench_online_router, interleaved runs on this box:
# median ~94k -> ~106k msg/s, ~15% less CPU). Not with sanitizers (they bring
# their own allocator); not for push-api (no difference measured) nor
# conn-node (its memory per idle link is measured and tuned against glibc).
option(PUSHGW_JEMALLOC "Link the routers, the dev broker and their benches with jemalloc" ON)
if(PUSHGW_JEMALLOC AND PUSHGW_SANITIZE STREQUAL "")
  pkg_check_modules(JEMALLOC REQUIRED IMPORTED_TARGET jemalloc)
endif()
function(pushgw_use_jemalloc target)
  if(TARGET PkgConfig::JEMALLOC)
    # --no-as-needed: nothing calls jemalloc by name; it replaces malloc.
    target_link_libraries(${target} PRIVATE -Wl,--no-as-needed PkgConfig::JEMALLOC -Wl,--as-needed)
  endif()
endfunction()
find_package(CLI11 QUIET)
if(NOT CLI11_FOUND)
  # Debian's libcli11-dev ships the header only.
  find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE ${CLI11_INCLUDE_DIR})
endif()
if(PUSHGW_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(PUSHGW_BUILD_BENCH)
  find_package(benchmark QUIET)
endif()
