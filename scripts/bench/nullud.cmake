# bench_null.so (scripts/bench/nullud.c): the empty-userdata floor the Array benchmarks compare
# against. Built into the build directory, which scripts/bench/run.sh puts on LUA_CPATH.
add_library(bench_null MODULE ${CMAKE_SOURCE_DIR}/scripts/bench/nullud.c)
set_target_properties(bench_null PROPERTIES PREFIX "" OUTPUT_NAME bench_null
                      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_include_directories(bench_null PRIVATE ${LUA_INCLUDE_DIRS})
