-- Install and packaging (API.md "Embedding", issue 11): only luashm symbols are exported;
-- `cmake --install` into a temporary prefix gives a working host, a module that stock lua5.4
-- requires with only the installed paths, and a header, library and luashm.pc that compile
-- and run the embedding example; the rockspec builds with Debian's luarocks when it is there.
local lu = require "luaunit"
local H = require "helper"

local q = H.shell_quote
local build = H.host:match("^(.*)/[^/]+$")

-- A variable of the build's CMake cache ("" when absent).
local function cache(var)
  local f = assert(io.open(build .. "/CMakeCache.txt"))
  local text = f:read("a")
  f:close()
  return text:match("\n" .. var .. ":[%w_]+=([^\n]*)") or ""
end

local sanitize = cache("LUASHM_SANITIZE") == "ON"
local libdir = cache("CMAKE_INSTALL_LIBDIR")
local cmoddir = cache("LUASHM_LUA_CMOD_DIR")

-- Runs a shell command; fails the test with its output unless it exits 0.
local function run(cmd)
  local out, ok = H.sh("(" .. cmd .. ") 2>&1")
  lu.assertTrue(ok, "command failed: " .. cmd .. "\n" .. out)
  return out
end

local function exists(path)
  local _, ok = H.sh("test -e " .. q(path))
  return ok == true
end

-- Under the sanitizer build, uninstrumented programs (lua5.4) need the ASan runtime first and C
-- programs built here are instrumented like the library they link.
local preload, cflags = "", ""
if sanitize then
  local function rt(lib) return (H.sh("gcc -print-file-name=" .. lib):gsub("%s+$", "")) end
  preload = "LD_PRELOAD=" .. q(rt("libasan.so") .. " " .. rt("libubsan.so")) .. " "
  cflags = "-fsanitize=address,undefined"
end

TestInstall = {}

function TestInstall.setupClass()
  TestInstall.prefix = run("mktemp -d /tmp/luashm-install.XXXXXX"):gsub("%s+$", "")
  run("cmake --install " .. q(build) .. " --prefix " .. q(TestInstall.prefix))
end

function TestInstall.teardownClass()
  if TestInstall.prefix then run("rm -rf " .. q(TestInstall.prefix) .. " " .. q(TestInstall.prefix .. ".moved")) end
end

local function foreign_symbols(lib)
  local bad, n = {}, 0
  for sym in run("nm -D --defined-only " .. q(lib)):gmatch("%x+ %a ([^\n]+)") do
    n = n + 1
    if not (sym:match("^luashm_") or sym == "luaopen_luashm") then bad[#bad + 1] = sym end
  end
  return bad, n
end

function TestInstall:test_only_luashm_symbols_are_exported()
  for _, lib in ipairs { build .. "/libluashm.so", build .. "/luashm.so" } do
    local bad, n = foreign_symbols(lib)
    lu.assertEquals(bad, {}, lib .. " exports symbols without the luashm prefix")
    lu.assertTrue(n >= 10, lib .. " exports only " .. n .. " symbols")
  end
  -- The MPI module (built when an MPI is found) exports its loader alone.
  local mpi = build .. "/luashm_mpi.so"
  if exists(mpi) then
    lu.assertEquals(run("nm -D --defined-only " .. q(mpi) .. " | cut -d' ' -f3"), "luaopen_luashm_mpi\n")
  end
  lu.assertStrContains(run("nm -D --defined-only " .. q(build .. "/libluashm.so")), " T luashm_mem_create\n")
end

function TestInstall:test_install_tree()
  local p = self.prefix
  for _, f in ipairs { "bin/luashm", cmoddir .. "/luashm.so", "include/luashm.h",
                       libdir .. "/libluashm.so", libdir .. "/pkgconfig/luashm.pc" } do
    lu.assertTrue(exists(p .. "/" .. f), f .. " is not installed")
  end
  lu.assertEquals(cmoddir, libdir .. "/lua/5.4")
  run("test -x " .. q(p .. "/bin/luashm"))
  if exists(build .. "/luashm_mpi.so") then
    lu.assertTrue(exists(p .. "/" .. cmoddir .. "/luashm_mpi.so"), "luashm_mpi.so is not installed")
  end
  run("test -f " .. q(p .. "/share/man/man1/luashm.1"))
  lu.assertStrContains(run("head -3 " .. q(p .. "/share/man/man1/luashm.1")), ".TH LUASHM 1")
end

function TestInstall:test_installed_host_runs()
  lu.assertEquals(run(q(self.prefix .. "/bin/luashm") .. " -e 'print(shm.version)'"), "0.1.0\n")
end

function TestInstall:test_stock_lua_requires_with_only_installed_paths()
  local p = self.prefix
  local code = [[
    local shm = require "luashm"
    local b <close> = shm.create(16)
    b:write(0, "installed")
    print(package.searchpath("luashm", package.cpath), b:read(0, 9))
    b:unlink()
  ]]
  local out = run(preload .. "LUA_INIT= LUA_CPATH=" .. q(p .. "/" .. cmoddir .. "/?.so") ..
                  " LUA_PATH=" .. q(p .. "/share/lua/5.4/?.lua") .. " lua5.4 -e " .. q(code))
  lu.assertEquals(out, p .. "/" .. cmoddir .. "/luashm.so\tinstalled\n")
end

function TestInstall:test_pkg_config_compiles_and_runs_the_example()
  local p = self.prefix
  local pc = "PKG_CONFIG_PATH=" .. q(p .. "/" .. libdir .. "/pkgconfig") .. " pkg-config "
  lu.assertEquals(run(pc .. "--modversion luashm"), "0.1.0\n")
  local exe = p .. "/embed_example"
  run("cc " .. cflags .. " -o " .. q(exe) .. " " .. q(H.top .. "/tests/embed_example.c") ..
      " $(" .. pc .. "--cflags --libs luashm)")
  local env = "LD_LIBRARY_PATH=" .. q(p .. "/" .. libdir) .. " "
  lu.assertStrContains(run(env .. "ldd " .. q(exe)), p .. "/" .. libdir .. "/libluashm.so.0")
  local out = run(env .. q(exe) .. " " .. q(H.top .. "/tests/embed_example.lua") .. " 20000 2")
  lu.assertStrMatches(out, "luashm_%x+: 20000 f64 filled by 2 workers, sum 100005000%.0 " ..
                      "%(the script says 100005000%.0%), ok\n")
end

function TestInstall:test_pc_file_is_relocatable()
  local moved = self.prefix .. ".moved"
  run("cp -a " .. q(self.prefix) .. " " .. q(moved))
  local pc = "PKG_CONFIG_PATH=" .. q(moved .. "/" .. libdir .. "/pkgconfig") .. " pkg-config "
  local flags = run(pc .. "--cflags --libs luashm")
  lu.assertStrContains(flags, "-I" .. moved .. "/" .. libdir .. "/pkgconfig/")
  lu.assertStrContains(flags, "-lluashm")
  lu.assertStrContains(flags, "-llua5.4")
  run("test -f " .. q(run(pc .. "--variable=includedir luashm"):gsub("%s+$", "") .. "/luashm.h"))
end

function TestInstall:test_luarocks_make()
  local _, has = H.sh("command -v luarocks >/dev/null")
  lu.skipIf(not has, "luarocks is not installed (apt-get install luarocks)")
  -- The rock is a release build of its own, with luarocks' flags: a sanitizer run of this
  -- suite would build and test exactly what the release run does, at twice the time.
  lu.skipIf(sanitize, "the rock is an unsanitized build of its own; the release run tests it")
  local tmp = run("mktemp -d /tmp/luashm-rock.XXXXXX"):gsub("%s+$", "")
  local ok, err = pcall(function()
    local src = q(tmp .. "/src")
    run("mkdir " .. src .. " && cd " .. q(H.top) ..
        " && cp -r CMakeLists.txt bindings host scripts tests " .. src)
    run("cd " .. src .. " && CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) luarocks --lua-version 5.4 --tree " .. q(tmp .. "/tree") ..
        " make scripts/luashm-scm-1.rockspec")
    local out = run(preload .. "LUA_INIT= LUA_CPATH=" .. q(tmp .. "/tree/lib/lua/5.4/?.so") ..
                    " LUA_PATH= lua5.4 -e 'print(require(\"luashm\").version)'")
    lu.assertEquals(out, "0.1.0\n")
    lu.assertEquals(run(q(tmp .. "/tree/bin/luashm") .. " -e 'print(shm.version)'"), "0.1.0\n")
  end)
  run("rm -rf " .. q(tmp))
  if not ok then error(err, 0) end
end

os.exit(lu.LuaUnit.run())
