-- spec/lua_api_regressions_spec.lua: each finding of the Lua API fuzzer (spec/fuzz/lua_api_fuzz.lua)
-- fixed, as a case: the bad call raises a clean error naming the function and the problem.
local keras = require("keras")
local K = keras.backend

local function fails_with(sub, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.equal("string", type(err))
  assert(err:find(sub, 1, true), string.format("message %q lacks %q", err, sub))
  return err
end

describe("K.concatenate", function()
  it("ignores a lying __len (was a near-endless loop: lua_api_fuzz seed 9)", function()
    local list = setmetatable({keras.ones{2}, keras.ones{3}}, {__len = function() return 1e300 end})
    assert.same({5}, K.concatenate(list).shape)
    fails_with("bad argument #1 to 'concatenate' (keras.Tensor expected, got number)", K.concatenate,
      setmetatable({1, 2}, {__len = function() return math.maxinteger end}))
  end)
end)

describe("K.dot", function()
  it("refuses options that are not a table (was 'attempt to index a string value')", function()
    fails_with("dot: options must be a table (got string)", K.dot, keras.ones{2, 2}, keras.ones{2, 2},
      "transpose_a")
    fails_with("dot: options must be a table (got number)", K.dot, keras.ones{2, 2}, keras.ones{2, 2}, 1)
  end)
end)
