-- spec/lua_api_fuzz_spec.lua: the Lua API fuzzer (spec/fuzz/lua_api_fuzz.lua) for a fixed set of
-- seeds: every seed's child process exits cleanly (no crash, sanitizer report, hang, non-string
-- error or corrupted state) and, strict, no call raises a Lua runtime error positioned inside
-- keras/*.lua (every bad input gets a Keras-style message); and the same in lifecycle mode
-- (objects closed, collected and reused, also from inside fit's callbacks). tools/lua-fuzz
-- runs it long, under ASan + UBSan (LUA_FUZZ_MODE=lifecycle for the lifecycle sequences).
local fuzz = dofile("spec/fuzz/lua_api_fuzz.lua")

describe("lua_api_fuzz", function()
  it("survives seeds 1..24, 3000 random calls each, strict, with state checks between calls", function()
    local ok, report = fuzz.drive(1, 24, 3000, 30, true)
    assert(ok, report)
  end)

  it("lifecycle mode survives seeds 1..16, 400 calls each, strict: objects closed, collected and " ..
     "used again at random points, also inside fit's callbacks", function()
    local ok, report = fuzz.drive(1, 16, 400, 60, true, "lifecycle")
    assert(ok, report)
  end)

  it("strict mode fails a run whose child reports an internal Lua error; plain mode counts it", function()
    local dir = os.tmpname()
    os.remove(dir)
    local f = assert(io.open(dir .. ".sh", "w"))
    f:write("#!/bin/sh\necho '#1 layers.Dense()' > \"$5\"\n",
      "echo 'lua_api_fuzz: internal error seed 7 call #1 layers.Dense: /x/keras/layers.lua:9: " ..
      "attempt to index a nil value' >&2\nexit 0\n")
    f:close()
    os.execute("chmod +x " .. dir .. ".sh")
    local function drive(strict)
      local p = io.popen(string.format("LUA_FUZZ_LUA=%s LUA_FUZZ_DIR=%s lua5.4 spec/fuzz/lua_api_fuzz.lua " ..
        "drive 7 7 10 20 %s 2>&1", dir .. ".sh", dir, strict))
      local out = p:read("a")
      return p:close(), out
    end
    local ok_strict, out_strict = drive("1")
    local ok_plain, out_plain = drive("0")
    os.remove(dir .. ".sh")
    os.execute("rm -rf '" .. dir .. "'")
    assert.is_falsy(ok_strict)
    assert.truthy(out_strict:find("FAIL seed 7: 1 internal errors (strict)", 1, true), out_strict)
    assert.truthy(out_strict:find("keras/layers.lua:9: attempt to index a nil value", 1, true), out_strict)
    assert.is_true(ok_plain, out_plain)
    assert.truthy(out_plain:find("0 failed, 1 internal-error kinds", 1, true), out_plain)
  end)

  it("reports a crashing child with its seed and last calls", function()
    -- the driver itself: a child that dies of a signal must fail the run
    local saved = os.getenv("LUA_FUZZ_LUA")
    assert.is_nil(saved and saved:find("kill", 1, true))
    local dir = os.tmpname()
    os.remove(dir)
    local f = assert(io.open(dir .. ".sh", "w"))
    f:write("#!/bin/sh\necho '#1 boom()' > \"$5\"\nkill -SEGV $$\n")
    f:close()
    os.execute("chmod +x " .. dir .. ".sh")
    local lua_env = "LUA_FUZZ_LUA"
    -- drive() reads the interpreter from the environment; run it in a child with the fake one
    local cmd = string.format("%s=%s LUA_FUZZ_DIR=%s lua5.4 spec/fuzz/lua_api_fuzz.lua drive 7 7 10 20",
      lua_env, dir .. ".sh", dir)
    local p = io.popen(cmd .. " 2>&1")
    local out = p:read("a")
    local okc = p:close()
    os.remove(dir .. ".sh")
    os.execute("rm -rf '" .. dir .. "'")
    assert.is_falsy(okc)
    -- under tools/test-asan the fake interpreter (sh) has ASan preloaded, whose SEGV handler
    -- turns the signal into a sanitizer report
    assert.truthy(out:find("FAIL seed 7: killed by signal", 1, true) or out:find("FAIL seed 7: exit", 1, true)
      or out:find("FAIL seed 7: sanitizer report", 1, true), out)
    assert.truthy(out:find("#1 boom()", 1, true), out)
  end)
end)
