-- spec/merge_mask_spec.lua: the merge layers (Add, Subtract, Multiply, Dot), GlobalMaxPooling1D,
-- Embedding{mask_zero, weights}, layer.trainable after build: exact values against a dense
-- reference (dense and csr inputs), Keras' shape rules, errors by message.
local keras = require("keras")
local L = keras.layers
local sparse = keras.sparse

local function model(inputs, out) return keras.Model{inputs = inputs, outputs = out} end
local function csr(t) return sparse.csr_matrix(keras.array(t)) end

local A = {{1, 0, 2}, {0, 3, 0}}
local B = {{10, 20, 0}, {0, 30, 40}}

-- y = f(a, b) elementwise over A, B (the dense reference)
local function ref(f)
  local r = {}
  for i = 1, #A do
    r[i] = {}
    for j = 1, #A[i] do r[i][j] = f(A[i][j], B[i][j]) end
  end
  return r
end

describe("Add, Subtract, Multiply", function()
  local ops = {Add = function(a, b) return a + b end, Subtract = function(a, b) return a - b end,
    Multiply = function(a, b) return a * b end}
  for cls, f in pairs(ops) do
    it(cls .. " of dense/dense, csr/csr and csr/dense inputs equals the dense reference", function()
      for _, st in ipairs({{false, false}, {true, true}, {true, false}}) do
        local a, b = L.Input{shape = {3}, sparse = st[1]}, L.Input{shape = {3}, sparse = st[2]}
        local m = model({a, b}, L[cls]{}({a, b}))
        local xa = st[1] and csr(A) or keras.array(A)
        local xb = st[2] and csr(B) or keras.array(B)
        assert.are.same(ref(f), m:predict({xa, xb}):totable())
      end
    end)
  end

  it("Add and Multiply take more than 2 inputs; Subtract exactly 2", function()
    local a, b, c = L.Input{shape = {2}}, L.Input{shape = {2}}, L.Input{shape = {2}}
    local xs = {keras.array({{1, 2}}), keras.array({{3, 4}}), keras.array({{5, 6}})}
    assert.are.same({{9, 12}}, model({a, b, c}, L.Add{}({a, b, c})):predict(xs):totable())
    assert.are.same({{15, 48}}, model({a, b, c}, L.Multiply{}({a, b, c})):predict(xs):totable())
    local s = L.Subtract{name = "sub3"}
    assert.has_error(function() s({a, b, c}) end,
      "Subtract: layer 'sub3' should be called on exactly 2 inputs, got 3")
    local ad = L.Add{name = "add1"}
    assert.has_error(function() ad({a}) end,
      "Add: layer 'add1' should be called on a list of at least 2 inputs, got 1")
  end)

  it("broadcasts as Keras: dims equal or 1; a lower rank gains axes after the batch axis", function()
    local a, b = L.Input{shape = {2}}, L.Input{shape = {3, 2}}
    local m = model({a, b}, L.Add{}({a, b}))
    local y = m:predict({keras.array({{1, 2}}), keras.array({{{10, 20}, {30, 40}, {50, 60}}})})
    assert.are.same({{{11, 22}, {31, 42}, {51, 62}}}, y:totable())
    local c = L.Input{shape = {3, 1}}
    assert.are.same({1, 3, 2}, model({b, c}, L.Multiply{}({b, c})):predict(
      {keras.ones({1, 3, 2}), keras.ones({1, 3, 1})}).shape)
    local d = L.Input{shape = {4}}
    local bad = L.Add{name = "add_bad"}
    assert.has_error(function() bad({a, d}) end,
      "Add: layer 'add_bad': operands could not be broadcast together with shapes (None, 2) (None, 4)")
  end)
end)

describe("Dot", function()
  it("axes = 2 (Keras' axes=1) on (batch, d): the rowwise dot product, (batch, 1); dense and csr", function()
    for _, st in ipairs({false, true}) do
      local a, b = L.Input{shape = {3}, sparse = st}, L.Input{shape = {3}, sparse = st}
      local m = model({a, b}, L.Dot{axes = 2}({a, b}))
      local conv = st and csr or keras.array
      assert.are.same({{10}, {90}}, m:predict({conv(A), conv(B)}):totable())
    end
    local a, b = L.Input{shape = {3}}, L.Input{shape = {3}}
    assert.are.same({{10}, {90}}, model({a, b}, L.Dot{-1}({a, b})):predict({keras.array(A), keras.array(B)})
      :totable())
  end)

  it("normalize = true gives the cosine similarity (zero vectors give 0)", function()
    local a, b = L.Input{shape = {2}}, L.Input{shape = {2}}
    local m = model({a, b}, L.Dot{axes = 2, normalize = true}({a, b}))
    local y = m:predict({keras.array({{3, 4}, {0, 0}}), keras.array({{4, 3}, {1, 1}})}):totable()
    assert.is_true(math.abs(y[1][1] - 0.96) < 1e-6)
    assert.are.equal(0, y[2][1])
  end)

  it("3-d inputs: axes 3 (pairwise interactions, as in FM), {3, 2}, 2; and 2-d with 3-d", function()
    local x = {{{1, 2}, {3, 4}, {5, 6}}}          -- (1, 3, 2)
    local z = {{{1, 0, 2}, {0, 1, -1}}}           -- (1, 2, 3)
    local p = L.Input{shape = {3, 2}}
    local m = model(p, L.Dot{axes = 3}({p, p}))
    -- x . x^T
    assert.are.same({{{5, 11, 17}, {11, 25, 39}, {17, 39, 61}}}, m:predict(keras.array(x)):totable())
    local q = L.Input{shape = {2, 3}}
    -- x . z: (3, 2) . (2, 3)
    assert.are.same({{{1, 2, 0}, {3, 4, 2}, {5, 6, 4}}},
      model({p, q}, L.Dot{axes = {3, 2}}({p, q})):predict({keras.array(x), keras.array(z)}):totable())
    -- axes 2 on (3, 2) and (3, 2): x^T . x (2 x 2)
    assert.are.same({{{35, 44}, {44, 56}}}, model(p, L.Dot{axes = 2}({p, p})):predict(keras.array(x)):totable())
    local v = L.Input{shape = {2}}
    assert.are.same({{5, 11, 17}},
      model({v, p}, L.Dot{axes = {2, 3}}({v, p})):predict({keras.array({{1, 2}}), keras.array(x)}):totable())
  end)

  it("errors name the layer and the shapes", function()
    assert.has_error(function() L.Dot{} end, "Dot: axes is required (e.g. Dot{axes = -1})")
    assert.has_error(function() L.Dot{axes = 0} end,
      "Dot: axes must be a non-zero integer or a pair of them. Received: axes=0")
    local a, b, c = L.Input{shape = {3}}, L.Input{shape = {4}}, L.Input{shape = {2, 2}}
    assert.has_error(function() L.Dot{axes = 2, name = "d1"}({a, b}) end,
      "Dot: layer 'd1': dimension incompatibility 3 ~= 4. Layer shapes: (None, 3), (None, 4)")
    assert.has_error(function() L.Dot{axes = 1, name = "d2"}({a, a}) end,
      "Dot: layer 'd2': axes 1 is out of range for input 1 of shape (None, 3) (axis 1 is the batch)")
    assert.has_error(function() L.Dot{axes = 2, name = "d3"}({a}) end,
      "Dot: layer 'd3' should be called on a list of 2 inputs, got 1")
    assert.has_error(function() L.Dot{axes = {2, 3}, name = "d4"}({c, c}) end,
      "Dot: layer 'd4': axes {2, 3} of two 3-d inputs is not supported (swap the inputs: axes {3, 2} " ..
      "gives the transposed result)")
  end)
end)

describe("GlobalMaxPooling1D", function()
  it("takes the max over the steps", function()
    local x = L.Input{shape = {3, 2}}
    local m = model(x, L.GlobalMaxPooling1D{}(x))
    assert.are.same({{5, -1}, {0, 2}},
      m:predict(keras.array({{{1, -4}, {5, -1}, {2, -3}}, {{0, 2}, {-1, 2}, {-2, 0}}})):totable())
    local g = L.GlobalMaxPooling1D{name = "gmp"}
    assert.has_error(function() g(L.Input{shape = {3}}) end,
      "GlobalMaxPooling1D: layer 'gmp' expects a 3-d input (batch, steps, features), got (None, 3)")
  end)
end)

describe("Embedding{mask_zero = true}", function()
  local W = {{1, -2}, {3, -4}, {5, -6}, {-7, 8}}
  local ids = {{1, 2, 0, 0}, {0, 0, 0, 0}, {4, 4, 3, 0}}

  for _, sg in ipairs({false, true}) do
    it("pooling skips id 0 and divides by the unmasked count; padding only gives 0" ..
       (sg and " (sparse_grad)" or ""), function()
      local x = L.Input{shape = {4}}
      local e = L.Embedding{input_dim = 4, output_dim = 2, mask_zero = true, sparse_grad = sg,
        weights = {W}, dtype = "float64"}(x)
      local mean = model(x, L.GlobalAveragePooling1D{}(L.Dropout{rate = 0.5}(e)))
      local max = model(x, L.GlobalMaxPooling1D{}(e))
      local xi = keras.array(ids)
      assert.are.same({{2, -3}, {0, 0}, {-3, 10 * (1 / 3)}}, mean:predict(xi):totable()) -- sum * (1 / count)
      assert.are.same({{3, -2}, {0, 0}, {5, 8}}, max:predict(xi):totable())
    end)
  end

  it("without mask_zero the mean divides by the length (id 0 reads a zero row)", function()
    local x = L.Input{shape = {4}}
    local e = L.Embedding{input_dim = 4, output_dim = 2, weights = {W}, dtype = "float64"}(x)
    assert.are.same({{1, -1.5}, {0, 0}, {-2.25, 2.5}},
      model(x, L.GlobalAveragePooling1D{}(e)):predict(keras.array(ids)):totable())
  end)

  it("trains through the mask: padding rows and unused rows keep their values", function()
    local x = L.Input{shape = {4}}
    local emb = L.Embedding{input_dim = 4, output_dim = 2, mask_zero = true, sparse_grad = true,
      weights = {W}, dtype = "float64"}
    local out = L.Dense{units = 1, kernel_initializer = "ones", use_bias = false, dtype = "float64"}(
      L.GlobalAveragePooling1D{}(emb(x)))
    local m = model(x, out)
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.5}, loss = "mse"}
    -- one sample, ids {1, 2, 0, 0}: mean (2, -3), y_pred -1, y 0: d loss / d mean = 2 * (-1) = -2
    -- per feature; each of rows 1, 2 gets -2 / 2 = -1: w -= 0.5 * -1
    m:train_on_batch(keras.array({{1, 2, 0, 0}}), keras.array({{0}}))
    assert.are.same({{1.5, -1.5}, {3.5, -3.5}, {5, -6}, {-7, 8}}, emb:get_weights()[1]:totable())
  end)
end)

describe("Embedding{weights = {W}}", function()
  it("starts from the given vectors", function()
    local x = L.Input{shape = {2}}
    local emb = L.Embedding{input_dim = 3, output_dim = 2, weights = {{{1, 2}, {3, 4}, {5, 6}}}}
    local m = model(x, emb(x))
    assert.are.same({{{5, 6}, {1, 2}}}, m:predict(keras.array({{3, 1}})):totable())
    assert.are.same({{1, 2}, {3, 4}, {5, 6}}, emb:get_weights()[1]:totable())
  end)

  it("checks the shape and the count, naming the layer", function()
    assert.has_error(function()
      L.Embedding{input_dim = 10, output_dim = 4, weights = {keras.zeros({3, 4})}, name = "emb_w"}
    end, "Embedding: weights[1] has shape (3, 4), but layer 'emb_w' expects (input_dim, output_dim) = (10, 4)")
    assert.has_error(function()
      L.Embedding{input_dim = 2, output_dim = 2, weights = {keras.zeros({2, 2}), keras.zeros({2, 2})}}
    end, "Embedding: weights must be a list of one (input_dim, output_dim) matrix. Received: weights=" ..
      "{a keras.Tensor of shape (2, 2), a keras.Tensor of shape (2, 2)}")
    assert.has_error(function() L.Dense{units = 2, weights = 3} end,
      "Dense: weights must be a list of tensors (or nested tables). Received: weights=3")
    local d = L.Dense{units = 2, weights = {keras.zeros({3, 2})}, name = "dw"}
    assert.has_error(function() d(L.Input{shape = {3}}) end,
      "Dense: weights has 1 tensor(s) but layer 'dw' has 2 weight(s)")
    local d2 = L.Dense{units = 2, weights = {keras.zeros({4, 2}), keras.zeros({2})}, name = "dw2"}
    assert.has_error(function() d2(L.Input{shape = {3}}) end,
      "Dense: weights[1] has shape (4, 2), but weight 'kernel' of layer 'dw2' has shape (3, 2)")
  end)
end)

describe("layer.trainable after build", function()
  local function lines(m)
    local out = {}
    m:summary(function(s) out[#out + 1] = s end)
    return table.concat(out, "\n")
  end

  it("takes effect at the next compile; summary counts it at once; true unfreezes", function()
    local x = L.Input{shape = {2}}
    local d1 = L.Dense{units = 2, kernel_initializer = "ones"}
    local d2 = L.Dense{units = 1, kernel_initializer = "ones"}
    local m = model(x, d2(d1(x)))
    local X, Y = keras.array({{1, 2}, {3, 4}}), keras.array({{1}, {0}})
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.01}, loss = "mse"}
    d1.trainable = false
    assert.matches("Trainable params: 3\nNon%-trainable params: 6", lines(m))
    local w0 = d1:get_weights()[1]:totable()
    m:train_on_batch(X, Y) -- compiled while trainable: d1 still trains (Keras)
    assert.are_not.same(w0, d1:get_weights()[1]:totable())
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.01}, loss = "mse"}
    local w1, v1 = d1:get_weights()[1]:totable(), d2:get_weights()[1]:totable()
    m:fit(X, Y, {epochs = 2, verbose = 0})
    assert.are.same(w1, d1:get_weights()[1]:totable())
    assert.are_not.same(v1, d2:get_weights()[1]:totable())
    d1.trainable = true
    assert.matches("Trainable params: 9\nNon%-trainable params: 0", lines(m))
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.01}, loss = "mse"}
    m:fit(X, Y, {epochs = 1, verbose = 0})
    assert.are_not.same(w1, d1:get_weights()[1]:totable())
  end)
end)

describe("the ops behind them refuse bad inputs by message", function()
  local K = keras.backend
  it("reg_terms, global_max_pool, masked_mean", function()
    assert.has_error(function() K._apply("reg_terms", {keras.ones({5, 2}), keras.array({{1, 7}})}) end,
      "reg_terms: id 7 at position 2 is not an integer in [0, 5]")
    assert.has_error(function() K._apply("reg_terms", {keras.ones({5, 2}), keras.array({{0.5}})}) end,
      "reg_terms: id 0.5 at position 1 is not an integer in [0, 5]")
    assert.has_error(function()
      K._apply("reg_terms", {keras.ones({5, 2}), sparse.csr_matrix(keras.ones({2, 4}))})
    end, "reg_terms: the csr rows input has 4 columns for a weight of 5 rows")
    assert.has_error(function() K._apply("global_max_pool", {keras.ones({2, 3})}) end,
      "global_max_pool: input must have shape (batch, steps, features), got (2 x 3)")
    assert.has_error(function() K._apply("masked_mean", {keras.ones({2, 3, 2}), keras.ones({2, 4})}) end,
      "masked_mean: the mask's ids have shape (2 x 4), expected (batch, steps) of (2 x 3 x 2)")
    assert.has_error(function()
      K._apply("masked_mean", {keras.ones({2, 3, 2}), sparse.csr_matrix(keras.ones({2, 3}))})
    end, "masked_mean: inputs must be dense, got default and csr")
  end)
end)
