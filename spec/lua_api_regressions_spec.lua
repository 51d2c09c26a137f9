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

describe("saving", function()
  it("refuses a non-model (was 'attempt to call a nil value (method _weight_layers)')", function()
    local layer = keras.layers.Dense{units = 1}
    fails_with("save_weights: expected a keras model (got table)", keras.saving.save_weights, layer, "x.klw")
    fails_with("save_model: expected a keras model (got number)", keras.saving.save_model, 1, "x.klm")
    fails_with("load_weights: expected a keras model (got nil)", keras.saving.load_weights, nil, "x.klw")
    fails_with("save_model: expected a keras model (got nil)", keras.saving.architecture, nil)
    fails_with("layer_config: expected a keras layer (got boolean)", keras.saving.layer_config, true)
  end)
end)

describe("optimizer get/set", function()
  it("name a non-string key (was a C 'bad argument' with a Lua position)", function()
    local o = keras.optimizers.SGD{}
    fails_with("get: the option name must be a string (got nil)", o.get, o)
    fails_with("set: the option name must be a string (got table)", o.set, o, {}, 1)
  end)
end)

describe("warn", function()
  it("prints any value (was 'bad argument #2 to write')", function()
    local ok = pcall(keras.data_utils.warn, keras.ones{1})
    assert.is_true(ok)
    assert.is_true((pcall(keras.utils.warn, nil)))
  end)
end)

describe("axis arguments", function()
  it("math.mininteger is out of range, not a signed overflow (UBSan in kl_lua_checkaxis)", function()
    local t = keras.ones{2, 3}
    fails_with("sum: axis -9223372036854775808 out of range for a 2-d tensor", K.sum, t, math.mininteger)
    fails_with("axis 9223372036854775807 out of range for a 2-d tensor", K.mean, t, math.maxinteger)
    fails_with("concatenate: axis -9223372036854775808 out of range", K.concatenate, {t, t}, math.mininteger)
    assert.same({2}, K.sum(t, -1).shape)
  end)
  it("row indices at math.mininteger in retain are out of range (UBSan in list_index_buffer)", function()
    local R = keras.array({{1, 2}, {3, 4}}):tostype("row_sparse")
    fails_with("retain: indices[1] = ", keras.sparse.retain, R, {math.maxinteger, math.mininteger})
  end)
end)

describe("K.variable", function()
  it("names a non-string stype (was a C 'bad argument' from tostype)", function()
    fails_with("variable: stype must be a string (got table)", K.variable, keras.ones{2, 2}, {stype = {}})
  end)
end)
