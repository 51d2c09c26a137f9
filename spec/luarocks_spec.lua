-- spec/luarocks_spec.lua: `luarocks make` of keras-lua-scm-1.rockspec (build type cmake) in a
-- copy of the sources installs keras into a temporary tree, and lua5.4 given only that tree
-- requires it and trains a tiny model with it.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
local ROOT = here .. "../"
local tmpdir = require("support").mktemp_dir()

-- A child process without this one's environment for Lua (the build tree's paths, a
-- sanitizer runtime preloaded): only what the command line gives it.
local CLEAN = "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LD_PRELOAD "

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

teardown(function() os.execute("rm -rf '" .. tmpdir .. "'") end)

describe("luarocks make", function()
  it("installs keras where lua5.4 finds it and a tiny model trains", function()
    local src, tree = tmpdir .. "/src", tmpdir .. "/tree"
    -- the clone without its build folders and history
    assert(os.execute("mkdir -p '" .. src .. "' && tar -C '" .. ROOT .. "' --exclude=./.git " ..
      "--exclude=./build --exclude='./build-*' --exclude=./bench/out -cf - . | tar -C '" .. src .. "' -xf -"))
    local ok, out = run("cd '" .. src .. "' && " .. CLEAN .. "CMAKE_BUILD_PARALLEL_LEVEL=2 " ..
      "luarocks --lua-version=5.4 make --tree='" .. tree .. "'")
    assert(ok, "luarocks make failed:\n" .. out)
    assert.matches("keras%-lua scm%-1 is now installed in " .. tree:gsub("%p", "%%%0"), out)
    -- lua5.4 with the tree's folders only (what `luarocks path` gives for it)
    local env = CLEAN .. "LUA_PATH_5_4='" .. tree .. "/share/lua/5.4/?.lua;" .. tree ..
      "/share/lua/5.4/?/init.lua' LUA_CPATH_5_4='" .. tree .. "/lib/lua/5.4/?.so' "
    local script = tmpdir .. "/tiny.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
local keras = require("keras")
assert(package.searchpath("keras.core", package.cpath):find(arg[1], 1, true) == 1)
-- y = 2 x on one feature: SGD from w = 0, b = 0, lr 0.1, full batch, 1 step:
-- grad w = -2 * mean(x * y) = -2 * (1*2 + 2*4) / 2 = -10, grad b = -2 * mean(y) = -6
local inp = keras.layers.Input{shape = {1}}
local out = keras.layers.Dense{units = 1, kernel_initializer = "zeros"}(inp)
local m = keras.Model{inputs = inp, outputs = out}
m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1}, loss = "mse"}
local h = m:fit(keras.array({{1}, {2}}), keras.array({{2}, {4}}), {batch_size = 2, epochs = 1, verbose = 0})
local w = m:get_weights()
print(h.history.loss[1], w[1]:item(), w[2]:item())
]])
    f:close()
    ok, out = run(env .. "lua5.4 '" .. script .. "' '" .. tree .. "'")
    assert(ok, "lua5.4 with the installed module failed:\n" .. out)
    local f32 = function(x) return (string.unpack("<f", string.pack("<f", x))) end
    assert.are.equal(string.format("%s\t%s\t%s\n", 10.0, f32(1.0), f32(0.6)), out)
  end)
end)
