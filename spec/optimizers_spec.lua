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

-- Dense reference of every rule (kl/optim.h), per element, float64.
local function reference(kind, o, w, g, st, t)
  local lr, wd = o.learning_rate, o.weight_decay or 0
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
        z = z + gw - (math.sqrt(n + gw * gw) - math.sqrt(n)) * w[i][j] / lr
        n = n + gw * gw
        st[1][i][j], st[2][i][j] = z, n
        if math.abs(z) > o.lamda1 then
          local sgn = z > 0 and 1 or -1
          w[i][j] = (sgn * o.lamda1 - z) / ((o.beta + math.sqrt(n)) / lr + wd)
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
}

local function copy2(t)
  local r = {}
  for i, row in ipairs(t) do r[i] = {table.unpack(row)} end
  return r
end

for _, c in ipairs(cases) do
  local kind, cls, o = c[1], c[2], c[3]
  describe(cls, function()
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
      for _, r in ipairs({1, 3, 5}) do
        assert.are.same(w0[r], wt[r])
        for k = 1, #s do assert.are.same({0, 0}, s[k]:totable()[r]) end
      end
      -- rows in the gradient follow the dense rule on those rows
      local ref, st = copy2(w0), {}
      for k = 1, #s do st[k] = {{0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}} end
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
      local ref, st = copy2(w0), {}
      for k = 1, #s do st[k] = {{0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}} end
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
