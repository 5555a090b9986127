-- luashm for LuaRocks users: `luarocks --lua-version 5.4 make scripts/luashm-scm-1.rockspec`
-- from the top of a checkout builds with CMake and installs the module (require "luashm") and
-- the luashm host into the rock tree.
rockspec_format = "3.0"
package = "luashm"
version = "scm-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "Parallel data jobs in Lua 5.4 over named shared memory",
  detailed = [[
Named POSIX shared-memory blocks, NumPy-compatible typed arrays, a CPython-compatible
ShareableList, a manager and a tracker that unlink what was created, robust locks, barriers,
channels that pass blocks by name, workers, and the luashm host with its REPL.]],
}
supported_platforms = { "linux" }
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CMAKE_INSTALL_BINDIR = "$(BINDIR)",
    LUASHM_LUA_CMOD_DIR = "$(LIBDIR)",
    LUASHM_INSTALL_DEV = "OFF",
    LUASHM_WERROR = "OFF", -- a user's newer compiler may warn where ours does not
  },
}
