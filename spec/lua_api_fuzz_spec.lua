-- spec/lua_api_fuzz_spec.lua: the Lua API fuzzer (spec/fuzz/lua_api_fuzz.lua) for a fixed set of
-- seeds: every seed's child process exits cleanly (no crash, sanitizer report, hang, non-string
-- error or corrupted state). tools/lua-fuzz runs it long, under ASan + UBSan.
local fuzz = dofile("spec/fuzz/lua_api_fuzz.lua")

describe("lua_api_fuzz", function()
  it("survives seeds 1..24, 3000 random calls each, with state checks between calls", function()
    local ok, report = fuzz.drive(1, 24, 3000, 30, false)
    assert(ok, report)
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
