# Warnings and sanitizers applied to every pushgw target through pushgw_options.
add_library(pushgw_options INTERFACE)
target_compile_options(pushgw_options INTERFACE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
if(PUSHGW_WERROR)
  target_compile_options(pushgw_options INTERFACE -Werror)
endif()
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12 emits false positives in Boost/Asio coroutine code at -O2.
  target_compile_options(pushgw_options INTERFACE -Wno-maybe-uninitialized -Wno-dangling-pointer
                                                  -Wno-array-bounds -Wno-stringop-overflow
                                                  -Wno-mismatched-new-delete)
endif()
if(PUSHGW_SANITIZE)
  target_compile_options(pushgw_options INTERFACE -fsanitize=${PUSHGW_SANITIZE} -fno-omit-frame-pointer
                                                  -fno-sanitize-recover=all)
  target_link_options(pushgw_options INTERFACE -fsanitize=${PUSHGW_SANITIZE})
endif()

# Generated protobuf code is not ours: no -Werror there, but same sanitizer flags.
add_library(pushgw_sanitize INTERFACE)
if(PUSHGW_SANITIZE)
  target_compile_options(pushgw_sanitize INTERFACE -fsanitize=${PUSHGW_SANITIZE} -fno-omit-frame-pointer)
  target_link_options(pushgw_sanitize INTERFACE -fsanitize=${PUSHGW_SANITIZE})
endif()

# pushgw_glob_library(<name> <dir> <link args...>): a static library from every
# *.cc directly in <dir> (relative to the current source dir), except
# asio_impl.cc; ./include is added as a public include dir. An empty folder yields an INTERFACE library so the tree always
# configures while a component is being written.
function(pushgw_glob_library name dir)
  file(GLOB _srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/*.cc)
  list(FILTER _srcs EXCLUDE REGEX "/asio_impl\\.cc$")
  if(_srcs)
    add_library(${name} STATIC ${_srcs})
    target_link_libraries(${name} ${ARGN})
    target_link_libraries(${name} PRIVATE pushgw_options)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/include)
      target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
    endif()
  else()
    add_library(${name} INTERFACE)
    set(_args ${ARGN})
    list(REMOVE_ITEM _args PUBLIC PRIVATE INTERFACE)
    target_link_libraries(${name} INTERFACE ${_args})
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/include)
      target_include_directories(${name} INTERFACE ${CMAKE_CURRENT_SOURCE_DIR}/include)
    endif()
  endif()
endfunction()
