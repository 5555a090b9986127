-- luashm for LuaRocks users. The version is CMake's project(VERSION) (tests/test_install.lua
-- checks that they agree). From a release tarball, made from a checkout with
--
--   git archive --prefix=luashm-0.2.0/ -o luashm-0.2.0.tar.gz v0.2.0
--
-- `luarocks --lua-version 5.4 build luashm-0.2.0-1.rockspec` beside the tarball (or the
-- .src.rock that `luarocks pack` makes of both) builds with CMake and installs the module
-- (require "luashm") and the luashm host into the rock tree. From a checkout,
-- `luarocks --lua-version 5.4 make scripts/luashm-0.2.0-1.rockspec` builds that tree instead.
rockspec_format = "3.0"
package = "luashm"
version = "0.2.0-1"
source = {
  url = "luashm-0.2.0.tar.gz",
  dir = "luashm-0.2.0",
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
    LUASHM_INSTALL_DEV = "OFF", -- a rock tree is for Lua modules and commands
    LUASHM_INSTALL_PYTHON = "OFF",
    LUASHM_WERROR = "OFF", -- a user's newer compiler may warn where ours does not
  },
}
