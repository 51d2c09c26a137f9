-- spec/multi_output_spec.lua: models with several outputs (issue 14 section 4): compile's
-- loss / loss_weights / metrics per output (lists in output order or tables keyed by output
-- name), the total loss sum_j w_j L_j and each L_j reported by the C batch loop, history keys
-- <output>_loss and <output>_<metric>, predict returning a list, weights per output. Values
-- worked out by hand in the comments.
local keras = require("keras")
local S = require("support")
local L = keras.layers

local function fails(msg, f) assert.are.equal(msg, S.err_of(f)) end

-- x -> shared Dense (h = x1 + x2) -> ctr = sigmoid(h), cvr = sigmoid(-h)
local function ctr_cvr(lr)
  local inp = L.Input{shape = {2}}
  local h = L.Dense{units = 1, name = "shared", kernel_initializer = "ones", bias_initializer = "zeros"}(inp)
  local ctr = L.Dense{units = 1, activation = "sigmoid", name = "ctr", kernel_initializer = "ones",
    bias_initializer = "zeros"}(h)
  local cvr = L.Dense{units = 1, activation = "sigmoid", name = "cvr",
    kernel_initializer = keras.initializers.Constant{value = -1}, bias_initializer = "zeros"}(h)
  local m = keras.Model{inputs = inp, outputs = {ctr, cvr}}
  m.opt = keras.optimizers.SGD{learning_rate = lr or 0}
  return m
end
local X = keras.array({{0.5, 0.5}, {1, 1}})        -- h = 1, 2
local Y1, Y2 = keras.array({{1}, {0}}), keras.array({{0}, {1}})
-- ctr p = sigmoid(1), sigmoid(2) against 1, 0; cvr p = sigmoid(-1), sigmoid(-2) against 0, 1:
-- both rows' losses are -log(sigmoid(1)) = 0.31326 and -log(1 - sigmoid(2)) = 2.12693
local A, B = 0.31326168751822286, 2.1269280110429727
local LOSS = (A + B) / 2                            -- each output's loss, 1.2200948

describe("a model with two outputs", function()
  it("compile with lists: the total is sum w_j L_j, each L_j and metric logged per output", function()
    local m = ctr_cvr()
    m:compile{optimizer = m.opt, loss = {"binary_crossentropy", "binary_crossentropy"},
      loss_weights = {1, 0.5}, metrics = {"accuracy"}}
    local l, mt = m:evaluate(X, {Y1, Y2})
    S.assert_near(l, 1.5 * LOSS, 1e-6)
    S.assert_near({mt.ctr_loss, mt.cvr_loss, mt.ctr_accuracy, mt.cvr_accuracy}, {LOSS, LOSS, 0.5, 0.5}, 1e-6)
    local h = m:fit(X, {Y1, Y2}, {verbose = 0, epochs = 2, batch_size = 1, validation_data = {X, {Y1, Y2}}})
    local keys = {}
    for k in pairs(h.history) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({"ctr_accuracy", "ctr_loss", "cvr_accuracy", "cvr_loss", "loss", "val_ctr_accuracy",
      "val_ctr_loss", "val_cvr_accuracy", "val_cvr_loss", "val_loss"}, keys)
    -- batches of one row: rows' totals 1.5 A and 1.5 B, averaged by rows
    S.assert_near(h.history.loss, {1.5 * LOSS, 1.5 * LOSS}, 1e-6)
    S.assert_near(h.history.cvr_loss, {LOSS, LOSS}, 1e-6)
  end)

  it("options keyed by output name; y, weights and predict per output", function()
    local m = ctr_cvr()
    m:compile{optimizer = m.opt, loss = {ctr = "binary_crossentropy", cvr = "mse"},
      loss_weights = {cvr = 2}, metrics = {cvr = {"mae"}}}
    -- cvr mse: (sigmoid(-1) - 0)^2 and (sigmoid(-2) - 1)^2
    local s1, s2 = 1 / (1 + math.exp(1)), 1 / (1 + math.exp(2))
    local mse = (s1 ^ 2 + (s2 - 1) ^ 2) / 2
    local l, mt = m:evaluate(X, {ctr = Y1, cvr = Y2})
    S.assert_near(l, LOSS + 2 * mse, 1e-6)
    S.assert_near(mt.cvr_mae, (s1 + 1 - s2) / 2, 1e-6)
    assert.is_nil(mt.ctr_mae)
    -- sample weights per output: ctr (1, 0) -> A / 1; cvr unweighted
    l = m:evaluate(X, {Y1, Y2}, {sample_weight = {ctr = keras.array({1, 0})}})
    S.assert_near(l, A + 2 * mse, 1e-6)
    local p = m:predict(X)
    assert.are.equal(2, #p)
    S.assert_near(p[1]:totable(), {{1 - s1}, {1 - s2}}, 1e-6)
    S.assert_near(p[2]:totable(), {{s1}, {s2}}, 1e-6)
    local pb = m:predict_on_batch(X)
    S.assert_near(pb[2]:totable(), {{s1}, {s2}}, 1e-6)
  end)

  it("one step trains the shared layer on the weighted sum (by hand)", function()
    -- x = 1: h = k x = 1, o1 = a h = 1, o2 = c h = 2 (k = a = 1, c = 2, biases 0); mse against
    -- 0, 0 with loss_weights (1, 0.5): total 1 + 0.5 * 4 = 3. dL/do1 = 2, 0.5 dL2/do2 = 2:
    -- da = dc = 2 h = 2, dk = (2 a + 2 c) x = 6. SGD 0.1: k = 0.4, a = 0.8, c = 1.8.
    local inp = L.Input{shape = {1}}
    local h = L.Dense{units = 1, kernel_initializer = "ones", bias_initializer = "zeros"}(inp)
    local o1 = L.Dense{units = 1, kernel_initializer = "ones", bias_initializer = "zeros"}(h)
    local o2 = L.Dense{units = 1, kernel_initializer = keras.initializers.Constant{value = 2},
      bias_initializer = "zeros"}(h)
    local m = keras.Model{inputs = inp, outputs = {o1, o2}}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1}, loss = "mse", loss_weights = {1, 0.5}}
    local l = m:train_on_batch(keras.array({{1}}), {keras.array({{0}}), keras.array({{0}})})
    assert.are.equal(3, l)
    local w = m:get_weights()
    S.assert_near({w[1]:totable()[1][1], w[3]:totable()[1][1], w[5]:totable()[1][1]}, {0.4, 0.8, 1.8}, 1e-6)
  end)

  it("a CTR/CVR model over a sparse shared Dense trains in the C loop", function()
    keras.random.seed(1)
    local X2 = keras.sparse.rand({64, 50}, "csr", 0.1, {seed = 2})
    local y = keras.backend.dot(X2, keras.ones({50, 1}))
    local ctr_y = keras.array((function()
      local t = {}
      for i, v in ipairs(y:totable()) do t[i] = {v[1] > 2.5 and 1 or 0} end
      return t
    end)())
    local inp = L.Input{shape = {50}, sparse = true}
    local h = L.Dense{units = 8, sparse_weight = true, activation = "relu"}(inp)
    local ctr = L.Dense{units = 1, activation = "sigmoid", name = "ctr"}(h)
    local cvr = L.Dense{units = 1, activation = "sigmoid", name = "cvr"}(h)
    local m = keras.Model{inputs = inp, outputs = {ctr, cvr}}
    m:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.05}, loss = "binary_crossentropy",
      metrics = {ctr = {"accuracy"}}}
    local hist = m:fit(X2, {ctr_y, ctr_y}, {verbose = 0, epochs = 20, batch_size = 16, class_weight = {ctr = {[0] = 1, [1] = 2}}})
    assert.is_true(hist.history.loss[20] < hist.history.loss[1] / 2)
    assert.is_true(hist.history.ctr_accuracy[20] >= 0.9)
    -- a file keeps the per-output compile options
    local dir = S.mktemp_dir()
    m:save(dir .. "/m.safetensors")
    local m2 = keras.models.load_model(dir .. "/m.safetensors")
    local l1 = m:evaluate(X2, {ctr_y, ctr_y})
    S.assert_near(m2:evaluate(X2, {ctr_y, ctr_y}), l1, 1e-6)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("refuses what does not fit, saying why", function()
    local m = ctr_cvr()
    fails("Model.compile: loss has 3 entries but the model has 2 outputs",
      function() m:compile{optimizer = "sgd", loss = {"mse", "mse", "mse"}} end)
    fails("Model.compile: loss has no entry for output 'cvr'",
      function() m:compile{optimizer = "sgd", loss = {ctr = "mse"}} end)
    fails("Model.compile: loss_weights is keyed by output name, and the model has no output 'ctx' (its outputs: ctr, cvr)",
      function() m:compile{optimizer = "sgd", loss = "mse", loss_weights = {ctx = 2}} end)
    m:compile{optimizer = "sgd", loss = "mse"}
    fails("Model.evaluate: the model has 2 outputs: y must be a list of 2 tensors or a table keyed by output name (ctr, cvr)",
      function() m:evaluate(X, Y1) end)
    fails("Model.evaluate: the model has 2 outputs: sample_weight must be a list or a table keyed by output name",
      function() m:evaluate(X, {Y1, Y2}, {sample_weight = keras.ones({2})}) end)
    m:compile{optimizer = "sgd", loss = "binary_crossentropy"}
    fails("fit: binary_crossentropy: label -1 out of range [0, 1] at row 2 (map -1/+1 labels to 0/1: label_map = {[-1] = 0, [1] = 1})",
      function() m:fit(X, {Y1, keras.array({{1}, {-1}})}, {verbose = 0}) end)
    local it = keras.data_utils.ArrayIterator{data = X, label = Y1, batch_size = 1}
    fails("Model.fit: a model with several outputs trains on in-memory data (an iterator yields one y)",
      function() m:fit(it, nil, {verbose = 0}) end)
  end)
end)
