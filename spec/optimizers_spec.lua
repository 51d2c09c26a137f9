-- spec/optimizers_spec.lua: keras.optimizers through Lua: the tutorial SGD vector, lazy vs
-- non-lazy for every optimizer, options and their errors.
local keras = require("keras")
local S = require("support")
local opt = keras.optimizers
local sparse = keras.sparse

local function rsp(rows, idx, shape, dtype)
  return sparse.row_sparse_array{data = rows, indices = idx, shape = shape, dtype = dtype}
end
local function dense(t) return t.stype == "default" and t:totable() or t:tostype("default"):totable() end

describe("SGD tutorial vector", function()
  it("updates only rows 2 and 3 of a row_sparse weight and its momentum", function()
    local w = rsp({{1, 1}, {1, 1}, {1, 1}, {1, 1}}, {1, 2, 3, 4}, {4, 2})
    local g = rsp({{1, 2}, {4, 5}}, {2, 3}, {4, 2})
    local sgd = opt.SGD{learning_rate = 0.01, momentum = 0.01}
    local s = sgd:create_state(w)
    sgd:update(w, g, s)
    S.assert_near(dense(w), {{1, 1}, {0.99, 0.98}, {0.96, 0.95}, {1, 1}}, 1e-6)
    S.assert_near(s.momentum:totable(), {{0, 0}, {-0.01, -0.02}, {-0.04, -0.05}, {0, 0}}, 1e-6)
    assert.are.equal(s[1], s.momentum)
    assert.are.equal(1, s.t)
  end)
end)

-- Dense reference of every rule (kl/optim.h), per element, float64; decay as Keras 2
-- (lr / (1 + decay * iterations), iterations = t - 1), Ftrl as TensorFlow's (n^-power, l2).
local function reference(kind, o, w, g, st, t)
  local lr, wd = o.learning_rate * (1 / (1 + (o.decay or 0) * (t - 1))), o.weight_decay or 0
  local l1 = o.lamda1 or o.l1_regularization_strength
  local p = -(o.learning_rate_power or -0.5)
  local function P(n) return p == 0.5 and math.sqrt(n) or n ^ p end
  for i = 1, #w do
    for j = 1, #w[i] do
      local gw = g[i][j] * (o.rescale_grad or 1)
      if kind ~= "ftrl" then gw = gw + wd * w[i][j] end
      if kind == "sgd" then
        st[1][i][j] = o.momentum * st[1][i][j] - lr * gw
        w[i][j] = w[i][j] + st[1][i][j]
      elseif kind == "adam" then
        local lrt = lr * math.sqrt(1 - o.beta_2 ^ t) / (1 - o.beta_1 ^ t)
        st[1][i][j] = o.beta_1 * st[1][i][j] + (1 - o.beta_1) * gw
        st[2][i][j] = o.beta_2 * st[2][i][j] + (1 - o.beta_2) * gw * gw
        w[i][j] = w[i][j] - lrt * st[1][i][j] / (math.sqrt(st[2][i][j]) + o.epsilon)
      elseif kind == "adagrad" then
        st[1][i][j] = st[1][i][j] + gw * gw
        w[i][j] = w[i][j] - lr * gw / (math.sqrt(st[1][i][j]) + o.epsilon)
      elseif kind == "rmsprop" then
        st[1][i][j] = o.rho * st[1][i][j] + (1 - o.rho) * gw * gw
        w[i][j] = w[i][j] - lr * gw / (math.sqrt(st[1][i][j]) + o.epsilon)
      elseif kind == "ftrl" then
        local z, n = st[1][i][j], st[2][i][j]
        z = z + gw - (P(n + gw * gw) - P(n)) * w[i][j] / lr
        n = n + gw * gw
        st[1][i][j], st[2][i][j] = z, n
        if math.abs(z) > l1 then
          local sgn = z > 0 and 1 or -1
          w[i][j] = (sgn * l1 - z) / ((o.beta + P(n)) / lr + wd + 2 * (o.l2_regularization_strength or 0))
        else
          w[i][j] = 0
        end
      end
    end
  end
end

local cases = {
  {"sgd", "SGD", {learning_rate = 0.1, momentum = 0.9, weight_decay = 0.01}},
  {"adam", "Adam", {learning_rate = 0.01, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-7, weight_decay = 0.01}},
  {"adagrad", "Adagrad", {learning_rate = 0.1, epsilon = 1e-7, weight_decay = 0.01}},
  {"rmsprop", "RMSprop", {learning_rate = 0.01, rho = 0.9, epsilon = 1e-7, weight_decay = 0.01}},
  {"ftrl", "Ftrl", {learning_rate = 0.1, lamda1 = 0.01, beta = 1}},
  {"sgd", "SGD", {learning_rate = 0.1, momentum = 0.9, weight_decay = 0.01, decay = 0.5}, "SGD with decay"},
  {"adam", "Adam", {learning_rate = 0.01, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-7, decay = 0.25},
   "Adam with decay"},
  {"ftrl", "Ftrl", {learning_rate = 0.1, l1_regularization_strength = 0.01, l2_regularization_strength = 0.5,
   learning_rate_power = -0.75, initial_accumulator_value = 0.1, beta = 0, decay = 0.1},
   "Ftrl with Keras' options"},
}

local function copy2(t)
  local r = {}
  for i, row in ipairs(t) do r[i] = {table.unpack(row)} end
  return r
end

for _, c in ipairs(cases) do
  local kind, cls, o = c[1], c[2], c[3]
  local st0 = o.initial_accumulator_value or 0 -- Ftrl's n starts there, other states at 0
  local function zero_states(s)
    local st = {}
    for k = 1, #s do
      local v = (kind == "ftrl" and k == 2) and st0 or 0
      st[k] = {{v, v}, {v, v}, {v, v}, {v, v}, {v, v}}
    end
    return st
  end
  describe(c[4] or cls, function()
    local w0 = {{0.5, -0.25}, {1, 2}, {-1, 0.75}, {0.125, -2}, {3, 1}}
    local gr = {{0.5, -1}, {2, 0.25}}
    local gidx = {2, 4}
    local gdense = {{0, 0}, {0.5, -1}, {0, 0}, {2, 0.25}, {0, 0}}

    local function run(lazy, steps)
      local oo = {}
      for k, v in pairs(o) do oo[k] = v end
      oo.lazy_update = lazy
      local op = opt[cls](oo)
      local w = keras.array(w0, {dtype = "float64"})
      local s = op:create_state(w)
      for _ = 1, steps do op:update(w, rsp(gr, gidx, {5, 2}, "float64"), s) end
      return w, s
    end

    it("lazy: rows absent from the gradient are untouched in weight and states", function()
      local w, s = run(true, 3)
      local wt = w:totable()
      local st = zero_states(s)
      for _, r in ipairs({1, 3, 5}) do
        assert.are.same(w0[r], wt[r])
        for k = 1, #s do assert.are.same(st[k][r], s[k]:totable()[r]) end
      end
      -- rows in the gradient follow the dense rule on those rows
      local ref = copy2(w0)
      for t = 1, 3 do reference(kind, o, ref, gdense, st, t) end
      for _, r in ipairs({2, 4}) do S.assert_near(wt[r], ref[r], 1e-12) end
    end)

    it("non-lazy equals the dense update with the densified gradient", function()
      local w, s = run(false, 3)
      local oo = {}
      for k, v in pairs(o) do oo[k] = v end
      local op = opt[cls](oo)
      local wd = keras.array(w0, {dtype = "float64"})
      local sd = op:create_state(wd)
      for _ = 1, 3 do op:update(wd, keras.array(gdense, {dtype = "float64"}), sd) end
      assert.are.same(wd:totable(), w:totable())
      for k = 1, #s do assert.are.same(sd[k]:totable(), s[k]:totable()) end
      local ref, st = copy2(w0), zero_states(s)
      for t = 1, 3 do reference(kind, o, ref, gdense, st, t) end
      S.assert_near(w:totable(), ref, 1e-12)
    end)

    it("config() reports the options", function()
      local cfg = opt[cls](o):get_config()
      assert.are.equal(cls, cfg.name)
      assert.are.equal(o.learning_rate, cfg.learning_rate)
      assert.is_true(cfg.lazy_update)
    end)
  end)
end

describe("optimizer options", function()
  it("rejects bad values and unknown keys in Keras style", function()
    assert.has_error(function() opt.SGD{learning_rate = -1} end,
      "SGD: learning_rate must be >= 0. Received: learning_rate=-1")
    assert.has_error(function() opt.SGD{beta_1 = 0.5} end, "SGD: unknown option 'beta_1'")
    assert.has_error(function() opt.SGD{momentum = "x"} end, "SGD: option 'momentum' must be a number (got string)")
  end)
  it("resolves names and rejects unknown ones", function()
    assert.are.equal("Adam", opt.get("adam"):get_config().name)
    assert.are.equal("RMSprop", opt.get("RMSprop"):get_config().name)
    local ok, err = pcall(opt.get, "adamw")
    assert.is_false(ok)
    assert.matches("unknown optimizer 'adamw'", err, 1, true)
  end)
  it("set_learning_rate validates and keeps the old value on error", function()
    local o = opt.SGD{}
    o:set_learning_rate(0.5)
    assert.are.equal(0.5, o:get_learning_rate())
    assert.has_error(function() o:set_learning_rate(-2) end)
    assert.are.equal(0.5, o:get_learning_rate())
  end)
  it("update checks shapes and the state", function()
    local o = opt.SGD{momentum = 0.5}
    local w = keras.ones({4, 2})
    local ok, err = pcall(o.update, o, w, keras.ones({3, 2}), o:create_state(w))
    assert.is_false(ok)
    assert.matches("does not match", err, 1, true)
    assert.has_error(function() o:update(w, keras.ones({4, 2})) end,
      "SGD.update: state is missing (use opt:create_state(weight))")
  end)
end)

describe("Ftrl options (Keras' names)", function()
  it("takes Keras' names, MXNet's lamda1 as an alias", function()
    assert.are.equal(0.5, opt.Ftrl{lamda1 = 0.5}:get("l1_regularization_strength"))
    local cfg = opt.Ftrl{l1_regularization_strength = 0.25, l2_regularization_strength = 0.5,
      learning_rate_power = -1, initial_accumulator_value = 0.125}:get_config()
    assert.are.equal(0.25, cfg.l1_regularization_strength)
    assert.are.equal(0.5, cfg.l2_regularization_strength)
    assert.are.equal(-1, cfg.learning_rate_power)
    assert.are.equal(0.125, cfg.initial_accumulator_value)
    assert.is_nil(cfg.lamda1)
    assert.has_error(function() opt.Ftrl{learning_rate_power = 0.5} end,
      "Ftrl: learning_rate_power must be <= 0. Received: learning_rate_power=0.5")
    assert.has_error(function() opt.Ftrl{l2_regularization_strength = -1} end,
      "Ftrl: l2_regularization_strength must be >= 0. Received: l2_regularization_strength=-1")
    assert.has_error(function() opt.Ftrl{initial_accumulator_value = -0.1} end,
      "Ftrl: initial_accumulator_value must be >= 0. Received: initial_accumulator_value=-0.1")
    assert.has_error(function() opt.SGD{lamda1 = 1} end, "SGD: unknown option 'lamda1'")
  end)
  it("initial_accumulator_value is n's start", function()
    local s = opt.Ftrl{initial_accumulator_value = 0.1}:create_state(keras.zeros({2, 2}))
    assert.are.same({{0, 0}, {0, 0}}, s.z:totable())
    S.assert_near(s.n:totable(), {{0.1, 0.1}, {0.1, 0.1}}, 1e-7)
  end)
end)

describe("decay", function()
  it("fit steps with learning_rate / (1 + decay * iterations), in the C batch loop", function()
    -- w = 0; x = y = 1; mse gradient 2 (w - 1): step 1 (lr 0.1): w = 0.2; step 2 (lr 0.1 / 2):
    -- w = 0.2 + 0.05 * 1.6 = 0.28
    local inp = keras.layers.Input{shape = {1}, dtype = "float64"}
    local out = keras.layers.Dense{units = 1, use_bias = false, kernel_initializer = "zeros",
      dtype = "float64"}(inp)
    local m = keras.Model{inputs = inp, outputs = out}
    m:compile{optimizer = opt.SGD{learning_rate = 0.1, decay = 1}, loss = "mse"}
    local x = keras.array({{1}, {1}}, {dtype = "float64"})
    m:fit(x, x, {batch_size = 1, epochs = 1, shuffle = false, verbose = 0})
    S.assert_near(m:get_weights()[1]:totable(), {{0.28}}, 1e-12)
    assert.are.equal(1, m.optimizer:get("decay"))
    assert.has_error(function() opt.Adam{decay = -1} end, "Adam: decay must be >= 0. Received: decay=-1")
  end)
end)
