-- spec/sample_weight_spec.lua: issue 14 section 2: sample and class weights (Keras 2.2's
-- weighted objective: sum_r w_r L_r / #{r : w_r != 0}, computed by the loss op inside the C
-- batch loop), labels the loss refuses (named with their row in the data), label_map /
-- label_offset, steps_per_epoch / validation_steps / validation_freq, options refused with a
-- reason, and the progress bar's rows and per-step time. Expected values are worked out by
-- hand (the Python lines that computed them are in the comments).
local keras = require("keras")
local S = require("support")
local L = keras.layers

local function fails(msg, f) assert.are.equal(msg, S.err_of(f)) end

-- Dense(1, sigmoid) with kernel 0.5, bias 0: p = sigmoid(0.5 x); lr 0 keeps it so.
local X = keras.array({{1}, {2}, {3}, {4}})
local Y = keras.array({{0}, {1}, {1}, {0}})
local function sigmoid_model(lr, loss)
  local inp = L.Input{shape = {1}}
  local out = L.Dense{units = 1, activation = "sigmoid",
    kernel_initializer = keras.initializers.Constant{value = 0.5}, bias_initializer = "zeros"}(inp)
  local m = keras.Model{inputs = inp, outputs = out}
  m:compile{optimizer = keras.optimizers.SGD{learning_rate = lr or 0}, loss = loss or "binary_crossentropy",
    metrics = {"accuracy"}}
  return m
end
-- The per-row losses -log(p) / -log(1 - p) of (X, Y) (p rounded to float32):
-- p = [f32(1/(1+exp(-0.5*x))) for x in 1..4]
local ROW = {0.9740770393121672, 0.31326166161784674, 0.20141324759536344, 2.126928096345644}

describe("sample_weight", function()
  it("evaluate: sum(w * l) / count(w != 0), as Keras 2.2", function()
    local m = sigmoid_model()
    S.assert_near(m:evaluate(X, Y), (ROW[1] + ROW[2] + ROW[3] + ROW[4]) / 4, 1e-6) -- 0.90392
    local l, mt = m:evaluate(X, Y, {sample_weight = keras.array({1, 2, 0, 1})})
    S.assert_near(l, (ROW[1] + 2 * ROW[2] + ROW[4]) / 3, 1e-6) -- 1.2425094862978348
    assert.are.equal(0.5, mt.accuracy) -- metrics are not weighted (Keras 2.2's metrics)
    -- (n, 1) weights work as (n)
    S.assert_near(m:evaluate(X, Y, {sample_weight = keras.array({{1}, {2}, {0}, {1}})}), l, 1e-12)
    -- each batch is weighted on its own, the epoch averages batches by their rows:
    -- batch 1 (w 1, 2): (l1 + 2 l2) / 2, batch 2 (w 0, 1): l4 / 1
    S.assert_near(m:evaluate(X, Y, {sample_weight = keras.array({1, 2, 0, 1}), batch_size = 2}),
      (2 * (ROW[1] + 2 * ROW[2]) / 2 + 2 * ROW[4]) / 4, 1e-6)
  end)

  it("train_on_batch(x, y, w): the gradient of the weighted loss (by hand)", function()
    -- y = k x + b, k = 1, b = 0, mse; x = (1, 2), y = (3, 0), w = (2, 0): only row 1 counts:
    -- loss = 2 (1 - 3)^2 / 1 = 8; dk = db = 2 * 2 (1 - 3) = -8; SGD lr 0.1: k = 1.8, b = 0.8
    local inp = L.Input{shape = {1}}
    local d = L.Dense{units = 1, kernel_initializer = "ones", bias_initializer = "zeros"}
    local m = keras.Model{inputs = inp, outputs = d(inp)}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1}, loss = "mse"}
    local l = m:train_on_batch(keras.array({{1}, {2}}), keras.array({{3}, {0}}), keras.array({2, 0}))
    assert.are.equal(8, l)
    local w = m:get_weights()
    S.assert_near(w[1]:totable(), {{1.8}}, 1e-6)
    S.assert_near(w[2]:totable(), {0.8}, 1e-6)
    -- a batch whose weights are all 0 has loss 0 and changes nothing (Keras 2.2 gives NaN)
    assert.are.equal(0, m:train_on_batch(keras.array({{1}}), keras.array({{5}}), keras.array({0})))
    S.assert_near(m:get_weights()[1]:totable(), {{1.8}}, 1e-6)
    -- the keyword form, and test_on_batch
    local l2 = m:test_on_batch(keras.array({{1}, {2}}), keras.array({{3}, {0}}), {sample_weight = keras.array({1, 1})})
    S.assert_near(l2, ((1.8 + 0.8 - 3) ^ 2 + (3.6 + 0.8) ^ 2) / 2, 1e-5)
  end)

  it("fit: validation_data = {x, y, w} and validation_split split the weights", function()
    local m = sigmoid_model()
    local w = keras.array({1, 2, 0, 1})
    local h = m:fit(X, Y, {verbose = 0, validation_data = {X, Y, w}})
    S.assert_near(h.history.val_loss[1], (ROW[1] + 2 * ROW[2] + ROW[4]) / 3, 1e-6)
    -- validation_split 0.5: train on rows 1-2 (w 1, 2), validate on rows 3-4 (w 0, 1)
    h = m:fit(X, Y, {verbose = 0, sample_weight = w, validation_split = 0.5, shuffle = false})
    S.assert_near(h.history.loss[1], (ROW[1] + 2 * ROW[2]) / 2, 1e-6)
    S.assert_near(h.history.val_loss[1], ROW[4], 1e-6)
  end)

  it("is refused when wrong, naming the value and the row", function()
    local m = sigmoid_model()
    fails("Model.evaluate: sample_weight has 3 rows but the data has 4",
      function() m:evaluate(X, Y, {sample_weight = keras.array({1, 1, 1})}) end)
    fails("evaluate: binary_crossentropy: sample_weight -1 at row 2 must be finite and >= 0",
      function() m:evaluate(X, Y, {sample_weight = keras.array({1, -1, 1, 1})}) end)
    fails("Model.fit: sample_weight must have shape (n) (one weight a row), got a keras.Tensor of shape (4, 2)",
      function() m:fit(X, Y, {verbose = 0, sample_weight = keras.ones({4, 2})}) end)
    fails("Model.train_on_batch: the third argument must be sample weights (a tensor) or {sample_weight =, class_weight =}. Received: 3",
      function() m:train_on_batch(X, Y, 3) end)
    fails("Model.fit: validation_data must be {x_val, y_val} or {x_val, y_val, sample_weight_val}",
      function() m:fit(X, Y, {verbose = 0, validation_data = {X, Y, keras.ones({4}), 1}}) end)
    local c = keras.Model{inputs = m.inputs, outputs = m.outputs}
    c:compile{optimizer = "sgd", loss = function(yt, yp) return keras.backend.mean(keras.backend.square(yt - yp)) end}
    fails("Model.fit: sample_weight and class_weight need a built-in loss (compile's loss is a " ..
      "function, whose result need not hold one loss a sample)",
      function() c:fit(X, Y, {verbose = 0, sample_weight = keras.ones({4})}) end)
  end)
end)

describe("class_weight", function()
  it("weights each row by its label's weight (0/1 labels)", function()
    local m = sigmoid_model()
    -- batches of 2 in order: (l1 + 3 l2) / 2 and (3 l3 + l4) / 2, averaged by rows
    local h = m:fit(X, Y, {verbose = 0, batch_size = 2, shuffle = false, class_weight = {[0] = 1, [1] = 3}})
    S.assert_near(h.history.loss[1], ((ROW[1] + 3 * ROW[2]) + (3 * ROW[3] + ROW[4])) / 4, 1e-6)
    -- times sample_weight (Keras' standardize_weights multiplies them)
    h = m:fit(X, Y, {verbose = 0, batch_size = 4, class_weight = {[0] = 1, [1] = 3},
      sample_weight = keras.array({2, 1, 0, 1})})
    S.assert_near(h.history.loss[1], (2 * ROW[1] + 3 * ROW[2] + ROW[4]) / 3, 1e-6)
  end)

  it("sparse categorical labels 1..C and one-hot rows (class index 1..C)", function()
    -- softmax of zero logits: p = 1/3 everywhere, every row's loss log 3
    local function soft(loss)
      local inp = L.Input{shape = {2}}
      local m = keras.Model{inputs = inp, outputs = L.Dense{units = 3, activation = "softmax",
        kernel_initializer = "zeros", bias_initializer = "zeros"}(inp)}
      m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0}, loss = loss}
      return m
    end
    local x = keras.ones({3, 2})
    local cw = {[1] = 1, [2] = 0, [3] = 4}
    -- labels 1, 2, 3: (1 + 0 + 4) log 3 / 2 (two nonzero weights)
    local h = soft("sparse_categorical_crossentropy"):fit(x, keras.array({1, 2, 3}),
      {verbose = 0, class_weight = cw})
    S.assert_near(h.history.loss[1], 5 * math.log(3) / 2, 1e-6)
    h = soft("categorical_crossentropy"):fit(x, keras.array({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}),
      {verbose = 0, class_weight = cw})
    S.assert_near(h.history.loss[1], 5 * math.log(3) / 2, 1e-6)
    fails("Model.fit: class_weight has no weight for class 3 (row 3): it must give every class in the data one",
      function() soft("sparse_categorical_crossentropy"):fit(x, keras.array({1, 2, 3}),
        {verbose = 0, class_weight = {[1] = 1, [2] = 1}}) end)
    fails("Model.fit: class_weight[2] must be a finite number >= 0. Received: -1",
      function() soft("sparse_categorical_crossentropy"):fit(x, keras.array({1, 2, 3}),
        {verbose = 0, class_weight = {[1] = 1, [2] = -1, [3] = 1}}) end)
  end)

  it("over an iterator: batch by batch, as in memory", function()
    local m = sigmoid_model()
    local it = keras.data_utils.ArrayIterator{data = X, label = Y, batch_size = 2}
    local h = m:fit(it, nil, {verbose = 0, class_weight = {[0] = 1, [1] = 3}})
    S.assert_near(h.history.loss[1], ((ROW[1] + 3 * ROW[2]) + (3 * ROW[3] + ROW[4])) / 4, 1e-6)
  end)
end)

describe("labels the loss refuses", function()
  it("name the value and the row of the data, also when shuffled", function()
    local m = sigmoid_model()
    keras.random.seed(3)
    fails("fit: binary_crossentropy: label -1 out of range [0, 1] at row 3 (map -1/+1 labels to 0/1: label_map = {[-1] = 0, [1] = 1})",
      function() m:fit(X, keras.array({{0}, {1}, {-1}, {1}}), {verbose = 0, batch_size = 1}) end)
    local inp = L.Input{shape = {2}}
    local s = keras.Model{inputs = inp, outputs = L.Dense{units = 3, activation = "softmax"}(inp)}
    s:compile{optimizer = "sgd", loss = "sparse_categorical_crossentropy"}
    fails("fit: sparse_categorical_crossentropy: label 2.5 is not an integer at row 4",
      function() s:fit(keras.ones({5, 2}), keras.array({1, 2, 3, 2.5, 1}), {verbose = 0, batch_size = 2}) end)
    -- over an iterator: the row counts from the pass's start
    local it = keras.data_utils.ArrayIterator{data = keras.ones({5, 2}), label = keras.array({1, 2, 3, 1, 0}),
      batch_size = 2}
    fails("Model.fit: sparse_categorical_crossentropy: label 0 out of range [1, 3] at row 5",
      function() s:fit(it, nil, {verbose = 0}) end)
  end)
end)

describe("fit options", function()
  it("steps_per_epoch takes that many batches, passes restarting; validation_steps, validation_freq", function()
    local m = sigmoid_model()
    local it = keras.data_utils.ArrayIterator{data = X, label = Y, batch_size = 1}
    local counted = {}
    local cb = keras.callbacks.LambdaCallback{on_epoch_end = function(e, logs) counted[e] = logs.loss end}
    -- 3 batches an epoch over 4 rows: epoch 1 rows 1-3, epoch 2 rows 4, 1, 2
    local h = m:fit(it, nil, {verbose = 0, epochs = 2, steps_per_epoch = 3, callbacks = {cb},
      validation_data = it, validation_steps = 2, validation_freq = 2})
    S.assert_near(h.history.loss, {(ROW[1] + ROW[2] + ROW[3]) / 3, (ROW[4] + ROW[1] + ROW[2]) / 3}, 1e-6)
    S.assert_near(h.history.val_loss, {(ROW[1] + ROW[2]) / 2}, 1e-6) -- epoch 2 only
    assert.are.same(h.history.loss, counted) -- the callbacks saw the same epochs
    h = m:fit(X, Y, {verbose = 0, epochs = 3, validation_data = {X, Y}, validation_freq = {1, 3}})
    assert.are.equal(2, #h.history.val_loss)
  end)

  it("shuffle = 'batch' shuffles whole batches", function()
    -- each batch of 2 holds y = 1 and y = -1 at x = 1: from k = b = 0 its mse gradient is 0,
    -- so whole batches leave the weights at 0; batches mixed by a row shuffle would not
    local inp = L.Input{shape = {1}}
    local m = keras.Model{inputs = inp, outputs = L.Dense{units = 1, kernel_initializer = "zeros"}(inp)}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1}, loss = "mse"}
    local x, y = keras.ones({6, 1}), keras.array({{1}, {-1}, {1}, {-1}, {1}, {-1}})
    keras.random.seed(5)
    m:fit(x, y, {verbose = 0, epochs = 4, batch_size = 2, shuffle = "batch"})
    assert.are.same({{0}}, m:get_weights()[1]:totable())
    m:fit(x, y, {verbose = 0, epochs = 4, batch_size = 2, shuffle = true})
    assert.are_not.same({{0}}, m:get_weights()[1]:totable())
  end)

  it("metrics keyed by the output's name (Keras' dict form)", function()
    local inp = L.Input{shape = {1}}
    local out = L.Dense{units = 1, activation = "sigmoid", name = "ctr",
      kernel_initializer = keras.initializers.Constant{value = 0.5}, bias_initializer = "zeros"}(inp)
    local m = keras.Model{inputs = inp, outputs = out}
    m:compile{optimizer = "sgd", loss = "binary_crossentropy", metrics = {ctr = {"accuracy"}}}
    local _, mt = m:evaluate(X, Y)
    assert.are.equal(0.5, mt.accuracy)
    fails("Model.compile: metrics are keyed by output name, and the model has no output 'cvr' (its output is 'ctr')",
      function() m:compile{optimizer = "sgd", loss = "mse", metrics = {cvr = {"mae"}}} end)
    fails("Model.compile: metrics must be a list, or a table keyed by output name; got both (key 'ctr')",
      function() m:compile{optimizer = "sgd", loss = "mse", metrics = {"mae", ctr = {"mse"}}} end)
  end)

  it("options that do not apply are errors saying why", function()
    local m = sigmoid_model()
    local it = keras.data_utils.ArrayIterator{data = X, label = Y, batch_size = 2}
    fails("Model.fit: batch_size cannot be used with a data iterator (the iterator makes the batches: LibSVMIter{batch_size = })",
      function() m:fit(it, nil, {verbose = 0, batch_size = 2}) end)
    fails("Model.fit: shuffle cannot be used with a data iterator (the iterator yields batches in its own order: ArrayIterator{shuffle = true})",
      function() m:fit(it, nil, {verbose = 0, shuffle = "batch"}) end)
    fails("Model.fit: validation_split cannot be used with a data iterator (an iterator cannot be split: give validation_data)",
      function() m:fit(it, nil, {verbose = 0, validation_split = 0.2}) end)
    fails("Model.fit: sample_weight cannot be used with a data iterator (weights must be batched with the rows: use in-memory data, or class_weight)",
      function() m:fit(it, nil, {verbose = 0, sample_weight = keras.ones({4})}) end)
    fails("Model.evaluate: batch_size cannot be used with a data iterator (the iterator makes the batches: LibSVMIter{batch_size = })",
      function() m:evaluate(it, nil, {batch_size = 2}) end)
    fails("Model.fit: steps_per_epoch is for data iterators; in-memory data is split into batches of batch_size",
      function() m:fit(X, Y, {verbose = 0, steps_per_epoch = 2}) end)
    fails("Model.fit: validation_steps is for validation data given as an iterator",
      function() m:fit(X, Y, {verbose = 0, validation_data = {X, Y}, validation_steps = 1}) end)
    fails("Model.fit: shuffle must be true, false or 'batch'. Received: shuffle='rows'",
      function() m:fit(X, Y, {verbose = 0, shuffle = "rows"}) end)
    fails("Model.fit: validation_freq must be a positive integer or a list of epochs. Received: validation_freq=0",
      function() m:fit(X, Y, {verbose = 0, validation_freq = 0}) end)
  end)
end)

describe("LibSVM labels and the progress bar", function()
  local dir = S.mktemp_dir()
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)
  local path = dir .. "/pm.svm"
  local f = assert(io.open(path, "w"))
  f:write("-1 1:1\n+1 1:2\n+1 1:3\n-1 1:4\n")
  f:close()

  it("label_map and label_offset, in load_svmlight_file and LibSVMIter", function()
    local du = keras.data_utils
    local _, y = du.load_svmlight_file(path, {label_map = {[-1] = 0}})
    assert.are.same({0, 1, 1, 0}, y:totable())
    _, y = du.load_svmlight_file(path, {label_map = {[-1] = 0}, label_offset = 1})
    assert.are.same({1, 2, 2, 1}, y:totable())
    local it = du.LibSVMIter{path = path, n_features = 1, batch_size = 3, label_map = {[-1] = 0, [1] = 1}}
    local _, yb = it:next()
    assert.are.same({0, 1, 1}, yb:totable())
    fails("load_svmlight_file: label_map must map labels to labels (numbers). Received: ['a'] = 1",
      function() du.load_svmlight_file(path, {label_map = {a = 1}}) end)
    fails("LibSVMIter: label_offset must be a finite number. Received: label_offset='x'",
      function() du.LibSVMIter{path = path, n_features = 1, batch_size = 3, label_offset = "x"} end)
  end)

  it("epoch 2's bar knows a LibSVMIter's rows; the time is per step", function()
    local m = sigmoid_model()
    local it = keras.data_utils.LibSVMIter{path = path, n_features = 1, batch_size = 3, label_map = {[-1] = 0}}
    local text = {}
    local out = {write = function(_, ...) for _, s in ipairs({...}) do text[#text + 1] = s end end,
      flush = function() end}
    local pl = keras.callbacks.ProgbarLogger{verbose = 1, out = out, dynamic = true}
    m:fit(it, nil, {verbose = 0, epochs = 2, callbacks = {pl}})
    local s = table.concat(text)
    local e1, e2 = s:match("^Epoch 1/2\n(.*)Epoch 2/2\n(.*)$")
    assert.matches("^\r      3/Unknown %- loss: ", e1) -- the first pass: rows unknown
    assert.matches("\r4/4 %[=+%] %- %d+s %d+[mu]?s/step %- loss: 0%.9039 %- accuracy: 0%.5000 *\n$", e1)
    assert.matches("^\r3/4 %[=+>%.+%] %- ETA: ", e2) -- known after one pass
    assert.is_nil(e2:find("Unknown"))
    -- the per-step time: 2 steps in 1 s is 500ms/step (not the time per row)
    local t = 0
    local pb = keras.callbacks.Progbar.new(1000, {dynamic = false, out = out, clock = function() return t end})
    text = {}
    pb.steps, t = 2, 1
    pb:update(1000, {})
    assert.are.equal("1000/1000 [==============================] - 1s 500ms/step\n", table.concat(text))
  end)
end)

describe("the C loop with several targets (what a model with several outputs runs on)", function()
  it("feeds extra targets and weights, averages per-output losses, metrics per output", function()
    -- o1 = x W1, o2 = x W2 (W1 = 2, W2 = -1), x = (1, 2): o1 = (2, 4), o2 = (-1, -2);
    -- t1 = (1, 1): L1 = (1 + 9) / 2 = 5, mae 2; t2 = (0, 0), w2 = (1, 3): L2 = (1 + 3 * 4) / 2
    -- = 6.5, mae 1.5 (unweighted); total = L1 + 0.5 L2 = 8.25. With batches of one row the
    -- averages are the same: L1 (1, 9), L2 (1, 12), totals (1.5, 15).
    local core = require("keras.core")
    local g = core.graph_new()
    local x = g:placeholder{shape = {-1, 1}, name = "x"}
    local t1 = g:placeholder{shape = {-1, 1}, name = "t1"}
    local t2 = g:placeholder{shape = {-1, 1}, name = "t2"}
    local w1 = g:placeholder{shape = {-1}, name = "w1"}
    local w2 = g:placeholder{shape = {-1}, name = "w2"}
    local o1 = g:op("dot", {x, g:variable(keras.array({{2}}), true, "W1")}, {})
    local o2 = g:op("dot", {x, g:variable(keras.array({{-1}}), true, "W2")}, {})
    local l1 = g:op("mean_squared_error", {t1, o1, w1}, {})
    local l2 = g:op("mean_squared_error", {t2, o2, w2}, {})
    local total = g:op("add", {l1, g:op("mul_scalar", {l2}, {scalar = 0.5})}, {})
    local p = core.plan_new(g, {feeds = {x, t1, t2, w1, w2}, outputs = {o1, o2, l1, l2}, loss = total})
    local XX, T1, T2 = keras.array({{1}, {2}}), keras.array({{1}, {1}}), keras.array({{0}, {0}})
    for _, bs in ipairs({1, 2}) do
      local loss, m = p:evaluate({XX}, T1, {batch_size = bs, extra = {T2, false, keras.array({1, 3})},
        metrics = {"mae", "mae", "output_mean", "output_mean"}, metric_keys = {"a", "b", "l1", "l2"},
        metric_outputs = {1, 2, 3, 4}, metric_targets = {1, 2, 1, 1}})
      assert.are.equal(8.25, loss)
      assert.are.same({a = 2, b = 1.5, l1 = 5, l2 = 6.5}, m)
    end
    -- labels / weights of every loss are checked over the data, with the data's rows
    assert.are.equal("evaluate: mean_squared_error: sample_weight -3 at row 2 must be finite and >= 0",
      S.err_of(function() p:evaluate({XX}, T1, {extra = {T2, false, keras.array({1, -3})}}) end))
    assert.are.equal("evaluate: metric_targets[1] = 5 out of range [1, 4]",
      S.err_of(function() p:evaluate({XX}, T1, {extra = {T2, false, false},
        metrics = {"mae"}, metric_targets = {5}}) end))
    -- predict gives every output of an inference plan
    local q = core.plan_new(g, {feeds = {x}, outputs = {o1, o2}})
    local a, b = q:predict({XX}, 1)
    assert.are.same({{2}, {4}}, a:totable())
    assert.are.same({{-1}, {-2}}, b:totable())
  end)
end)
