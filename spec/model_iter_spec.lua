-- spec/model_iter_spec.lua: Model fit/evaluate/predict over data iterators with metrics,
-- train_on_batch metrics from the step's own forward, and the multi-output error.
local keras = require("keras")
local L = keras.layers
local du = keras.data_utils
local S = require("support")

local function errmsg(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error")
  return err
end

local function data(n, seed)
  keras.random.seed(seed)
  local X = keras.sparse.rand({n, 12}, "csr", 0.4, {seed = seed})
  local xt = X:tostype("default"):totable()
  local y = {}
  for i = 1, n do
    local s = 0
    for j = 1, 12 do s = s + xt[i][j] * (j % 3 - 1) end
    y[i] = s > 0 and 1 or 0
  end
  return X, keras.array(y)
end

local function model(seed)
  keras.random.seed(seed or 7)
  local m = keras.Sequential{L.Input{shape = {12}, sparse = true},
    L.Dense{units = 4, activation = "relu"}, L.Dense{units = 1, activation = "sigmoid"}}
  m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.2}, loss = "binary_crossentropy",
    metrics = {"accuracy", "mse"}}
  return m
end

describe("fit over an iterator", function()
  it("reports the compiled metrics, equal to the in-memory fit over the same batches", function()
    local X, y = data(64, 3)
    local it = du.ArrayIterator{data = X, label = y, batch_size = 16, shuffle = false}
    local m1, m2 = model(), model()
    local h1 = m1:fit(it, nil, {epochs = 3, verbose = 0})
    local h2 = m2:fit(X, y, {epochs = 3, verbose = 0, batch_size = 16, shuffle = false})
    assert.are.equal(3, #h1.history.accuracy)
    assert.are.equal(3, #h1.history.mse)
    S.assert_near(h1.history.loss, h2.history.loss, 1e-5)
    S.assert_near(h1.history.accuracy, h2.history.accuracy, 1e-6)
    S.assert_near(h1.history.mse, h2.history.mse, 1e-5)
  end)
  it("takes an iterator as validation_data", function()
    local X, y = data(48, 5)
    local it = du.ArrayIterator{data = X, label = y, batch_size = 16}
    local m = model()
    local h = m:fit(X, y, {epochs = 2, verbose = 0, validation_data = it})
    assert.are.equal(2, #h.history.val_loss)
    assert.are.equal(2, #h.history.val_accuracy)
    local vl, vm = m:evaluate(X, y)
    S.assert_near(h.history.val_loss[2], vl, 1e-5)
    S.assert_near(h.history.val_accuracy[2], vm.accuracy, 1e-6)
  end)
  it("passes running metrics to on_batch_end", function()
    local X, y = data(32, 6)
    local it = du.ArrayIterator{data = X, label = y, batch_size = 8}
    local seen = {}
    local cb = keras.callbacks.LambdaCallback{on_batch_end = function(batch, logs)
      seen[#seen + 1] = logs
    end}
    model():fit(it, nil, {epochs = 1, verbose = 0, callbacks = {cb}})
    assert.are.equal(4, #seen)
    assert.is_number(seen[4].accuracy)
    assert.is_number(seen[4].mse)
    assert.are.equal(32, seen[4].seen)
  end)
end)

describe("evaluate and predict over an iterator", function()
  it("match the in-memory data, pad rows excluded", function()
    local X, y = data(50, 8) -- 50 rows, batch 16: the last batch is padded with 14 rows
    local m = model()
    m:fit(X, y, {epochs = 2, verbose = 0})
    for _, h in ipairs({"pad", "discard"}) do
      local it = du.ArrayIterator{data = X, label = y, batch_size = 16, last_batch_handle = h}
      local loss, mt = m:evaluate(it)
      local n = h == "pad" and 50 or 48
      local loss2, mt2 = m:evaluate(X:slice(1, n), y:slice(1, n), {batch_size = 16})
      S.assert_near(loss, loss2, 1e-5)
      S.assert_near(mt.accuracy, mt2.accuracy, 1e-6)
      S.assert_near(mt.mse, mt2.mse, 1e-5)
      local p = m:predict(it)
      assert.are.same({n, 1}, p.shape)
      S.assert_near(p:totable(), m:predict(X:slice(1, n)):totable(), 1e-6)
    end
  end)
  it("concatenates more than 64 batches", function()
    local X, y = data(70, 9)
    local m = model()
    local it = du.ArrayIterator{data = X, label = y, batch_size = 1}
    S.assert_near(m:predict(it):totable(), m:predict(X):totable(), 1e-6)
  end)
  it("refuses y with an iterator, and an iterator without labels", function()
    local X, y = data(8, 1)
    local m = model()
    local it = du.ArrayIterator{data = X, label = y, batch_size = 4}
    assert.are.equal("Model.evaluate: y must be nil when x is a data iterator",
      errmsg(function() return m:evaluate(it, y) end))
    local nolabel = du.ArrayIterator{data = X, batch_size = 4}
    assert.are.equal("Model.evaluate: the iterator has no label",
      errmsg(function() return m:evaluate(nolabel) end))
    assert.are.same({8, 1}, m:predict(nolabel).shape)
  end)
end)

describe("train_on_batch", function()
  it("returns metrics from the training forward itself (same dropout mask as the loss)", function()
    keras.random.seed(11)
    local m = keras.Sequential{L.Input{shape = {6}}, L.Dropout{rate = 0.5, seed = 3},
      L.Dense{units = 1, kernel_initializer = "ones"}}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.01}, loss = "mse", metrics = {"mse"}}
    local x, y = keras.random.normal({16, 6}), keras.zeros({16, 1})
    local eval_before = m:test_on_batch(x, y)
    local loss, mt = m:train_on_batch(x, y)
    -- metrics from a separate inference forward would equal eval_before, not the loss
    S.assert_near(mt.mse, loss, 1e-6)
    assert.is_true(math.abs(loss - eval_before) > 1e-3)
  end)
  it("returns an empty metrics table without compiled metrics", function()
    local m = keras.Sequential{L.Input{shape = {2}}, L.Dense{units = 1}}
    m:compile{optimizer = "sgd", loss = "mse"}
    local loss, mt = m:train_on_batch(keras.ones({2, 2}), keras.ones({2, 1}))
    assert.is_number(loss)
    assert.are.same({}, mt)
  end)
end)

describe("multiple outputs", function()
  it("train on in-memory data only (an iterator yields one y; multi_output_spec has the rest)", function()
    local x = L.Input{shape = {3}}
    local a, b = L.Dense{units = 1}(x), L.Dense{units = 2}(x)
    local m = keras.Model{inputs = x, outputs = {a, b}}
    m:compile{optimizer = "sgd", loss = "mse"}
    local it = keras.data_utils.ArrayIterator{data = keras.ones({4, 3}), label = keras.ones({4}), batch_size = 2}
    assert.are.equal("Model.fit: a model with several outputs trains on in-memory data (an iterator yields one y)",
      errmsg(function() return m:fit(it, nil, {verbose = 0}) end))
  end)
end)
