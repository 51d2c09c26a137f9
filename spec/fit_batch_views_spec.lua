-- spec/fit_batch_views_spec.lua: fit without shuffling feeds each batch of a CSR input as a
-- view of the input's buffers (no copy). It must train exactly as copied batches do
-- (train_on_batch over x:slice), leave the input untouched, and leave a model that works
-- once the input is collected (spec/c/test_fit_views.c checks that the plan keeps no view).
-- With 40 columns these fits also take the fused update (the kernel's gradient read from the
-- plan's kept accumulator, spec/c/test_plan_fused.c), which train_on_batch never does: the
-- comparison covers it through the public API, for SGD momentum and Adam.
local keras = require("keras")
local K = keras.backend
local L = keras.layers

local function model_of(units, adam)
  keras.random.seed(5)
  local m = keras.Sequential{L.Input{shape = {40}, sparse = true},
    L.Dense{units = units, sparse_weight = true}}
  local opt = adam and keras.optimizers.Adam{learning_rate = 0.01}
    or keras.optimizers.SGD{learning_rate = 0.05, momentum = 0.9}
  m:compile{optimizer = opt, loss = "mse"}
  return m
end

local function data(n)
  local X = keras.sparse.rand({n, 40}, "csr", 0.2, {seed = 3})
  local y = K.dot(X, keras.range(1, 40):reshape({40, 1})) / 40
  return X, y
end

local function weights_equal(a, b)
  local wa, wb = a:get_weights(), b:get_weights()
  assert.are.equal(#wa, #wb)
  for i = 1, #wa do
    local da, db = K.to_dense(wa[i]):totable(), K.to_dense(wb[i]):totable()
    assert.are.same(da, db) -- exact: the same arithmetic on the same entries
  end
end

describe("fit's CSR batch views", function()
  for _, case in ipairs({{1}, {3}, {1, true}, {3, true}}) do
    local units, adam = case[1], case[2]
    it("train bit for bit as copied batches (Dense units=" .. units .. (adam and ", Adam" or ", SGD")
       .. ")", function()
      local X, y = data(70) -- 70 rows, batch 16: four full batches and one of 6
      local before = K.to_dense(X):totable()
      local a, b = model_of(units, adam), model_of(units, adam)
      if units > 1 then y = K.concatenate({y, y * 2, y - 1}, 2) end
      a:fit(X, y, {batch_size = 16, epochs = 2, shuffle = false, verbose = 0})
      for _ = 1, 2 do
        for first = 1, 70, 16 do
          local last = math.min(first + 15, 70)
          b:train_on_batch(X:slice(first, last), y:slice(first, last))
        end
      end
      weights_equal(a, b)
      assert.are.same(before, K.to_dense(X):totable()) -- the input is not written
    end)
  end

  it("leave a model that predicts, evaluates and fits again once the input is collected", function()
    local m = model_of(1)
    do
      local X, y = data(50)
      m:fit(X, y, {batch_size = 8, epochs = 1, shuffle = false, verbose = 0})
    end
    collectgarbage()
    collectgarbage()
    local X2, y2 = data(20)
    local p = m:predict(X2)
    assert.are.equal(20, p.shape[1])
    local loss = m:evaluate(X2, y2, {verbose = 0})
    assert.is_true(loss == loss) -- a number, not NaN
    m:fit(X2, y2, {batch_size = 8, epochs = 1, shuffle = false, verbose = 0})
  end)
end)
