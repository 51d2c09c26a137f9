-- spec/layers_gradcheck_spec.lua: float64 central-difference gradient checks of every layer
-- of keras.layers (Dense dense/csr input, dense/row_sparse kernel; Embedding dense and
-- sparse_grad; Flatten; Activation; Dropout; Concatenate; GlobalAveragePooling1D; Lambda;
-- Add, Subtract, Multiply, Dot, GlobalMaxPooling1D; the poolings after Embedding{mask_zero};
-- the regularizers' penalties, whole and lazy)
-- through K.gradients: with respect to every weight and to the dense inputs. The loss is
-- sum(R .* layer(x)) for a random R. A row_sparse gradient is checked on its stored entries
-- (rows and values, read from g.indices/g.data) and densified (every element, so rows it
-- does not store must have a zero numeric gradient).
local keras = require("keras")
local K = keras.backend
local L = keras.layers

local H, TOL = 1e-6, 1e-6

local function flat(t, out)
  out = out or {}
  if type(t) ~= "table" then out[#out + 1] = t return out end
  for _, v in ipairs(t) do flat(v, out) end
  return out
end

local function unflat(list, shape)
  local pos = 0
  local function build(d)
    local r = {}
    for i = 1, shape[d] do
      if d == #shape then pos = pos + 1; r[i] = list[pos] else r[i] = build(d + 1) end
    end
    return r
  end
  return build(1)
end

local function arr(list, shape) return keras.array(unflat(list, shape), {dtype = "float64"}) end

local rng = 12345
local function rand(n, lo, hi)
  local r = {}
  for i = 1, n do
    rng = (rng * 1103515245 + 12345) % 2147483648
    r[i] = lo + (hi - lo) * rng / 2147483648
  end
  return r
end

local function numel(shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  return n
end

local function close(num, an, what)
  assert(math.abs(num - an) <= TOL * (1 + math.abs(num)),
    string.format("%s: analytic %.12g, numeric %.12g", what, an, num))
end

-- Checks gradient tensor g against the numeric gradient fd (flat, row-major) of a weight of
-- the given shape: densified everywhere; when row_sparse, also its stored rows and values.
-- Returns the stored rows (1-based) of a row_sparse g.
local function check_grad(g, fd, shape, what)
  assert.are.same(shape, g.shape)
  local dense = flat(g:tostype("default"):totable())
  assert.are.equal(#fd, #dense)
  for k = 1, #fd do close(fd[k], dense[k], what .. " densified [" .. k .. "]") end
  if g.stype ~= "row_sparse" then return nil end
  local rows, vals, w = g.indices:totable(), flat(g.data:totable()), numel(shape) // shape[1]
  assert.are.equal(#rows * w, #vals)
  for k, r in ipairs(rows) do
    if k > 1 then assert(rows[k - 1] < r, what .. ": stored rows not increasing") end
    for j = 1, w do
      close(fd[(r - 1) * w + j], vals[(k - 1) * w + j],
        string.format("%s stored row %d col %d", what, r, j))
    end
  end
  return rows
end

-- Builds y = layer(inputs) on Input nodes of the given shapes (batch dim first, concrete in
-- xs) and checks d sum(R .* y) against central differences for every weight of the layer and
-- every input listed in diff_inputs. Returns {weight index -> stored rows of a sparse grad}.
local function gradcheck(layer, specs, xs, diff_inputs, what)
  local ins, nodes = {}, {}
  for i, s in ipairs(specs) do
    local shape = {}
    for d = 2, #s.shape do shape[d - 1] = s.shape[d] end
    ins[i] = L.Input{shape = shape, sparse = s.sparse, dtype = s.dtype or "float64"}
    nodes[i] = ins[i]
  end
  local y = layer(#ins == 1 and ins[1] or ins)
  local yshape = {xs[1].shape[1]}
  for d = 2, #y.shape do yshape[d] = y.shape[d] end
  local R = arr(rand(numel(yshape), -1, 1), yshape)
  local loss = K.sum(y * R)
  local vars = {}
  for i, w in ipairs(layer.weights) do vars[i] = w end
  for _, i in ipairs(diff_inputs or {}) do vars[#vars + 1] = nodes[i] end
  local grads = K.func(nodes, K.gradients(loss, vars))(table.unpack(xs))
  local f = K.func(nodes, loss)
  local function value(x) return f(table.unpack(x)):item() end
  local sparse_rows = {}
  -- weights: perturbed through set_weights
  local w0 = layer:get_weights()
  for i = 1, #w0 do
    local shape = w0[i].shape
    local base = flat(w0[i]:tostype("default"):totable())
    local fd = {}
    for k = 1, #base do
      local list = {}
      for j = 1, #w0 do list[j] = w0[j] end
      local v = base[k]
      base[k] = v + H
      list[i] = arr(base, shape)
      layer:set_weights(list)
      local fp = value(xs)
      base[k] = v - H
      list[i] = arr(base, shape)
      layer:set_weights(list)
      local fm = value(xs)
      base[k] = v
      fd[k] = (fp - fm) / (2 * H)
    end
    layer:set_weights(w0)
    sparse_rows[i] = check_grad(grads[i], fd, shape, string.format("%s weight %d", what, i))
  end
  -- dense inputs: perturbed directly
  for n, i in ipairs(diff_inputs or {}) do
    local shape = xs[i].shape
    local base = flat(xs[i]:totable())
    local fd = {}
    for k = 1, #base do
      local x = {table.unpack(xs)}
      local v = base[k]
      base[k] = v + H
      x[i] = arr(base, shape)
      local fp = value(x)
      base[k] = v - H
      x[i] = arr(base, shape)
      local fm = value(x)
      base[k] = v
      fd[k] = (fp - fm) / (2 * H)
    end
    check_grad(grads[#w0 + n], fd, shape, string.format("%s input %d", what, i))
  end
  return sparse_rows
end

local function dense(shape, lo, hi) return arr(rand(numel(shape), lo or -1, hi or 1), shape) end

describe("layer gradients (float64 central differences)", function()
  it("Dense on a dense input, each activation, with and without bias", function()
    for _, act in ipairs({"linear", "relu", "sigmoid", "tanh", "softmax", "exp"}) do
      local x = dense({3, 4})
      gradcheck(L.Dense{units = 3, activation = act, dtype = "float64",
        bias_initializer = "normal"}, {{shape = {3, 4}}}, {x}, {1}, "Dense " .. act)
    end
    gradcheck(L.Dense{units = 2, use_bias = false, dtype = "float64"}, {{shape = {3, 4}}},
      {dense({3, 4})}, {1}, "Dense no bias")
  end)

  it("Dense on a csr input: dense kernel, and row_sparse kernel (stored rows = used columns)", function()
    local x = keras.sparse.csr_matrix{data = {0.5, -1.5, 2, 0.25, -0.75}, indices = {1, 4, 2, 4, 6},
      indptr = {1, 3, 3, 6}, shape = {3, 6}, dtype = "float64"}
    gradcheck(L.Dense{units = 3, activation = "tanh", dtype = "float64"},
      {{shape = {3, 6}, sparse = true}}, {x}, nil, "Dense csr")
    local rows = gradcheck(L.Dense{units = 3, activation = "sigmoid", sparse_weight = true,
      dtype = "float64"}, {{shape = {3, 6}, sparse = true}}, {x}, nil, "Dense csr sparse_weight")
    assert.are.same({1, 2, 4, 6}, rows[1])
    -- a row_sparse kernel on a dense input: every row has a gradient
    rows = gradcheck(L.Dense{units = 2, sparse_weight = true, dtype = "float64"},
      {{shape = {3, 4}}}, {dense({3, 4})}, {1}, "Dense dense sparse_weight")
    assert.is_true(#rows[1] <= 4)
  end)

  it("Embedding: dense and row_sparse gradients (padding id 0 gets none)", function()
    local ids = keras.array({{1, 3, 0, 3}, {6, 0, 2, 2}}, {dtype = "float64"})
    gradcheck(L.Embedding{input_dim = 6, output_dim = 3, input_length = 4, dtype = "float64"},
      {{shape = {2, 4}}}, {ids}, nil, "Embedding")
    local rows = gradcheck(L.Embedding{input_dim = 6, output_dim = 3, sparse_grad = true,
      dtype = "float64"}, {{shape = {2, 4}}}, {ids}, nil, "Embedding sparse_grad")
    assert.are.same({1, 2, 3, 6}, rows[1])
    -- int64 ids
    local ids64 = keras.array({{2, 2, 5}}, {dtype = "int64"})
    rows = gradcheck(L.Embedding{input_dim = 5, output_dim = 2, sparse_grad = true, dtype = "float64"},
      {{shape = {1, 3}, dtype = "int64"}}, {ids64}, nil, "Embedding int64 ids")
    assert.are.same({2, 5}, rows[1])
  end)

  it("Flatten, Activation, Dropout (inference), GlobalAveragePooling1D, Lambda", function()
    gradcheck(L.Flatten{}, {{shape = {2, 2, 3}}}, {dense({2, 2, 3})}, {1}, "Flatten")
    for _, act in ipairs({"relu", "sigmoid", "tanh", "softmax", "exp", "linear"}) do
      gradcheck(L.Activation{act}, {{shape = {3, 4}}}, {dense({3, 4})}, {1}, "Activation " .. act)
    end
    gradcheck(L.Dropout{rate = 0.5}, {{shape = {3, 4}}}, {dense({3, 4})}, {1}, "Dropout")
    gradcheck(L.GlobalAveragePooling1D{}, {{shape = {2, 4, 3}}}, {dense({2, 4, 3})}, {1}, "GAP1D")
    gradcheck(L.Lambda{function(x) return K.log(K.square(x) + 1) * K.sigmoid(x) end},
      {{shape = {3, 4}}}, {dense({3, 4})}, {1}, "Lambda")
  end)

  it("Concatenate along the last and the first feature axis", function()
    gradcheck(L.Concatenate{}, {{shape = {3, 2}}, {shape = {3, 4}}}, {dense({3, 2}), dense({3, 4})},
      {1, 2}, "Concatenate axis -1")
    gradcheck(L.Concatenate{axis = 2}, {{shape = {2, 1, 3}}, {shape = {2, 2, 3}}},
      {dense({2, 1, 3}), dense({2, 2, 3})}, {1, 2}, "Concatenate axis 2")
  end)

  it("Add, Subtract, Multiply (also broadcast across ranks), Dot on 2-d and 3-d inputs", function()
    for _, cls in ipairs({"Add", "Subtract", "Multiply"}) do
      gradcheck(L[cls]{}, {{shape = {3, 4}}, {shape = {3, 4}}}, {dense({3, 4}), dense({3, 4})}, {1, 2}, cls)
    end
    gradcheck(L.Add{}, {{shape = {3, 4}}, {shape = {3, 4}}, {shape = {3, 4}}},
      {dense({3, 4}), dense({3, 4}), dense({3, 4})}, {1, 2, 3}, "Add of 3")
    gradcheck(L.Multiply{}, {{shape = {2, 3}}, {shape = {2, 4, 3}}}, {dense({2, 3}), dense({2, 4, 3})},
      {1, 2}, "Multiply (b, 3) by (b, 4, 3)")
    gradcheck(L.Dot{axes = 2}, {{shape = {3, 4}}, {shape = {3, 4}}}, {dense({3, 4}), dense({3, 4})},
      {1, 2}, "Dot 2-d")
    gradcheck(L.Dot{axes = -1, normalize = true}, {{shape = {3, 4}}, {shape = {3, 4}}},
      {dense({3, 4}), dense({3, 4})}, {1, 2}, "Dot normalize")
    gradcheck(L.Dot{axes = 3}, {{shape = {2, 3, 4}}, {shape = {2, 5, 4}}}, {dense({2, 3, 4}), dense({2, 5, 4})},
      {1, 2}, "Dot 3-d axes 3")
    gradcheck(L.Dot{axes = {3, 2}}, {{shape = {2, 3, 4}}, {shape = {2, 4, 5}}},
      {dense({2, 3, 4}), dense({2, 4, 5})}, {1, 2}, "Dot 3-d axes {3, 2}")
    gradcheck(L.Dot{axes = 2}, {{shape = {2, 4, 3}}, {shape = {2, 4, 5}}}, {dense({2, 4, 3}), dense({2, 4, 5})},
      {1, 2}, "Dot 3-d axes 2")
    gradcheck(L.Dot{axes = {2, 3}}, {{shape = {2, 4}}, {shape = {2, 3, 4}}}, {dense({2, 4}), dense({2, 3, 4})},
      {1, 2}, "Dot 2-d with 3-d")
  end)

  it("GlobalMaxPooling1D (the gradient goes to each max)", function()
    gradcheck(L.GlobalMaxPooling1D{}, {{shape = {2, 4, 3}}}, {dense({2, 4, 3})}, {1}, "GMP1D")
  end)

  -- Embedding{mask_zero = true} then a pooling layer, as one layer for gradcheck.
  local function masked(emb, pool)
    return setmetatable({weights = emb.weights,
      get_weights = function() return emb:get_weights() end,
      set_weights = function(_, list) emb:set_weights(list) end},
      {__call = function(_, x) return pool(emb(x)) end})
  end

  it("GlobalAveragePooling1D and GlobalMaxPooling1D after Embedding{mask_zero = true}", function()
    local ids = keras.array({{1, 3, 0, 3}, {0, 0, 0, 0}, {6, 0, 2, 2}}, {dtype = "float64"})
    for _, sg in ipairs({false, true}) do
      for _, pool in ipairs({"GlobalAveragePooling1D", "GlobalMaxPooling1D"}) do
        local emb = L.Embedding{input_dim = 6, output_dim = 3, mask_zero = true, sparse_grad = sg,
          dtype = "float64"}
        local rows = gradcheck(masked(emb, L[pool]{}), {{shape = {3, 4}}}, {ids}, nil,
          pool .. " masked" .. (sg and " sparse_grad" or ""))
        if sg then assert.are.same({1, 2, 3, 6}, rows[1]) end
      end
    end
  end)

  it("regularizer penalties: the whole weight, and the rows a batch names", function()
    local reg = keras.regularizers.l1_l2{l1 = 0.3, l2 = 0.7}
    local W = dense({5, 2}, 0.1, 1)
    local wd = W:totable()
    for i = 1, 5 do for j = 1, 2 do if i % 2 == 0 then wd[i][j] = -wd[i][j] end end end
    W = keras.array(wd, {dtype = "float64"})
    local ids = keras.array({{2, 0, 2}, {5, 1, 0}}, {dtype = "float64"})
    local csr = keras.sparse.csr_matrix{data = {1, 2, 3}, indices = {4, 2, 4}, indptr = {1, 2, 4},
      shape = {2, 5}, dtype = "float64"}
    for _, case in ipairs({{nil, "whole"}, {ids, "ids"}, {csr, "csr"}}) do
      local rows = case[1]
      local ph = rows and K.placeholder{shape = {-1, rows.shape[2]}, sparse = rows.stype == "csr",
        dtype = "float64"}
      local gs = require("keras.symbolic").default_graph()
      local wn = require("keras.symbolic").new_node(gs, gs:var(W), {}) -- W as a graph variable
      local g = K.func(ph and {ph} or {}, K.gradients(reg:penalty(wn, ph), {W}))(rows)[1]
      local base, fd = flat(wd), {}
      for k = 1, #base do
        local v = base[k]
        base[k] = v + H
        local fp = reg:penalty(arr(base, {5, 2}), rows):item()
        base[k] = v - H
        local fm = reg:penalty(arr(base, {5, 2}), rows):item()
        base[k] = v
        fd[k] = (fp - fm) / (2 * H)
      end
      check_grad(g, fd, {5, 2}, "penalty " .. case[2])
    end
  end)
end)
