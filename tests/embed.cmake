# C programs that use the embedding API (luashm.h), linked against libluashm.so as an
# embedding program is, and run by ctest. The install test is the LuaUnit suite
# tests/test_install.lua.
foreach(prog embed_api embed_example embed_fork)
  add_executable(${prog} ${CMAKE_SOURCE_DIR}/tests/${prog}.c)
  target_link_libraries(${prog} PRIVATE luashm_shared Threads::Threads)
endforeach()
add_test(NAME embed_api COMMAND embed_api)
add_test(NAME embed_example
         COMMAND embed_example ${CMAKE_SOURCE_DIR}/tests/embed_example.lua 100000 2)
add_test(NAME embed_fork COMMAND embed_fork)
set_tests_properties(embed_api embed_example embed_fork PROPERTIES TIMEOUT 120 LABELS quick)
