# libFuzzer targets: every tests/fuzz/fuzz_*.c becomes an executable linked with the core,
# built only with -DLUASHM_FUZZ=ON and clang (scripts/fuzz.sh).
if(LUASHM_FUZZ)
  file(GLOB LUASHM_FUZZERS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
  foreach(src ${LUASHM_FUZZERS})
    get_filename_component(fname ${src} NAME_WE)
    add_executable(${fname} ${src})
    target_link_libraries(${fname} PRIVATE luashm_core PkgConfig::LUA)
    target_link_options(${fname} PRIVATE -fsanitize=fuzzer)
  endforeach()
endif()
