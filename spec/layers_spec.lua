-- spec/layers_spec.lua: keras.layers: construction checks, the build/call lifecycle, weights,
-- incompatible shapes, and a float64 finite-difference gradient check of every layer.
local keras = require("keras")
local K = keras.backend
local L = keras.layers
local S = require("support")

local function errmsg(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error")
  return err
end

describe("layer arguments", function()
  it("are validated in the constructor with Keras messages", function()
    assert.are.equal("Dense: units must be a positive integer. Received: units=-3",
      errmsg(function() L.Dense{units = -3} end))
    assert.are.equal("Dense: units must be a positive integer. Received: units=nil",
      errmsg(function() L.Dense{} end))
    assert.are.equal("Dense: unknown option 'unit'", errmsg(function() L.Dense{unit = 3} end))
    assert.are.equal("Dense: use_bias must be a boolean. Received: use_bias='yes'",
      errmsg(function() L.Dense{units = 1, use_bias = "yes"} end))
    assert.matches("Dense: unknown activation 'relux'", errmsg(function() L.Dense{units = 1, activation = "relux"} end), 1, true)
    assert.matches("Dense: unknown initializer 'foo'", errmsg(function() L.Dense{units = 1, kernel_initializer = "foo"} end), 1, true)
    assert.are.equal("Embedding: input_dim must be a positive integer. Received: input_dim=0",
      errmsg(function() L.Embedding{input_dim = 0, output_dim = 2} end))
    assert.are.equal("Embedding: output_dim must be a positive integer. Received: output_dim=2.5",
      errmsg(function() L.Embedding{input_dim = 3, output_dim = 2.5} end))
    assert.are.equal("Dropout: rate must be a number in [0, 1). Received: rate=1",
      errmsg(function() L.Dropout{rate = 1} end))
    assert.are.equal("Concatenate: axis must be a non-zero integer. Received: axis=0",
      errmsg(function() L.Concatenate{axis = 0} end))
    assert.are.equal("Lambda: fn must be a function. Received: fn=nil", errmsg(function() L.Lambda{} end))
    assert.are.equal("Input: shape must be a table of positive integers. Received: shape={0}",
      errmsg(function() L.Input{shape = {0}} end))
    assert.are.equal("Input: unknown option 'shap'", errmsg(function() L.Input{shap = {3}} end))
    assert.are.equal("Activation: unknown option 'fn'", errmsg(function() L.Activation{fn = "relu"} end))
  end)
end)

describe("layer lifecycle", function()
  it("creates weights on the first call, named after the layer", function()
    local d = L.Dense{units = 4, name = "d"}
    assert.is_false(d.built)
    assert.are.equal(0, #d.weights)
    local y = d(L.Input{shape = {3}})
    assert.is_true(d.built)
    assert.are.same({-1, 4}, y.shape)
    assert.are.equal(2, #d.weights)
    assert.are.same({3, 4}, d.weights[1].shape)
    assert.are.equal("d/kernel", d.weights[1]._name)
    assert.are.same({4}, d.weights[2].shape)
    assert.are.same({0, 0, 0, 0}, d.weights[2]:totable())
  end)
  it("gives Keras-style unique names", function()
    local a, b = L.Dense{units = 1}, L.Dense{units = 1}
    assert.matches("^dense_%d+$", a.name)
    assert.are_not.equal(a.name, b.name)
    assert.matches("^global_average_pooling1d_%d+$", L.GlobalAveragePooling1D{}.name)
  end)
  it("sparse_weight gives a row_sparse kernel storing every row", function()
    local d = L.Dense{units = 2, sparse_weight = true, kernel_initializer = "ones"}
    d(L.Input{shape = {5}, sparse = true})
    assert.are.equal("row_sparse", d.weights[1].stype)
    assert.are.equal(5, d.weights[1].indices.shape[1])
  end)
  it("rejects an incompatible input on a later call", function()
    local d = L.Dense{units = 2}
    d(L.Input{shape = {3}})
    assert.are.equal("Dense: input 1 of layer '" .. d.name .. "' is incompatible with the layer: " ..
      "expected axis -1 of input shape to have value 3, but received input with shape (None, 5)",
      errmsg(function() d(L.Input{shape = {5}}) end))
    assert.matches("expects a 3%-d input", errmsg(function() L.GlobalAveragePooling1D{}(L.Input{shape = {4}}) end))
    assert.matches("expected axis 2 of input shape to have value 4",
      errmsg(function() L.Embedding{input_dim = 5, output_dim = 2, input_length = 4}(L.Input{shape = {3}}) end))
    assert.matches("Dense: expected a graph node", errmsg(function() L.Dense{units = 1}(keras.ones({2, 2})) end))
  end)
  it("get_weights/set_weights copy values and check shapes", function()
    for _, sw in ipairs({false, true}) do
      local d = L.Dense{units = 2, sparse_weight = sw}
      d(L.Input{shape = {2}})
      d:set_weights({{{1, 2}, {0, 0}}, {5, 6}})
      local w = d:get_weights()
      assert.are.same({{1, 2}, {0, 0}}, w[1]:tostype("default"):totable())
      assert.are.same({5, 6}, w[2]:totable())
      if sw then assert.are.equal(2, d.weights[1].indices.shape[1]) end
      assert.matches("set_weights expected 2 weight%(s%), got 1", errmsg(function() d:set_weights({w[1]}) end))
      assert.matches("has shape %(2, 2%), got a value of shape %(3, 2%)",
        errmsg(function() d:set_weights({keras.ones({3, 2}), w[2]}) end))
    end
  end)
  it("computes what Keras computes (Dense, Embedding, pooling, concat, flatten)", function()
    local x = L.Input{shape = {2}}
    local d = L.Dense{units = 2, activation = "relu"}
    local y = d(x)
    d:set_weights({{{1, -1}, {2, 1}}, {0.5, 0}})
    local f = K.func({x}, {y})
    assert.are.same({{5.5, 1}, {0.5, 0}}, f(keras.array{{1, 2}, {0, 0}})[1]:totable())
    local ids = L.Input{shape = {3}}
    local e = L.Embedding{input_dim = 3, output_dim = 2}
    local pooled = L.GlobalAveragePooling1D{}(e(ids))
    e:set_weights({{{1, 2}, {3, 4}, {5, 6}}})
    local g = K.func({ids}, {pooled})
    -- id 0 is padding: a zero vector that still counts in the mean (as Keras without masking)
    S.assert_near(g(keras.array{{1, 3, 0}})[1]:totable(), {{2, 8 / 3}}, 1e-6)
    local a, b = L.Input{shape = {2}, sparse = true}, L.Input{shape = {3}, sparse = true}
    local c = L.Concatenate{}({a, b})
    assert.are.equal("csr", c.stype)
    assert.are.same({-1, 5}, c.shape)
    local t = L.Input{shape = {2, 3}}
    assert.are.same({-1, 6}, L.Flatten{}(t).shape)
  end)
  it("Embedding reports ids out of range at run time", function()
    local ids = L.Input{shape = {2}}
    local y = L.Embedding{input_dim = 3, output_dim = 2}(ids)
    local f = K.func({ids}, {y})
    assert.are.equal("Embedding: id 4 out of range [0, 3] at position (1, 2)",
      errmsg(function() f(keras.array{{1, 4}}) end))
    assert.has_error(function() f(keras.array{{-1, 1}}) end)
  end)
end)

-- Central-difference check (float64) of d sum(out^2 + 0.3 out) / d weight for every weight of
-- `layers_with_weights`, with out built by build(x).
local function fd_check(input_shape, sparse, build, xval, check_layers)
  local x = L.Input{shape = input_shape, sparse = sparse, dtype = "float64"}
  local out = build(x)
  local loss = K.sum(K.square(out) + out * 0.3)
  local lossf = K.func({x}, loss)
  for _, layer in ipairs(check_layers) do
    local grads = K.func({x}, K.gradients(loss, layer.weights))(xval)
    for k = 1, #layer.weights do
      local base = layer:get_weights()
      local wt = base[k]:tostype("default"):totable()
      local g = grads[k]:tostype("default"):totable()
      local h = 1e-6
      local function at(tbl, i, j) if j then return tbl[i][j] end return tbl[i] end
      local function set(tbl, i, j, v) if j then tbl[i][j] = v else tbl[i] = v end end
      local rows = #wt
      for i = 1, rows do
        local cols = type(wt[i]) == "table" and #wt[i] or nil
        for j = 1, (cols or 1) do
          local jj = cols and j or nil
          local v = at(wt, i, jj)
          local vals = {}
          for s, sign in ipairs({1, -1}) do
            set(wt, i, jj, v + sign * h)
            local ws = {}
            for q = 1, #base do ws[q] = q == k and keras.array(wt, {dtype = "float64"}) or base[q] end
            layer:set_weights(ws)
            vals[s] = lossf(xval):item()
          end
          set(wt, i, jj, v)
          local fd = (vals[1] - vals[2]) / (2 * h)
          local an = at(g, i, jj)
          assert(math.abs(fd - an) <= 1e-6 * (1 + math.abs(fd)),
            string.format("%s weight %d [%d,%s]: fd %.12g vs grad %.12g", layer.name, k, i, tostring(jj), fd, an))
        end
      end
      layer:set_weights(base)
    end
  end
end

describe("finite-difference gradients (float64)", function()
  local function d(o) o.dtype = "float64"; return L.Dense(o) end
  keras.random.seed(123)
  local xd = keras.random.normal({4, 3}, {dtype = "float64"})
  local xs = keras.sparse.csr_matrix({{1, 0, 2}, {0, 0, 3}, {0, 4, 0}, {5, 0, 0}}, {dtype = "float64"})

  for _, act in ipairs({"linear", "relu", "sigmoid", "tanh", "softmax"}) do
    it("Dense with activation " .. act, function()
      local l = d{units = 3, activation = act}
      fd_check({3}, false, function(x) return l(x) end, xd, {l})
    end)
  end
  it("Dense with sparse_weight on CSR input (row_sparse gradient)", function()
    local l = d{units = 2, sparse_weight = true}
    fd_check({3}, true, function(x) return l(x) end, xs, {l})
    local x = L.Input{shape = {3}, sparse = true, dtype = "float64"}
    local g = K.func({x}, K.gradients(K.sum(l(x)), l.weights))(xs)
    assert.are.equal("row_sparse", g[1].stype)
  end)
  it("Dense without bias on CSR input", function()
    local l = d{units = 2, use_bias = false}
    fd_check({3}, true, function(x) return l(x) end, xs, {l})
  end)
  it("Embedding (dense and sparse_grad)", function()
    for _, sg in ipairs({false, true}) do
      local e = L.Embedding{input_dim = 5, output_dim = 2, sparse_grad = sg, dtype = "float64"}
      fd_check({3}, false, function(x) return e(x) end, keras.array{{1, 2, 2}, {5, 0, 1}}, {e})
    end
  end)
  it("Flatten, Activation, Dropout (inference), GlobalAveragePooling1D, Lambda", function()
    local e = L.Embedding{input_dim = 4, output_dim = 2, dtype = "float64"}
    local ids = keras.array{{1, 2, 3}, {4, 4, 1}}
    fd_check({3}, false, function(x) return L.Flatten{}(e(x)) end, ids, {e})
    fd_check({3}, false, function(x) return L.GlobalAveragePooling1D{}(e(x)) end, ids, {e})
    local l = d{units = 3}
    fd_check({3}, false, function(x) return L.Activation{"tanh"}(l(x)) end, xd, {l})
    fd_check({3}, false, function(x) return L.Dropout{rate = 0.5}(l(x)) end, xd, {l})
    fd_check({3}, false, function(x) return L.Lambda{function(t) return K.square(t) * 0.5 end}(l(x)) end, xd, {l})
  end)
  it("Concatenate of two Dense branches", function()
    local a, b = d{units = 2}, d{units = 3, activation = "sigmoid"}
    fd_check({3}, false, function(x) return L.Concatenate{}({a(x), b(x)}) end, xd, {a, b})
  end)
end)
