-- spec/backend_math_spec.lua: K.argmax / t:argmax, K.one_hot, keras.utils.to_categorical,
-- K.minimum / maximum / clip / pow on every stype against dense references computed here,
-- their storage types, finite-difference gradients of the differentiable ones (eager through
-- keras.autograd-free K.gradients graphs), symbolic use, K.get_value / set_value, errors.
local keras = require("keras")
local S = require("support")
local K = keras.backend

local STYPES = {"default", "csr", "row_sparse"}
local NAN = 0 / 0

local function mk(t, stype, dtype)
  return keras.array(t, {dtype = dtype or "float64"}):tostype(stype or "default")
end

-- a 3 x 4 table with zeros (so sparse operands store some entries, not all) and ties
local A = {{0, -2, 3, 3}, {0.5, 0, 0, -1}, {0, 0, 0, 0}}
local B = {{1, -3, 0, 4}, {0.5, 2, 0, -2}, {-1, 0, 0.25, 0}}

local function ref(a, f) return S.map(a, f) end

describe("K.argmax", function()
  it("gives int64, 1-based indices along the last axis by default; ties take the first", function()
    local r = K.argmax(keras.array({{1, 5, 5}, {7, 2, 3}}))
    assert.are.equal("int64", r.dtype)
    assert.are.same({2}, r.shape)
    assert.are.same({2, 1}, r:totable())
  end)
  it("takes axis 1, 2, -1 and 3-d input", function()
    local x = keras.array({{1, 5, 5}, {7, 2, 9}})
    assert.are.same({2, 1, 2}, K.argmax(x, 1):totable())
    assert.are.same({2, 3}, K.argmax(x, 2):totable())
    assert.are.same({2, 3}, K.argmax(x, -1):totable())
    assert.are.same({2, 3}, K.argmax(x, 2.0):totable())
    local y = keras.array({{{1, 2}, {3, 0}}, {{0, 0}, {-1, 4}}})
    assert.are.same({{2, 1}, {1, 2}}, K.argmax(y):totable())
    assert.are.same({{2, 1}, {1, 2}}, K.argmax(y, 2):totable())
    assert.are.same({{1, 1}, {1, 2}}, K.argmax(y, 1):totable())
  end)
  it("counts NaN as the largest value, as numpy", function()
    assert.are.same({3, 2}, K.argmax(keras.array({{7, 2, NAN}, {1, NAN, NAN}})):totable())
  end)
  it("of a 1-d tensor is a 0-d int64 (item is a Lua integer)", function()
    local r = K.argmax(keras.array({3, 9, 1}))
    assert.are.equal(0, r.ndim)
    assert.are.equal(2, r:item())
    assert.are.equal("integer", math.type(r:item()))
  end)
  it("of csr and row_sparse equals the dense result (implicit zeros are values)", function()
    for _, st in ipairs(STYPES) do
      for _, axis in ipairs({1, 2}) do
        local want = K.argmax(mk(A), axis):totable()
        assert.are.same(want, K.argmax(mk(A, st), axis):totable(), st .. " axis " .. axis)
      end
    end
    -- row 3 of A is all zeros: index 1; row 2: 0.5 at column 1
    assert.are.same({3, 1, 1}, K.argmax(mk(A, "csr")):totable())
  end)
  it("t:argmax([axis]) is K.argmax", function()
    local x = keras.array({{1, 5, 5}, {7, 2, 9}})
    assert.are.same({2, 3}, x:argmax():totable())
    assert.are.same({2, 1, 2}, x:argmax(1):totable())
  end)
  it("works on graph nodes (K.func)", function()
    local p = K.placeholder{shape = {-1, 3}}
    local f = K.func({p}, K.argmax(p))
    assert.are.same({3, 1}, f(keras.array({{0, 1, 2}, {5, 4, 3}})):totable())
  end)
  it("refuses a scalar, a bad axis and a fractional axis", function()
    assert.matches("argmax: needs at least 1 dimension, got a scalar",
      S.err_of(K.argmax, keras.array(3)))
    assert.matches("argmax: axis 3 out of range", S.err_of(K.argmax, keras.array({{1}}), 3))
    assert.matches("argmax: axis must be an integer. Received: axis=1.5",
      S.err_of(K.argmax, keras.array({{1}}), 1.5))
  end)
end)

describe("K.one_hot", function()
  it("maps ids 1..C to columns and id 0 to a zero row (padding), float32", function()
    local r = K.one_hot(keras.array({2, 0, 3}), 3)
    assert.are.equal("float32", r.dtype)
    assert.are.same({{0, 1, 0}, {0, 0, 0}, {0, 0, 1}}, r:totable())
  end)
  it("takes int64 and 2-d ids: (n, L) -> (n, L, C)", function()
    local r = K.one_hot(keras.array({{1, 2}, {2, 0}}, {dtype = "int64"}), 2)
    assert.are.same({2, 2, 2}, r.shape)
    assert.are.same({{{1, 0}, {0, 1}}, {{0, 1}, {0, 0}}}, r:totable())
  end)
  it("names a bad id and its position", function()
    assert.matches("one_hot: id 4 out of range %[0, 3%] at position 2",
      S.err_of(K.one_hot, keras.array({1, 4}), 3))
    assert.matches("one_hot: id %-1 out of range %[0, 3%] at position 1",
      S.err_of(K.one_hot, keras.array({-1}), 3))
    assert.matches("one_hot: id 1.5 is not an integer at position 1",
      S.err_of(K.one_hot, keras.array({1.5}), 3))
    assert.matches("one_hot: num_classes must be a positive integer. Received: num_classes=0",
      S.err_of(K.one_hot, keras.array({1}), 0))
    assert.matches("one_hot: ids must be dense, got csr",
      S.err_of(K.one_hot, mk({{1, 0}}, "csr"), 2))
  end)
  it("works on graph nodes", function()
    local p = K.placeholder{shape = {-1}}
    local f = K.func({p}, K.one_hot(p, 2))
    assert.are.same({{0, 1}, {1, 0}}, f(keras.array({2, 1})):totable())
  end)
end)

describe("keras.utils.to_categorical", function()
  it("turns labels 1..C into one-hot rows (a list, (n) or (n, 1) tensors)", function()
    local want = {{1, 0, 0}, {0, 0, 1}, {0, 1, 0}}
    assert.are.same(want, keras.utils.to_categorical({1, 3, 2}, 3):totable())
    assert.are.same(want, keras.utils.to_categorical(keras.array({1, 3, 2}), 3):totable())
    assert.are.same(want, keras.utils.to_categorical(keras.array({{1}, {3}, {2}})):totable())
    assert.are.same({{0, 1, 0, 0}}, keras.utils.to_categorical({2}, 4.0):totable())
    assert.are.equal("float32", keras.utils.to_categorical({2}, 4).dtype)
  end)
  it("names a label outside 1..C and its row", function()
    assert.matches("to_categorical: label 0 out of range %[1, 3%] at row 2",
      S.err_of(keras.utils.to_categorical, {1, 0}, 3))
    assert.matches("to_categorical: label 4 out of range %[1, 3%] at row 1",
      S.err_of(keras.utils.to_categorical, {4}, 3))
    assert.matches("to_categorical: label 1.5 is not an integer at row 1",
      S.err_of(keras.utils.to_categorical, {1.5}, 3))
    assert.matches("to_categorical: y must have shape %(n%) or %(n, 1%), got %(1, 2%)",
      S.err_of(keras.utils.to_categorical, keras.array({{1, 2}}), 3))
  end)
end)

-- ------------------------------------------------------------ bounds

local function tmin(x, y) if x ~= x or y ~= y then return NAN end return x < y and x or y end
local function tmax(x, y) if x ~= x or y ~= y then return NAN end return x > y and x or y end

describe("K.minimum / K.maximum of two tensors", function()
  it("equal the dense reference for every stype pair; csr/csr and rsp/rsp keep the stype", function()
    for _, op in ipairs({{"minimum", tmin}, {"maximum", tmax}}) do
      local want = S.zip(A, B, op[2])
      for _, sa in ipairs(STYPES) do
        for _, sb in ipairs(STYPES) do
          local r = K[op[1]](mk(A, sa), mk(B, sb))
          assert.are.same(want, r:totable(), op[1] .. " " .. sa .. ", " .. sb)
          local st = (sa == sb) and sa or "default"
          assert.are.equal(st, r.stype, op[1] .. " " .. sa .. ", " .. sb)
        end
      end
    end
  end)
  it("broadcast dense operands as numpy and propagate NaN", function()
    local r = K.maximum(keras.array({{1, 5}, {-1, 2}}), keras.array({0, 3}))
    assert.are.same({{1, 5}, {0, 3}}, r:totable())
    local n = K.minimum(keras.array({NAN, 1}), keras.array({0, NAN})):totable()
    assert(n[1] ~= n[1] and n[2] ~= n[2], "NaN expected")
  end)
  it("work on int64", function()
    local r = K.minimum(keras.array({3, -4}, {dtype = "int64"}), keras.array({1, 2}, {dtype = "int64"}))
    assert.are.equal("int64", r.dtype)
    assert.are.same({1, -4}, r:totable())
  end)
  it("refuse mismatched dtypes and shapes", function()
    assert.matches("minimum: dtype mismatch %(float64 vs float32%)",
      S.err_of(K.minimum, mk(A), mk(B, "default", "float32")))
    assert.matches("maximum: shapes %(3 x 4%) and %(2%) are not broadcastable",
      S.err_of(K.maximum, mk(A), keras.array({1, 2}, {dtype = "float64"})))
  end)
end)

describe("K.minimum / K.maximum with a number, K.clip", function()
  it("keep a sparse stype only when the bound maps 0 to 0", function()
    for _, st in ipairs(STYPES) do
      for _, c in ipairs({{"minimum", 0.5, tmin}, {"minimum", -0.5, tmin}, {"maximum", -0.5, tmax},
                          {"maximum", 0.5, tmax}}) do
        local r = K[c[1]](mk(A, st), c[2])
        assert.are.same(ref(A, function(v) return c[3](v, c[2]) end), r:totable())
        local keeps = (c[1] == "minimum" and c[2] >= 0) or (c[1] == "maximum" and c[2] <= 0)
        assert.are.equal(keeps and st or "default", r.stype, c[1] .. " " .. c[2] .. " " .. st)
        -- number first is the same
        assert.are.same(r:totable(), K[c[1]](c[2], mk(A, st)):totable())
      end
    end
  end)
  it("clip(x, lo, hi) = min(max(x, lo), hi); sparse when lo <= 0 <= hi", function()
    for _, st in ipairs(STYPES) do
      for _, b in ipairs({{-1.5, 2}, {-0.5, 0.25}, {0.25, 2}, {-3, -1}}) do
        local r = K.clip(mk(A, st), b[1], b[2])
        assert.are.same(ref(A, function(v) return tmin(tmax(v, b[1]), b[2]) end), r:totable())
        local keeps = b[1] <= 0 and b[2] >= 0
        assert.are.equal(keeps and st or "default", r.stype, st .. " " .. b[1] .. ".." .. b[2])
      end
    end
  end)
  it("clip: a max below the min becomes the min (Keras 2); nil is unbounded", function()
    assert.are.same({2, 2, 2}, K.clip(keras.array({1, 2, 3}), 2, 1):totable())
    assert.are.same({1, 2, 2}, K.clip(keras.array({1, 2, 3}), nil, 2):totable())
    assert.are.same({2, 2, 3}, K.clip(keras.array({1, 2, 3}), 2):totable())
    assert.are.same({1, -2}, K.clip(keras.array({1, -2})):totable())
    assert.are.same({1, 2}, K.clip(keras.array({0, 5}, {dtype = "int64"}), 1, 2):totable())
  end)
  it("clip refuses NaN bounds and non-numbers", function()
    assert.matches("clip: the bounds must not be NaN", S.err_of(K.clip, keras.array({1}), NAN, 1))
    assert.matches("clip: min_value must be a number. Received: min_value='a'",
      S.err_of(K.clip, keras.array({1}), "a", 1))
    assert.matches("minimum_scalar: the bound is NaN", S.err_of(K.minimum, keras.array({1}), NAN))
  end)
end)

describe("K.pow", function()
  it("equals the reference; sparse stays sparse for a > 0", function()
    local P = {{0, 4, 9, 0.25}, {1, 0, 0, 16}}
    for _, st in ipairs(STYPES) do
      for _, a in ipairs({2, 0.5, 3, 0, -1}) do
        local r = K.pow(mk(P, st), a)
        assert.are.same(ref(P, function(v) return v ^ a end), r:totable(), st .. " ^ " .. a)
        assert.are.equal(a > 0 and st or "default", r.stype, st .. " ^ " .. a)
      end
    end
  end)
  it("refuses int64 and a tensor exponent", function()
    assert.matches("pow_scalar: int64 is not supported",
      S.err_of(K.pow, keras.array({1}, {dtype = "int64"}), 2))
    assert.matches("pow: the exponent must be a number. Received: a=a tensor",
      S.err_of(K.pow, keras.array({1}), keras.array({2})))
  end)
end)

-- ------------------------------------------------------------ gradients

local H = 1e-6

-- The gradients of sum(R .* f(inputs...)) w.r.t. each input (placeholders fed xs, float64).
local function grads(f, xs, R)
  local ps, vals = {}, {}
  for i, x in ipairs(xs) do
    ps[i] = K.placeholder{shape = x.shape, dtype = "float64"}
    vals[i] = x
  end
  local loss = K.sum(f(table.unpack(ps)) * keras.array(R, {dtype = "float64"}))
  local gs = K.func(ps, K.gradients(loss, ps))(vals)
  for i, g in ipairs(gs) do gs[i] = g:totable() end
  return gs
end

-- d sum(R .* f(x)) / dx by K.gradients against central differences, x float64.
local function gradcheck(f, x_tab, R, what)
  local g = grads(f, {keras.array(x_tab, {dtype = "float64"})}, R)[1]
  local flat_x = {}
  for i, row in ipairs(x_tab) do for j, v in ipairs(row) do flat_x[#flat_x + 1] = {i, j, v} end end
  for _, e in ipairs(flat_x) do
    local function at(d)
      local t = {}
      for i, row in ipairs(x_tab) do t[i] = {table.unpack(row)} end
      t[e[1]][e[2]] = e[3] + d
      local y = f(keras.array(t, {dtype = "float64"})):totable()
      local s = 0
      for i, row in ipairs(y) do
        if type(row) == "table" then for j, v in ipairs(row) do s = s + v * R[i][j] end
        else s = s + row * R[1][i] end
      end
      return s
    end
    local num = (at(H) - at(-H)) / (2 * H)
    local an = g[e[1]][e[2]]
    assert(math.abs(num - an) <= 1e-6 * (1 + math.abs(num)),
      string.format("%s at [%d][%d]: analytic %.12g, numeric %.12g", what, e[1], e[2], an, num))
  end
  return g
end

describe("gradients", function()
  -- points kept away from the kinks (|x - bound| > H)
  local X = {{0.3, -1.2, 2.5}, {-0.7, 1.9, 0.05}}
  local Y = {{1.0, -0.5, 2.0}, {-0.9, 2.5, -0.3}}
  local R = {{0.7, -1.3, 0.4}, {1.1, 0.6, -0.8}}
  it("minimum / maximum w.r.t. either operand, also broadcast", function()
    local y = keras.array(Y, {dtype = "float64"})
    gradcheck(function(x) return K.minimum(x, y) end, X, R, "minimum(x, y)")
    gradcheck(function(x) return K.maximum(x, y) end, X, R, "maximum(x, y)")
    gradcheck(function(x) return K.minimum(y, x) end, X, R, "minimum(y, x)")
    local row = keras.array({0.5, 0.0, 1.0}, {dtype = "float64"})
    gradcheck(function(x) return K.maximum(row, x) end, X, R, "maximum(row, x)")
    -- the broadcast operand sums its gradient over the rows
    local g = grads(function(x, r) return K.maximum(x, r) end,
      {keras.array(X, {dtype = "float64"}), row}, R)[2]
    -- row wins where row >= x: (1,1) 0.5 >= 0.3, (1,2) 0 >= -1.2, (2,1) 0.5 >= -0.7, (2,3) 1 >= 0.05
    S.assert_near(g, {0.7 + 1.1, -1.3, -0.8}, 1e-12)
  end)
  it("ties go to the first operand (TensorFlow)", function()
    local gs = grads(function(a, b) return K.minimum(a, b) end,
      {keras.array({{1, 2}}, {dtype = "float64"}), keras.array({{1, 3}}, {dtype = "float64"})}, {{1, 1}})
    assert.are.same({{1, 1}}, gs[1])
    assert.are.same({{0, 0}}, gs[2])
  end)
  it("minimum / maximum with a number, clip, pow", function()
    gradcheck(function(x) return K.minimum(x, 0.5) end, X, R, "minimum(x, 0.5)")
    gradcheck(function(x) return K.maximum(x, -0.5) end, X, R, "maximum(x, -0.5)")
    gradcheck(function(x) return K.clip(x, -1, 1) end, X, R, "clip(x, -1, 1)")
    local P = {{0.3, 1.2, 2.5}, {0.7, 1.9, 0.05}}
    gradcheck(function(x) return K.pow(x, 3) end, X, R, "pow(x, 3)")
    gradcheck(function(x) return K.pow(x, 0.5) end, P, R, "pow(x, 0.5)")
    gradcheck(function(x) return K.pow(x, -2) end, P, R, "pow(x, -2)")
    local g = gradcheck(function(x) return K.pow(x, 0) end, P, R, "pow(x, 0)")
    assert.are.same({{0, 0, 0}, {0, 0, 0}}, g)
  end)
  it("clip passes the gradient at its bounds (inclusive, as tf.clip_by_value)", function()
    local g = grads(function(x) return K.clip(x, -1, 1) end,
      {keras.array({{-1, 0, 1, 2}}, {dtype = "float64"})}, {{1, 1, 1, 1}})[1]
    assert.are.same({{1, 1, 1, 0}}, g)
  end)
  it("a custom loss built from clip trains (symbolic, inside a model)", function()
    keras.random.seed(3)
    local inp = keras.layers.Input{shape = {2}}
    local out = keras.layers.Dense{units = 1}(inp)
    local m = keras.Model{inputs = inp, outputs = out}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1},
      loss = function(yt, yp) return K.mean(K.square(K.clip(yp, -10, 10) - yt)) end}
    local x = keras.array({{1, 0}, {0, 1}, {1, 1}})
    local y = keras.array({{1}, {2}, {3}})
    local h = m:fit(x, y, {epochs = 30, batch_size = 3, verbose = 0})
    assert(h.history.loss[30] < h.history.loss[1] / 10, "loss did not fall")
  end)
end)

describe("K.get_value / K.set_value", function()
  it("get_value copies (a number for 0-d); set_value writes in place", function()
    local v = K.variable({{1, 2}, {3, 4}})
    local before = K.get_value(v)
    K.set_value(v, {{5, 6}, {7, 8}})
    assert.are.same({{1, 2}, {3, 4}}, before:totable())
    assert.are.same({{5, 6}, {7, 8}}, v:totable())
    K.set_value(v, 2)
    assert.are.same({{2, 2}, {2, 2}}, K.get_value(v):totable())
    K.set_value(v, keras.array({{1, 0}, {0, 1}}))
    assert.are.same({{1, 0}, {0, 1}}, v:totable())
    assert.are.equal(2, K.get_value(K.sum(v)))
    assert.are.equal(3, K.get_value(keras.array(3)))
  end)
  it("set_value keeps a row_sparse variable's stype and a layer weight trains on from it", function()
    local v = K.variable({{0, 0}, {1, 2}}, {stype = "row_sparse"})
    K.set_value(v, {{3, 0}, {0, 0}})
    assert.are.equal("row_sparse", v.stype)
    assert.are.same({{3, 0}, {0, 0}}, v:totable())
    local d = keras.layers.Dense{units = 1, use_bias = false}
    local inp = keras.layers.Input{shape = {2}}
    local m = keras.Model{inputs = inp, outputs = d(inp)}
    K.set_value(d.weights[1], {{2}, {3}})
    assert.are.same({{5}}, m:predict(keras.array({{1, 1}})):totable())
  end)
  it("get_value of a node evaluates it", function()
    local v = K.variable({1, 2})
    assert.are.same({2, 4}, K.get_value(v * 2):totable())
    local p = K.placeholder{shape = {2}}
    assert.truthy(S.err_of(K.get_value, p))
  end)
  it("name the problem", function()
    assert.matches("set_value: value has shape %(3%), the variable has shape %(2%)",
      S.err_of(K.set_value, K.variable({1, 2}), {1, 2, 3}))
    assert.matches("set_value: x must be a tensor", S.err_of(K.set_value, 3, 1))
    assert.matches("get_value: expected a tensor or a graph node. Received: number",
      S.err_of(K.get_value, 3))
  end)
end)
