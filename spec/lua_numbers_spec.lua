-- spec/lua_numbers_spec.lua: Lua 5.4 makes 2^18, 1e4, 64 / 2 and 32.0 floats. Wherever the API
-- takes an integer, a float with an integral value is that integer (as luaL_checkinteger
-- does in the binding); a fractional value is still refused by a message naming the option
-- (issue 14, section 1).
local keras = require("keras")
local K = keras.backend
local L = keras.layers

describe("integral floats are integers", function()
  it("layers: Dense{units = 2^6}, Input{shape = {2^4}}, Embedding sizes, Concatenate axis", function()
    local inp = L.Input{shape = {2^4}, sparse = true}
    assert.are.same({-1, 16}, K.int_shape(inp))
    assert.are.equal("integer", math.type(K.int_shape(inp)[2]))
    local d = L.Dense{units = 2^6, sparse_weight = true}
    local out = d(inp)
    assert.are.same({-1, 64}, K.int_shape(out))
    assert.are.equal(64, d.units)
    assert.are.equal("integer", math.type(d.units))
    local e = L.Embedding{input_dim = 1e2, output_dim = 16 / 2}
    assert.are.equal(100, e.vocab)
    assert.are.equal(8, e.output_dim)
    local a, b = L.Input{shape = {3}}, L.Input{shape = {2}}
    assert.are.same({-1, 5}, K.int_shape(L.Concatenate{axis = -1.0}{a, b}))
  end)

  it("fit{batch_size = 32.0, epochs = 2.0} trains as fit{batch_size = 32, epochs = 2}", function()
    local X = keras.sparse.rand({100, 10}, "csr", 0.3, {seed = 1})
    local y = K.dot(X, keras.ones({10, 1}))
    local function run(bs, ep)
      keras.random.seed(4)
      local m = keras.Sequential{L.Input{shape = {10}, sparse = true}, L.Dense{units = 1, sparse_weight = true}}
      m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.05}, loss = "mse"}
      return m:fit(X, y, {batch_size = bs, epochs = ep, verbose = 0, shuffle = false}).history.loss
    end
    local want = run(32, 2)
    assert.are.same(want, run(32.0, 2.0))
    assert.are.same(want, run(2^5, 1e0 * 2))
  end)

  it("K.sum / K.mean / K.concatenate / K.softmax axes", function()
    local x = keras.array({{1, 2}, {3, 4}})
    assert.are.same({3, 7}, K.sum(x, 2.0):totable())
    assert.are.same({2, 3}, K.mean(x, 1.0):totable())
    assert.are.same({2, 4}, K.concatenate({x, x}, 2.0).shape)
    assert.are.same(K.softmax(x, -1):totable(), K.softmax(x, -1.0):totable())
  end)

  it("load_svmlight_file{n_features = 2^3} and LibSVMIter{batch_size = 4.0}", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("1 1:0.5 3:2\n0 2:1\n")
    f:close()
    local X, y = keras.data_utils.load_svmlight_file(path, {n_features = 2^3})
    assert.are.same({2, 8}, X.shape)
    assert.are.same({1, 0}, y:totable())
    local it = keras.data_utils.LibSVMIter{path = path, n_features = 8.0, batch_size = 4.0}
    local bx = it:next()
    assert.are.same({2, 8}, bx.shape)
    it:close()
    os.remove(path)
  end)

  it("data_utils, callbacks, get_layer, gpu and optimizer steps take integral floats", function()
    local X = keras.sparse.rand({10, 4}, "csr", 0.5, {seed = 2})
    assert.are.same({8, 4}, keras.data_utils.prepare_sliced_sparse_data(X, 4.0).shape)
    local es = keras.callbacks.EarlyStopping{patience = 2.0}
    assert.are.equal(2, es.patience)
    local inp = L.Input{shape = {3}}
    local m = keras.Model{inputs = inp, outputs = L.Dense{units = 1, name = "only"}(inp)}
    assert.are.equal(m:get_layer(2), m:get_layer(2.0))
    if keras.num_gpus() > 0 then -- an EMULATE build (or a GPU): gpu(0.0) is gpu(0)
      assert.are.equal(keras.gpu(0), keras.gpu(0.0))
    else
      assert.has_error(function() keras.gpu(0.0) end) -- no CUDA device here: the device error,
      local ok, err = pcall(keras.gpu, 0.0)             -- not an argument error
      assert.is_false(ok)
      assert.is_nil(tostring(err):find("must be an integer", 1, true))
    end
  end)

  it("fractional values still fail, naming the option", function()
    assert.has_error(function() L.Dense{units = 1.5} end,
      "Dense: units must be a positive integer. Received: units=1.5")
    assert.has_error(function() L.Input{shape = {2.5}} end,
      "Input: shape must be a table of positive integers. Received: shape={2.5}")
    assert.has_error(function() K.sum(keras.ones({2, 2}), 1.5) end, "sum: axis must be an integer (got 1.5)")
    local X = keras.sparse.rand({10, 4}, "csr", 0.5, {seed = 2})
    local m = keras.Sequential{L.Input{shape = {4}, sparse = true}, L.Dense{units = 1, sparse_weight = true}}
    m:compile{optimizer = "sgd", loss = "mse"}
    assert.has_error(function() m:fit(X, keras.zeros({10, 1}), {batch_size = 2.5, verbose = 0}) end,
      "Model.fit: batch_size must be a positive integer. Received: batch_size=2.5")
    assert.has_error(function() keras.data_utils.prepare_sliced_sparse_data(X, 0.5) end,
      "prepare_sliced_sparse_data: batch_size must be a positive integer. Received: batch_size=0.5")
    assert.has_error(function() keras.callbacks.EarlyStopping{patience = 0.5} end,
      "EarlyStopping: patience must be an integer >= 0. Received: patience=0.5")
  end)
end)
