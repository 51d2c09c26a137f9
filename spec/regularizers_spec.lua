-- spec/regularizers_spec.lua: keras.regularizers on Dense and Embedding (the loss includes the
-- penalty; a row_sparse gradient's weight is penalized on the rows the batch touches only,
-- and only those rows move), and ReduceLROnPlateau in fit.
local keras = require("keras")
local L = keras.layers
local R = keras.regularizers

local function near(a, b, tol, what)
  assert(math.abs(a - b) <= (tol or 1e-12) * (1 + math.abs(b)), string.format("%s: %.17g vs %.17g", what or "", a, b))
end

-- l1 * sum |w| + l2 * sum w^2 over the given rows (nil: all) of a nested table
local function penalty(w, l1, l2, rows)
  local s = 0
  for i, row in ipairs(w) do
    if rows == nil or rows[i] then
      for _, v in ipairs(row) do s = s + l1 * math.abs(v) + l2 * v * v end
    end
  end
  return s
end

describe("keras.regularizers", function()
  it("l1, l2, l1_l2 and their names, as Keras 2 (default 0.01)", function()
    assert.are.same({l1 = 0.5, l2 = 0}, R.l1(0.5):get_config())
    assert.are.same({l1 = 0, l2 = 0.01}, R.l2():get_config())
    assert.are.same({l1 = 0.01, l2 = 0.25}, R.l1_l2{l2 = 0.25}:get_config())
    assert.are.same({l1 = 0.01, l2 = 0.01}, R.get("l1_l2"):get_config())
    near(R.l1_l2{l1 = 0.5, l2 = 2}(keras.array({{1, -2}}, {dtype = "float64"})):item(), 0.5 * 3 + 2 * 5)
    assert.has_error(function() R.l2(-1) end, "regularizers.l2: l2 must be a finite number >= 0. Received: l2=-1")
    assert.has_error(function() R.l1_l2{l3 = 1} end, "regularizers.l1_l2: unknown option 'l3'")
    assert.has_error(function() L.Dense{units = 1, kernel_regularizer = "l3"} end,
      "Dense: kernel_regularizer must be keras.regularizers.l1(x), .l2(x), .l1_l2{l1=, l2=} or one of " ..
      "their names. Received: kernel_regularizer='l3'")
  end)
end)

describe("regularized layers", function()
  local X = keras.array({{1, 2}, {-1, 0.5}, {0, 3}}, {dtype = "float64"})
  local Y = keras.array({{1}, {0}, {2}}, {dtype = "float64"})

  it("Dense: the loss is the data loss plus the kernel's and the bias' penalties", function()
    local x = L.Input{shape = {2}, dtype = "float64"}
    local d = L.Dense{units = 1, dtype = "float64", bias_initializer = "ones",
      kernel_regularizer = R.l2(0.1), bias_regularizer = R.l1(0.5)}
    local m = keras.Model{inputs = x, outputs = d(x)}
    local plain = keras.Model{inputs = x, outputs = d.output}
    m:compile{optimizer = "sgd", loss = "mse"}
    local w = d:get_weights()
    local pen = penalty(w[1]:totable(), 0, 0.1) + 0.5 * 1
    local p = plain:predict(X):totable()
    local mse = 0
    for i = 1, 3 do mse = mse + (p[i][1] - Y:totable()[i][1]) ^ 2 end
    near(m:evaluate(X, Y, {batch_size = 3}), mse / 3 + pen, 1e-12, "evaluate")
    local h = m:fit(X, Y, {batch_size = 3, epochs = 1, verbose = 0, shuffle = false})
    near(h.history.loss[1], mse / 3 + pen, 1e-12, "fit's loss")
  end)

  -- Two models from the same weights, with and without the regularizer, one SGD step: the
  -- difference is -lr * (l1 sign(w) + 2 l2 w) on the touched rows, 0 on the others.
  local function step_pair(make, feed, touched, l1, l2)
    local lr = 0.5
    local ws
    local res = {}
    for k, reg in ipairs({R.l1_l2{l1 = l1, l2 = l2}, false}) do
      local m, layer = make(reg or nil)
      if ws then m:set_weights(ws) else ws = m:get_weights() end -- both models start alike
      m:compile{optimizer = keras.optimizers.SGD{learning_rate = lr}, loss = "mse"}
      local loss = m:train_on_batch(feed[1], feed[2])
      res[k] = {w = layer:get_weights()[1]:tostype("default"):totable(), loss = loss}
    end
    local w0 = ws[1]:tostype("default"):totable() -- the layer's weight comes first in both models
    for i, row in ipairs(w0) do
      for j, v in ipairs(row) do
        local want = 0
        if touched[i] then
          local sg = v > 0 and 1 or (v < 0 and -1 or 0)
          want = -lr * (l1 * sg + 2 * l2 * v)
        end
        near(res[1].w[i][j] - res[2].w[i][j], want, 1e-9, string.format("row %d col %d", i, j))
      end
    end
    -- the reported loss carries the penalty of the touched rows only
    near(res[1].loss - res[2].loss, penalty(w0, l1, l2, touched), 1e-12, "loss")
  end

  it("Embedding{sparse_grad = true}: the penalty and its gradient cover the batch's ids only", function()
    step_pair(function(reg)
      local x = L.Input{shape = {3}}
      local e = L.Embedding{input_dim = 6, output_dim = 2, sparse_grad = true, dtype = "float64",
        embeddings_initializer = keras.initializers.Uniform{minval = -1, maxval = 1}, embeddings_regularizer = reg}
      local out = L.Dense{units = 1, dtype = "float64"}(L.GlobalAveragePooling1D{}(e(x)))
      return keras.Model{inputs = x, outputs = out}, e
    end, {keras.array({{2, 5, 0}, {5, 5, 1}}), keras.array({{1}, {0}}, {dtype = "float64"})},
      {[1] = true, [2] = true, [5] = true}, 0.03, 0.2)
  end)

  it("Embedding with a dense gradient: every row is penalized (Keras)", function()
    step_pair(function(reg)
      local x = L.Input{shape = {2}}
      local e = L.Embedding{input_dim = 4, output_dim = 2, dtype = "float64",
        embeddings_initializer = keras.initializers.Uniform{minval = -1, maxval = 1}, embeddings_regularizer = reg}
      local out = L.Dense{units = 1, dtype = "float64"}(L.Flatten{}(e(x)))
      return keras.Model{inputs = x, outputs = out}, e
    end, {keras.array({{1, 0}}), keras.array({{1}}, {dtype = "float64"})},
      {true, true, true, true}, 0.05, 0.1)
  end)

  it("Dense{sparse_weight = true} on csr input: the batch's columns only", function()
    local Xs = keras.sparse.csr_matrix{data = {1, 2, -1}, indices = {2, 5, 2}, indptr = {1, 3, 4},
      shape = {2, 6}, dtype = "float64"}
    step_pair(function(reg)
      local x = L.Input{shape = {6}, sparse = true, dtype = "float64"}
      local d = L.Dense{units = 2, sparse_weight = true, dtype = "float64", kernel_regularizer = reg}
      return keras.Model{inputs = x, outputs = d(x)}, d
    end, {Xs, keras.array({{1, 0}, {0, 1}}, {dtype = "float64"})}, {[2] = true, [5] = true}, 0.02, 0.3)
  end)
end)

describe("ReduceLROnPlateau", function()
  it("in fit: patience, cooldown, factor, min_lr; logs.lr as Keras 2", function()
    -- x = 0: the loss stays 1 whatever the kernel (no improvement after epoch 1)
    local x = L.Input{shape = {1}}
    local m = keras.Model{inputs = x, outputs = L.Dense{units = 1, use_bias = false}(x)}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1}, loss = "mse"}
    local cb = keras.callbacks.ReduceLROnPlateau{monitor = "loss", factor = 0.5, patience = 1, cooldown = 2,
      min_lr = 0.02}
    local h = m:fit(keras.zeros({4, 1}), keras.ones({4, 1}), {epochs = 6, verbose = 0, callbacks = {cb}})
    local lrs = {}
    for i, v in ipairs(h.history.lr) do lrs[i] = tonumber(string.format("%.6g", v)) end
    assert.are.same({0.1, 0.1, 0.05, 0.05, 0.025, 0.025}, lrs)
    near(m.optimizer:get_learning_rate(), 0.02)
  end)

  it("mode max for accuracies, min_delta, and errors by message", function()
    local cb = keras.callbacks.ReduceLROnPlateau{monitor = "val_accuracy", patience = 0, min_delta = 0.1}
    local x = L.Input{shape = {1}}
    local m = keras.Model{inputs = x, outputs = L.Dense{units = 1}(x)}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 1}, loss = "mse"}
    cb:set_model(m)
    cb:on_train_begin()
    cb:on_epoch_end(1, {val_accuracy = 0.5})
    cb:on_epoch_end(2, {val_accuracy = 0.55}) -- not by more than min_delta: reduced
    near(m.optimizer:get_learning_rate(), 0.1)
    cb:on_epoch_end(3, {val_accuracy = 0.7})
    near(m.optimizer:get_learning_rate(), 0.1)
    assert.has_error(function() keras.callbacks.ReduceLROnPlateau{factor = 1} end,
      "ReduceLROnPlateau: factor must be a number in [0, 1). Received: factor=1")
    assert.has_error(function() keras.callbacks.ReduceLROnPlateau{mode = "up"} end,
      "ReduceLROnPlateau: mode must be 'auto', 'min' or 'max'. Received: mode='up'")
    assert.has_error(function() keras.callbacks.ReduceLROnPlateau{patience = 1.5} end,
      "ReduceLROnPlateau: patience must be an integer >= 0. Received: patience=1.5")
  end)
end)
