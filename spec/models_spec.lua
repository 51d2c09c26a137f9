-- spec/models_spec.lua: keras.Model / Sequential: compile, fit (the C batch loop), evaluate,
-- predict, *_on_batch, summary, weights, and every error of the Models section.
local keras = require("keras")
local K = keras.backend
local L = keras.layers
local S = require("support")

local function errmsg(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error")
  return err
end

-- a tiny CSR regression: y = X . w_true
local function csr_data(n, f, seed)
  keras.random.seed(seed or 1)
  local X = keras.sparse.rand({n, f}, "csr", 0.3, {seed = seed or 1})
  local wt = keras.range(1, f):reshape({f, 1}) * 0.1
  return X, K.dot(X, wt)
end

describe("fit", function()
  it("converges on a tiny CSR regression with a row_sparse kernel", function()
    local X, y = csr_data(64, 10)
    local m = keras.Sequential{L.Input{shape = {10}, sparse = true},
      L.Dense{units = 1, sparse_weight = true, use_bias = false, kernel_initializer = "zeros"}}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1, momentum = 0.5}, loss = "mse"}
    local h = m:fit(X, y, {batch_size = 8, epochs = 60, verbose = 0})
    assert.are.equal(60, #h.history.loss)
    assert.is_true(h.history.loss[60] < 1e-3 * h.history.loss[1], tostring(h.history.loss[60]))
    assert.are.equal("row_sparse", m.layers[1].weights[1].stype)
    local loss = m:evaluate(X, y)
    assert.is_true(loss < 1e-3)
  end)
  it("trains the last partial batch (CSR input)", function()
    -- 5 rows, batch 4: the 5th row alone holds feature 3; its weight only moves if the
    -- partial batch is trained on
    local X = keras.sparse.csr_matrix{data = {1, 1, 1, 1, 1}, indices = {1, 2, 1, 2, 3},
      indptr = {1, 2, 3, 4, 5, 6}, shape = {5, 3}}
    local y = keras.array{{1}, {1}, {1}, {1}, {1}}
    local m = keras.Sequential{L.Input{shape = {3}, sparse = true},
      L.Dense{units = 1, use_bias = false, sparse_weight = true, kernel_initializer = "zeros"}}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.5}, loss = "mse"}
    m:fit(X, y, {batch_size = 4, epochs = 1, shuffle = false, verbose = 0})
    local w = m:get_weights()[1]:tostype("default"):totable()
    -- mse over the partial batch of 1: grad = 2 (0 - 1) = -2; w3 = 0.5 * 2 = 1
    S.assert_near(w[3], {1}, 1e-6)
  end)
  it("defers a Sequential without an input shape until the data is seen", function()
    local X, y = csr_data(32, 6, 3)
    local m = keras.Sequential{L.Dense{units = 4, activation = "relu"}, L.Dense{units = 1}}
    m:compile{optimizer = "adam", loss = "mse"}
    local h = m:fit(X, y, {epochs = 2, verbose = 0})
    assert.are.equal(2, #h.history.loss)
    assert.are.same({32, 1}, m:predict(X).shape)
  end)
  it("classifies with sparse_categorical_crossentropy and reports metrics by the compile names", function()
    keras.random.seed(4)
    local n = 90
    local x = keras.random.normal({n, 2})
    local xt, labels = x:totable(), {}
    for i = 1, n do labels[i] = (xt[i][1] > 0 and 1 or 0) + (xt[i][2] > 0 and 2 or 1) end
    local y = keras.array(labels)
    local m = keras.Sequential{L.Input{shape = {2}}, L.Dense{units = 16, activation = "relu"},
      L.Dense{units = 3, activation = "softmax"}}
    m:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.05},
      loss = "sparse_categorical_crossentropy", metrics = {"accuracy", "acc"}}
    local h = m:fit(x, y, {epochs = 40, batch_size = 16, verbose = 0, validation_data = {x, y}})
    assert.is_true(h.history.accuracy[40] > 0.85, tostring(h.history.accuracy[40]))
    assert.are.equal(h.history.accuracy[40], h.history.acc[40])
    assert.is_not_nil(h.history.val_accuracy)
    local loss, mt = m:evaluate(x, y)
    assert.is_true(loss < h.history.loss[1])
    assert.is_true(mt.accuracy > 0.85)
    local p = m:predict(x, {batch_size = 7})
    assert.are.same({n, 3}, p.shape)
  end)
  it("uses binary accuracy for one sigmoid output, and y of shape (n) against (n, 1)", function()
    local x = keras.array{{1}, {-1}, {2}, {-2}}
    local y = keras.array{1, 0, 1, 0}
    local m = keras.Sequential{L.Input{shape = {1}}, L.Dense{units = 1, activation = "sigmoid"}}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 1}, loss = "binary_crossentropy", metrics = {"accuracy"}}
    m:fit(x, y, {epochs = 30, batch_size = 4, verbose = 0})
    local _, mt = m:evaluate(x, y)
    assert.are.equal(1, mt.accuracy)
  end)
  it("takes several inputs (a functional model)", function()
    local a, b = L.Input{shape = {2}}, L.Input{shape = {3}, sparse = true}
    local out = L.Dense{units = 1}(L.Concatenate{}({L.Dense{units = 2}(a), L.Dense{units = 2}(b)}))
    local m = keras.Model{inputs = {a, b}, outputs = out}
    m:compile{optimizer = "sgd", loss = "mae"}
    local xa = keras.ones({6, 2})
    local xb = keras.sparse.rand({6, 3}, "csr", 0.5, {seed = 2})
    local h = m:fit({xa, xb}, keras.zeros({6, 1}), {epochs = 2, verbose = 0, batch_size = 4})
    assert.are.equal(2, #h.history.loss)
    assert.are.equal(6, #m.layers) -- 2 inputs, 2 dense, concatenate, the output dense
  end)
  it("fits from an ArrayIterator", function()
    local X, y = csr_data(40, 5, 9)
    local it = keras.data_utils.ArrayIterator{data = X, label = y, batch_size = 8, shuffle = true}
    local m = keras.Sequential{L.Input{shape = {5}, sparse = true}, L.Dense{units = 1, sparse_weight = true}}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1}, loss = "mse"}
    local h = m:fit(it, nil, {epochs = 30, verbose = 0})
    assert.is_true(h.history.loss[30] < h.history.loss[1])
  end)
end)

describe("on_batch methods", function()
  it("train_on_batch, test_on_batch, predict_on_batch", function()
    local m = keras.Sequential{L.Input{shape = {2}}, L.Dense{units = 1, kernel_initializer = "ones"}}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1}, loss = "mse", metrics = {"mae"}}
    local x, y = keras.array{{1, 0}, {0, 1}}, keras.array{{0}, {0}}
    local l0, mt = m:test_on_batch(x, y)
    assert.are.equal(1, l0)
    assert.are.equal(1, mt.mae)
    local l1 = m:train_on_batch(x, y)
    assert.are.equal(1, l1)
    local l2 = m:test_on_batch(x, y)
    assert.is_true(l2 < l1)
    S.assert_near(m:predict_on_batch(x):totable(), m:predict(x):totable(), 0)
  end)
end)

describe("summary and weights", function()
  it("prints the Keras 2 table with weight stypes", function()
    local m = keras.Sequential{L.Input{shape = {100}, sparse = true},
      L.Dense{units = 1, sparse_weight = true, name = "lin"}, name = "reg"}
    local lines = {}
    m:summary(function(s) lines[#lines + 1] = s end)
    assert.are.equal('Model: "reg"', lines[1])
    assert.are.equal(string.rep("_", 98), lines[2])
    assert.are.equal("Layer (type)                 Output Shape              Param #     Weights (stype)", lines[3])
    assert.are.equal(string.rep("=", 98), lines[4])
    assert.are.equal("lin (Dense)                  (None, 1)                 101         kernel:row_sparse bias:default", lines[5])
    assert.are.equal(string.rep("=", 98), lines[6])
    assert.are.equal("Total params: 101", lines[7])
    assert.are.equal("Trainable params: 101", lines[8])
    assert.are.equal("Non-trainable params: 0", lines[9])
  end)
  it("get_weights / set_weights / get_layer", function()
    local m = keras.Sequential{L.Input{shape = {2}}, L.Dense{units = 2, name = "a"}, L.Dense{units = 1, name = "b"}}
    local w = m:get_weights()
    assert.are.equal(4, #w)
    w[1] = keras.array{{1, 2}, {3, 4}}
    m:set_weights(w)
    assert.are.same({{1, 2}, {3, 4}}, m:get_layer("a"):get_weights()[1]:totable())
    assert.are.equal(m:get_layer("b"), m:get_layer(2))
    assert.are.equal("Model.get_layer: no such layer: 'c'", errmsg(function() m:get_layer("c") end))
    assert.are.equal("Model.set_weights: the model has 4 weight(s), got 1", errmsg(function() m:set_weights({w[1]}) end))
  end)
end)

describe("errors", function()
  local function model()
    return keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 2, activation = "softmax"}}
  end
  it("fit before compile", function()
    assert.are.equal("Model: you must compile the model before training",
      errmsg(function() model():fit(keras.ones({4, 3}), keras.ones({4, 2})) end))
  end)
  it("x and y row counts that differ", function()
    local m = model()
    m:compile{optimizer = "sgd", loss = "mse"}
    assert.are.equal("Model.fit: x and y have different numbers of rows: x has 4, y has 3",
      errmsg(function() m:fit(keras.ones({4, 3}), keras.ones({3, 2}), {verbose = 0}) end))
  end)
  it("a wrong input width", function()
    local m = model()
    m:compile{optimizer = "sgd", loss = "mse"}
    assert.matches("^Model.fit: x%[1%] has shape %(4, 5%) but input '[%w_]+' of the model expects %(None, 3%)$",
      errmsg(function() m:fit(keras.ones({4, 5}), keras.ones({4, 2}), {verbose = 0}) end))
  end)
  it("class labels out of range", function()
    local m = model()
    m:compile{optimizer = "sgd", loss = "sparse_categorical_crossentropy"}
    local err = errmsg(function() m:fit(keras.ones({3, 3}), keras.array{1, 3, 2}, {verbose = 0}) end)
    assert.matches("sparse_categorical_crossentropy: label 3 out of range", err, 1, true)
  end)
  it("unknown loss, optimizer and metric names", function()
    local m = model()
    assert.matches("unknown loss 'msee'", errmsg(function() m:compile{optimizer = "sgd", loss = "msee"} end), 1, true)
    assert.matches("unknown optimizer 'sgdd'", errmsg(function() m:compile{optimizer = "sgdd", loss = "mse"} end), 1, true)
    assert.matches("unknown metric 'accuracyy'",
      errmsg(function() m:compile{optimizer = "sgd", loss = "mse", metrics = {"accuracyy"}} end), 1, true)
    assert.are.equal("Model.compile: unknown option 'metric'",
      errmsg(function() m:compile{optimizer = "sgd", loss = "mse", metric = {"mae"}} end))
    assert.are.equal("Model.fit: unknown option 'epoch'",
      errmsg(function() m:compile{optimizer = "sgd", loss = "mse"}; m:fit(keras.ones({2, 3}), keras.ones({2, 2}), {epoch = 2}) end))
  end)
end)

describe("fit from a LibSVMIter", function()
  it("streams an svmlight file (the number of rows unknown up front)", function()
    local X, y = csr_data(30, 4, 5)
    local path = os.tmpname()
    keras.data_utils.dump_svmlight_file(X, y:reshape({30}), path)
    local it = keras.data_utils.LibSVMIter{path = path, n_features = 4, batch_size = 8}
    local m = keras.Sequential{L.Dense{units = 1, sparse_weight = true}}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1}, loss = "mse"}
    local h = m:fit(it, nil, {epochs = 20, verbose = 0})
    os.remove(path)
    assert.are.equal(20, #h.history.loss)
    assert.is_true(h.history.loss[20] < h.history.loss[1])
  end)
end)
