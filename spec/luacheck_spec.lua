-- spec/luacheck_spec.lua: luacheck (Debian's lua-check, settings in .luacheckrc) finds nothing
-- over lua/, spec/, examples/ and bench/.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"

describe("luacheck", function()
  it("is clean over lua/, spec/, examples/ and bench/", function()
    -- LD_PRELOAD cleared: luacheck runs on Debian's lua5.1, not under a sanitizer runtime
    local p = assert(io.popen("cd '" .. here .. "..' && env -u LD_PRELOAD luacheck lua spec examples bench " ..
      "--no-color --formatter plain 2>&1"))
    local out = p:read("a")
    local ok = p:close()
    assert(ok, "luacheck reports:\n" .. out)
    assert.are.equal("", out)
  end)
end)
