# Install rules: the luashm host and its man page luashm(1), the module on Lua 5.4's C path and
# the man page of its API luashm(3), luashm.py on Python's path, and, for programs that embed
# luashm, libluashm.so (the same core objects), luashm.h and luashm.pc.
include(GNUInstallDirs)

# libluashm.so: what `pkg-config --libs luashm` links. Unlike luashm.so it links liblua, since an
# embedding program brings no interpreter of its own to resolve lua_* against.
add_library(luashm_shared SHARED)
target_link_libraries(luashm_shared PRIVATE luashm_core PUBLIC PkgConfig::LUA)
set_target_properties(luashm_shared PROPERTIES OUTPUT_NAME luashm VERSION ${PROJECT_VERSION}
                      SOVERSION ${PROJECT_VERSION_MAJOR})
target_include_directories(luashm_shared INTERFACE ${CMAKE_SOURCE_DIR}/host)

# Debian's lua5.4 looks in /usr/local/lib/lua/5.4 and /usr/lib/<multiarch>/lua/5.4 (its
# INSTALL_CMOD): LIBDIR/lua/5.4 is both, for the prefixes /usr/local and /usr.
set(LUASHM_LUA_CMOD_DIR "${CMAKE_INSTALL_LIBDIR}/lua/5.4" CACHE STRING
    "Where luashm.so is installed (relative to the prefix, or absolute)")

# The rockspec turns this off: a rock tree is for Lua modules and commands.
option(LUASHM_INSTALL_DEV "Install libluashm.so, luashm.h and luashm.pc (for embedding)" ON)

install(TARGETS luashm RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS luashm_module LIBRARY DESTINATION ${LUASHM_LUA_CMOD_DIR})
if(TARGET luashm_mpi)
  install(TARGETS luashm_mpi LIBRARY DESTINATION ${LUASHM_LUA_CMOD_DIR})
endif()
if(LUASHM_INSTALL_DEV)
  install(TARGETS luashm_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(FILES ${CMAKE_SOURCE_DIR}/host/luashm.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  file(RELATIVE_PATH LUASHM_PC_TO_PREFIX
       ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
  string(REGEX REPLACE "/$" "" LUASHM_PC_TO_PREFIX "${LUASHM_PC_TO_PREFIX}")
  configure_file(${CMAKE_SOURCE_DIR}/host/luashm.pc.in ${CMAKE_BINARY_DIR}/luashm.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/luashm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()

# The man pages: the host's, and the Lua API's (generated from scripts/lib/reference.lua).
install(FILES ${CMAKE_SOURCE_DIR}/host/luashm.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_SOURCE_DIR}/host/luashm.3 DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)

# luashm.py (Python's side of luashm) where Debian's python3 looks: lib/python3/dist-packages
# under /usr, lib/python3.X/dist-packages under any other prefix (/usr/local...).
option(LUASHM_INSTALL_PYTHON "Install luashm.py for Python 3" ON)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(luashm_python_dir "lib/python3/dist-packages")
else()
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_FOUND)
    set(luashm_python_dir
        "lib/python${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}/dist-packages")
  else()
    set(luashm_python_dir "lib/python3/dist-packages")
  endif()
endif()
set(LUASHM_PYTHON_DIR "${luashm_python_dir}" CACHE STRING
    "Where luashm.py is installed (relative to the prefix, or absolute)")
if(LUASHM_INSTALL_PYTHON)
  install(FILES ${CMAKE_SOURCE_DIR}/scripts/luashm.py DESTINATION ${LUASHM_PYTHON_DIR})
endif()

# `cmake --build build --target reference` rewrites the files generated from the reference
# (scripts/lib/reference.lua): scripts/REFERENCE.md and host/luashm.3, with the host just built.
add_custom_target(reference
  COMMAND luashm ${CMAKE_SOURCE_DIR}/scripts/gen_reference.lua
  DEPENDS luashm
  COMMENT "Rendering scripts/REFERENCE.md and host/luashm.3 from scripts/lib/reference.lua"
  VERBATIM)
