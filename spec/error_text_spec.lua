-- spec/error_text_spec.lua: error messages a user reads: a dtype mismatch names the layer, a
-- model called as a layer (nested models) says it is not supported, no doubled prefixes.
local keras = require("keras")
local L = keras.layers

local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return err
end

describe("error text", function()
  it("a dtype mismatch inside a layer names the layer", function()
    assert.are.equal("Dense: layer 'd64': dot: dtype mismatch float64 . float32", err_of(function()
      return L.Dense{units = 2, name = "d64"}(L.Input{shape = {3}, dtype = "float64"})
    end))
    assert.are.equal("Concatenate: layer 'cat64': concatenate: dtype mismatch: input 2 is float32, " ..
      "input 1 is float64", err_of(function()
      return L.Concatenate{name = "cat64"}({L.Input{shape = {3}, dtype = "float64"}, L.Input{shape = {3}}})
    end))
    -- other errors of a layer's call pass through unchanged
    assert.are.equal("boom", err_of(function() return L.Lambda{function() error("boom", 0) end}(L.Input{shape = {1}}) end))
  end)

  it("a model called as a layer or added to a Sequential says nested models are not supported", function()
    local inp = L.Input{shape = {3}}
    local m = keras.Model{inputs = inp, outputs = L.Dense{units = 1}(inp), name = "inner"}
    assert.are.equal("Model: calling model 'inner' on inputs (nested models) is not supported; call " ..
      "its layers on the new inputs instead (a layer called twice shares its weights)",
      err_of(function() return m(L.Input{shape = {3}}) end))
    assert.are.equal("Sequential: a model inside a model (nested models) is not supported; add its " ..
      "layers instead", err_of(keras.Sequential, {m}))
    local s = keras.Sequential{L.Dense{units = 1}, name = "inner_seq"}
    assert.are.equal("Model: calling model 'inner_seq' on inputs (nested models) is not supported; " ..
      "call its layers on the new inputs instead (a layer called twice shares its weights)",
      err_of(function() return s(L.Input{shape = {3}}) end))
  end)

  it("the C messages of dump_svmlight_file and LibSVMIter are not prefixed twice", function()
    local X = keras.sparse.csr_matrix{data = {1}, indices = {1}, indptr = {1, 2}, shape = {1, 2}}
    assert.are.equal("dump_svmlight_file: y has 2 rows, X has 1",
      err_of(keras.data_utils.dump_svmlight_file, X, keras.array({1, 2}), os.tmpname()))
    assert.are.equal("dump_svmlight_file: X must be a 2-d CSR or dense tensor. Received: 1-d default",
      err_of(keras.data_utils.dump_svmlight_file, keras.ones({2}), keras.ones({2}), os.tmpname()))
  end)
end)
