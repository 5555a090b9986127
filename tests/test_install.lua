-- Install and packaging (API.md "Embedding", issues 11 and 21): only luashm symbols are
-- exported; `cmake --install` into a temporary prefix installs exactly the expected files, and
-- each works: the host, a module that stock lua5.4 requires with only the installed paths, a
-- header, library and luashm.pc that compile and run the embedding example, both man pages
-- (found by man under the prefix), and luashm.py (imported from the installed directory, which
-- by default is on Debian's python3 path); one version number everywhere (CMake's); and the
-- versioned rockspec builds from a release tarball (git archive) with Debian's luarocks.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

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
local pydir = cache("LUASHM_PYTHON_DIR")

-- The one version number: CMake's project(VERSION).
local read = H.read
local VERSION = read(H.top .. "/CMakeLists.txt"):match("project%(luashm VERSION ([%d.]+)")

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

function TestInstall:test_install_tree_is_exactly_the_expected_files()
  local p = self.prefix
  lu.assertEquals(cmoddir, libdir .. "/lua/5.4")
  local want = { "bin/luashm", cmoddir .. "/luashm.so", "include/luashm.h",
    libdir .. "/libluashm.so", libdir .. "/libluashm.so.0", libdir .. "/libluashm.so." .. VERSION,
    libdir .. "/pkgconfig/luashm.pc", "share/man/man1/luashm.1", "share/man/man3/luashm.3",
    pydir .. "/luashm.py" }
  if exists(build .. "/luashm_mpi.so") then want[#want + 1] = cmoddir .. "/luashm_mpi.so" end
  table.sort(want)
  local have = {}
  for f in run("cd " .. q(p) .. " && find . ! -type d | sed 's|^./||' | sort"):gmatch("[^\n]+") do
    have[#have + 1] = f
  end
  lu.assertEquals(have, want)
  run("test -x " .. q(p .. "/bin/luashm"))
  -- the installed sources are the tree's own
  for _, f in ipairs({ { "include/luashm.h", "host/luashm.h" }, { pydir .. "/luashm.py", "scripts/luashm.py" },
    { "share/man/man1/luashm.1", "host/luashm.1" }, { "share/man/man3/luashm.3", "host/luashm.3" } }) do
    lu.assertEquals(read(p .. "/" .. f[1]), read(H.top .. "/" .. f[2]), f[1])
  end
end

function TestInstall:test_installed_host_runs_and_has_help()
  lu.assertEquals(run(q(self.prefix .. "/bin/luashm") .. " -e 'print(shm.version)'"), VERSION .. "\n")
  lu.assertStrMatches(run(q(self.prefix .. "/bin/luashm") .. " -e 'shm.help(\"Array:sum\")'"),
    "^a:sum%(%)    %[Arrays%]\n.*")
end

function TestInstall:test_one_version_number()
  lu.assertStrMatches(VERSION, "^%d+%.%d+%.%d+$")
  lu.assertStrMatches(run(q(H.host) .. " -v"), "luashm " .. VERSION:gsub("%.", "%%.") .. " %(Lua 5%.4%.%d+%)\n")
  lu.assertEquals(shm.version, VERSION)
  -- the rockspec: one, named after the version, for a tarball named after it
  local specs = run("cd " .. q(H.top .. "/scripts") .. " && ls *.rockspec")
  lu.assertEquals(specs, ("luashm-%s-1.rockspec\n"):format(VERSION),
    "scripts/ must hold one rockspec, luashm-<CMake's project VERSION>-1.rockspec")
  local spec = read(H.top .. "/scripts/" .. specs:gsub("\n", ""))
  lu.assertEquals(spec:match('\nversion = "([^"]+)"'), VERSION .. "-1")
  lu.assertEquals(spec:match('url = "([^"]+)"'), ("luashm-%s.tar.gz"):format(VERSION))
  lu.assertEquals(spec:match('dir = "([^"]+)"'), "luashm-" .. VERSION)
end

function TestInstall:test_man_finds_both_pages_under_the_prefix()
  local _, has = H.sh("command -v man >/dev/null")
  lu.skipIf(not has, "man is not installed")
  local man = "MANWIDTH=100 MANPATH=" .. q(self.prefix .. "/share/man") .. " man "
  local page1 = run(man .. "1 luashm 2>/dev/null")
  lu.assertStrContains(page1, "luashm - Lua 5.4 host for parallel data jobs")
  lu.assertStrContains(page1, "luashm(3)")
  local page3 = run(man .. "3 luashm 2>/dev/null")
  lu.assertStrContains(page3, "luashm - Lua 5.4 module for parallel data jobs")
  lu.assertStrContains(page3, "shm.create(size [, opts])")
  lu.assertStrContains(page3, "a:sum()")
  for _, sec in ipairs({ "1", "3" }) do
    lu.assertEquals(run(man .. "--warnings " .. sec .. " luashm 2>&1 >/dev/null"), "")
  end
end

function TestInstall:test_installed_luashm_py_opens_a_block_made_by_the_installed_host()
  local p = self.prefix
  local name = run(q(p .. "/bin/luashm") .. " -e " .. q([[
    local a = shm.array("i32", 3, {values = {4, 5, 6}, track = false})
    print(a.name)]])):gsub("%s+$", "")
  local out = run("PYTHONPATH=" .. q(p .. "/" .. pydir) .. " " .. H.python_bin .. " -c " .. q([[
import sys, luashm
print(luashm.__file__)
a = luashm.open(sys.argv[1])
print(a.tolist())
luashm.unlink(sys.argv[1])]]) .. " " .. q(name))
  lu.assertEquals(out, ("%s/%s/luashm.py\n[4, 5, 6]\n"):format(p, pydir))
  lu.assertFalse(H.in_shm(name))
end

function TestInstall:test_the_default_python_dir_is_on_debians_python_path()
  -- As configured here (its prefix), and for the prefix /usr, which a fresh configure gives
  -- its own default.
  local path = run(H.python_bin .. " -c 'import sys; print(\"\\n\".join(sys.path))'")
  local prefix = cache("CMAKE_INSTALL_PREFIX")
  if cache("LUASHM_PYTHON_DIR"):sub(1, 1) ~= "/" then
    lu.assertStrContains("\n" .. path, "\n" .. prefix .. "/" .. pydir .. "\n")
  end
  local tmp = run("mktemp -d /tmp/luashm-configure.XXXXXX"):gsub("%s+$", "")
  local ok, err = pcall(function()
    run("cmake -S " .. q(H.top) .. " -B " .. q(tmp) .. " -DCMAKE_INSTALL_PREFIX=/usr -DLUASHM_MPI=OFF")
    local dir = read(tmp .. "/CMakeCache.txt"):match("\nLUASHM_PYTHON_DIR:STRING=([^\n]*)")
    lu.assertStrContains("\n" .. path, "\n/usr/" .. dir .. "\n")
  end)
  run("rm -rf " .. q(tmp))
  if not ok then error(err, 0) end
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
  lu.assertEquals(run(pc .. "--modversion luashm"), VERSION .. "\n")
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

function TestInstall:test_rockspec_builds_from_a_release_tarball()
  local _, has = H.sh("command -v luarocks >/dev/null")
  lu.skipIf(not has, "luarocks is not installed (apt-get install luarocks)")
  local _, git = H.sh("git -C " .. q(H.top) .. " rev-parse --git-dir >/dev/null 2>&1")
  lu.skipIf(not git, "not a git checkout: no release tarball to make")
  -- The rock is a release build of its own, with luarocks' flags: a sanitizer run of this
  -- suite would build and test exactly what the release run does, at twice the time.
  lu.skipIf(sanitize, "the rock is an unsanitized build of its own; the release run tests it")
  local tmp = run("mktemp -d /tmp/luashm-rock.XXXXXX"):gsub("%s+$", "")
  local ok, err = pcall(function()
    -- The release tarball of this tree as it is (its uncommitted changes to tracked files
    -- included: git stash create makes a commit of them without touching the tree).
    local rev = run("cd " .. q(H.top) .. " && (git stash create; echo HEAD) | head -1"):gsub("%s+$", "")
    local spec = ("luashm-%s-1.rockspec"):format(VERSION)
    run(("cd %s && git archive --format=tar.gz --prefix=luashm-%s/ -o %s %s && cp %s %s"):format(
      q(H.top), VERSION, q(("%s/luashm-%s.tar.gz"):format(tmp, VERSION)), rev,
      q("scripts/" .. spec), q(tmp)))
    run("cd " .. q(tmp) .. " && CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) luarocks --lua-version 5.4 --tree "
        .. q(tmp .. "/tree") .. " build " .. spec)
    local out = run(preload .. "LUA_INIT= LUA_CPATH=" .. q(tmp .. "/tree/lib/lua/5.4/?.so") ..
                    " LUA_PATH= lua5.4 -e 'print(require(\"luashm\").version)'")
    lu.assertEquals(out, VERSION .. "\n")
    lu.assertEquals(run(q(tmp .. "/tree/bin/luashm") .. " -e 'print(shm.version)'"), VERSION .. "\n")
    lu.assertStrMatches(run(q(tmp .. "/tree/bin/luashm") .. " -e 'shm.help(\"shm.exists\")'"),
      "^shm%.exists%(name%).*")
  end)
  run("rm -rf " .. q(tmp))
  if not ok then error(err, 0) end
end

os.exit(lu.LuaUnit.run())
