-- spec/readme_spec.lua: the README's Lua examples run as written, so the first thing a
-- newcomer copies keeps working.
local support = require("support")

local function lua_blocks(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  local blocks = {}
  for code in text:gmatch("```lua\n(.-)```") do blocks[#blocks + 1] = code end
  return blocks
end

describe("README.md", function()
  local blocks = lua_blocks("README.md")

  it("has Lua examples", function()
    assert.is_true(#blocks >= 1)
  end)

  for i, code in ipairs(blocks) do
    it("example " .. i .. " runs", function()
      local script = support.write_script(code)
      local ok, code_, out = support.run_lua(script, "KERAS_LUA_PROGRESS=plain")
      os.remove(script)
      assert(ok, "exit " .. tostring(code_) .. ":\n" .. out)
    end)
  end

  it("first example prints what its comments say", function()
    local script = support.write_script(blocks[1])
    local _, _, out = support.run_lua(script, "KERAS_LUA_PROGRESS=plain")
    os.remove(script)
    assert.truthy(out:find("<CSRTensor 3x5 float32 @cpu(0)>", 1, true))
    assert.truthy(out:find("row_sparse\t3", 1, true))
    local last = tonumber(out:match("([%d%.e%-]+)%s*$"))
    assert.is_number(last)
    assert.is_true(last < 10, "final loss " .. tostring(last))
  end)
end)
