-- spec/losses_metrics_spec.lua: the losses hinge, squared_hinge, poisson, huber (values worked
-- out by hand, finite-difference gradients, in compile by name and inside Lua loss
-- functions) and the metrics precision, recall, auc (keras.metrics.AUC), top-k categorical
-- accuracy and metric functions: exact values, accumulation over an epoch's batches (in the
-- C loop and over iterators), errors by message.
local keras = require("keras")
local S = require("support")
local K = keras.backend
local core = keras.core

local function f64(t) return keras.array(t, {dtype = "float64"}) end

describe("losses hinge, squared_hinge, poisson, huber", function()
  it("give Keras' values; 0/1 labels become -1/1 for the hinges", function()
    local yp = f64({0.2, -0.5, 1.5, 0.7})
    -- t' = -1, 1, 1, -1: max(1 - t'p, 0) = 1.2, 1.5, 0, 1.7
    for _, yt in ipairs({f64({0, 1, 1, 0}), f64({-1, 1, 1, -1})}) do
      S.assert_near(keras.losses.hinge(yt, yp):item(), 4.4 / 4, 1e-15)
      S.assert_near(keras.losses.squared_hinge(yt, yp):item(), (1.44 + 2.25 + 2.89) / 4, 1e-15)
    end
    -- a batch with a label outside {0, 1} is taken as is: t = 2, 1, 1, 0 gives 0.6, 1.5, 0, 1
    S.assert_near(keras.losses.hinge(f64({2, 1, 1, 0}), yp):item(), (0.6 + 1.5 + 0 + 1) / 4, 1e-15)
    local p = {0.5, 2, 1}
    local want = (0.5 - math.log(0.5 + 1e-7) + 2 - 2 * math.log(2 + 1e-7) + 1) / 3
    S.assert_near(keras.losses.poisson(f64({1, 2, 0}), f64(p)):item(), want, 1e-15)
    -- |e| <= 1: e^2 / 2; else |e| - 1/2
    S.assert_near(keras.losses.huber(f64({0, 0, 0}), f64({0.5, -2, 1})):item(), (0.125 + 1.5 + 0.5) / 3, 1e-15)
  end)
  it("accept y_true (n) against y_pred (n, 1) and float32", function()
    local v = keras.losses.huber(keras.array({0, 1}), keras.array({{0.5}, {3}})):item()
    S.assert_near(v, (0.125 + 1.5) / 2, 1e-7)
  end)

  local H = 1e-6
  -- d loss(yt, p) / dp by K.gradients against central differences
  local function gradcheck(name, yt_tab, p_tab)
    local yt = f64(yt_tab)
    local ph = K.placeholder{shape = {#p_tab, 1}, dtype = "float64"}
    local g = K.func({ph}, K.gradients(keras.losses[name](yt, ph), {ph})[1])(f64(p_tab)):totable()
    for i = 1, #p_tab do
      local function at(d)
        local q = {}
        for j, r in ipairs(p_tab) do q[j] = {r[1]} end
        q[i][1] = q[i][1] + d
        return keras.losses[name](yt, f64(q)):item()
      end
      local num = (at(H) - at(-H)) / (2 * H)
      assert(math.abs(num - g[i][1]) <= 1e-7 * (1 + math.abs(num)),
        string.format("%s [%d]: analytic %.12g, numeric %.12g", name, i, g[i][1], num))
    end
  end
  it("have gradients equal to central differences", function()
    local yt = {{0}, {1}, {1}, {0}, {1}}
    local p = {{0.2}, {-0.5}, {1.5}, {0.7}, {0.3}} -- 1 - t'p: 1.2, 1.5, -0.5, 1.7, 0.7
    gradcheck("hinge", yt, p)
    gradcheck("squared_hinge", yt, p)
    gradcheck("poisson", {{1}, {2}, {0}, {3}, {0.5}}, {{0.5}, {2}, {1}, {0.1}, {4}})
    gradcheck("huber", yt, {{0.2}, {-0.5}, {3.5}, {-1.7}, {1.9}})
  end)
  it("train by name, and Lua loss functions of graph nodes keep working", function()
    local x = keras.array({{1, 0}, {0, 1}, {1, 1}, {0, 0}})
    for _, loss in ipairs({"hinge", "squared_hinge", "poisson", "huber",
        function(yt, yp) return keras.losses.huber(yt, yp) + K.mean(K.square(yp - yt)) end}) do
      keras.random.seed(5)
      local inp = keras.layers.Input{shape = {2}}
      local act = loss == "poisson" and "softplus" or nil
      local out = keras.layers.Dense{units = 1, activation = act == "softplus" and "sigmoid" or nil}(inp)
      local m = keras.Model{inputs = inp, outputs = out}
      m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1}, loss = loss}
      local y = keras.array({{1}, {1}, {1}, {0}})
      local h = m:fit(x, y, {epochs = 40, batch_size = 4, verbose = 0})
      assert(h.history.loss[40] < h.history.loss[1], tostring(loss) .. ": the loss did not fall")
      local l = m:evaluate(x, y)
      assert(l == l)
    end
  end)
  it("are named in the unknown-loss error", function()
    local inp = keras.layers.Input{shape = {2}}
    local m = keras.Model{inputs = inp, outputs = keras.layers.Dense{units = 1}(inp)}
    assert.matches("hinge, squared_hinge, poisson, huber",
      S.err_of(m.compile, m, {optimizer = "sgd", loss = "cosine"}))
  end)
end)

-- ------------------------------------------------------------ metric states (core)

local function acc(spec, batches)
  local a = core.metric_acc(spec)
  for _, b in ipairs(batches) do a:update(f64(b[1]), f64(b[2])) end
  return a:result()
end

-- the exact ROC AUC (Mann-Whitney; ties count one half)
local function exact_auc(labels, preds)
  local pos, neg, s = 0, 0, 0
  for i = 1, #labels do if labels[i] == 1 then pos = pos + 1 else neg = neg + 1 end end
  for i = 1, #labels do
    if labels[i] == 1 then
      for j = 1, #labels do
        if labels[j] == 0 then
          s = s + (preds[i] > preds[j] and 1 or preds[i] == preds[j] and 0.5 or 0)
        end
      end
    end
  end
  return s / (pos * neg)
end

describe("precision, recall, auc, top_k_categorical_accuracy", function()
  local P = {0.9, 0.6, 0.4, 0.2, 0.7}
  local L = {1, 0, 1, 0, 0}
  it("precision = TP / (TP + FP), recall = TP / (TP + FN) at 0.5, over all batches", function()
    -- predicted positive: 0.9, 0.6, 0.7 (TP 1); positives: 0.9, 0.4
    assert.are.equal(1 / 3, acc("precision", {{L, P}}))
    assert.are.equal(1 / 2, acc("recall", {{L, P}}))
    local split = {{{1, 0}, {0.9, 0.6}}, {{1, 0}, {0.4, 0.2}}, {{0}, {0.7}}}
    assert.are.equal(1 / 3, acc("precision", split))
    assert.are.equal(1 / 2, acc("recall", split))
    -- nothing predicted positive / no positive: 0, as Keras' divide_no_nan
    assert.are.equal(0, acc("precision", {{{1, 0}, {0.1, 0.2}}}))
    assert.are.equal(0, acc("recall", {{{0, 0}, {0.9, 0.2}}}))
  end)
  it("auc is within 0.01 of the exact ROC AUC and does not depend on the batching", function()
    local labels, preds, state = {}, {}, 7
    for i = 1, 1000 do
      state = (state * 1103515245 + 12345) % 2147483648
      local p = state / 2147483648
      state = (state * 1103515245 + 12345) % 2147483648
      preds[i] = p
      labels[i] = (state / 2147483648 < 0.3 + 0.5 * p) and 1 or 0
    end
    local whole = acc("auc", {{labels, preds}})
    local ex = exact_auc(labels, preds)
    assert(math.abs(whole - ex) < 0.01, string.format("auc %.6f vs exact %.6f", whole, ex))
    assert(math.abs(whole - ex) > 0, "bucketed, not exact")
    local batches = {}
    for b = 1, 1000, 7 do
      local l, p = {}, {}
      for i = b, math.min(b + 6, 1000) do l[#l + 1] = labels[i]; p[#p + 1] = preds[i] end
      batches[#batches + 1] = {l, p}
    end
    assert.are.equal(whole, acc("auc", batches))
    -- fewer thresholds: coarser, still close
    local coarse = acc({metric = "auc", param = 20}, {{labels, preds}})
    assert(coarse ~= whole and math.abs(coarse - ex) < 0.02, tostring(coarse))
  end)
  it("auc of a perfect and a reversed ranking, and tf.keras' value on a small case", function()
    assert.are.equal(1, acc("auc", {{{0, 0, 1, 1}, {0.1, 0.4, 0.6, 0.9}}}))
    assert.are.equal(0, acc("auc", {{{1, 1, 0, 0}, {0.1, 0.4, 0.6, 0.9}}}))
    -- tf.keras.metrics.AUC(num_thresholds=3): thresholds -1e-7, 0.5, 1+1e-7; points
    -- (FPR, TPR) = (1, 1), (1/2, 1/2), (0, 0): trapezoids 0.375 + 0.125
    assert.are.equal(0.5, acc({metric = "auc", param = 3}, {{{0, 0, 1, 1}, {0.1, 0.6, 0.4, 0.9}}}))
  end)
  it("top_k_categorical_accuracy: the true class's score has fewer than k larger ones", function()
    local yt = {{0, 0, 1}, {1, 0, 0}, {0, 1, 0}}
    local yp = {{0.5, 0.3, 0.2}, {0.6, 0.3, 0.1}, {0.4, 0.4, 0.2}}
    assert.are.equal(1, acc("top_k_categorical_accuracy", {{yt, yp}})) -- k = 5 >= C
    assert.are.equal(2 / 3, acc({metric = "top_k_categorical_accuracy", param = 1}, {{yt, yp}}))
    assert.are.equal(2 / 3, acc({metric = "top_k_categorical_accuracy", param = 2}, {{yt, yp}}))
  end)
  it("name bad labels, predictions and parameters", function()
    assert.matches("precision: label 2 at row 1 is not 0 or 1", S.err_of(acc, "precision", {{{2}, {0.5}}}))
    assert.matches("auc: label %-1 at row 2 is not 0 or 1", S.err_of(acc, "auc", {{{1, -1}, {0.5, 0.2}}}))
    assert.matches("auc: y_pred 1.5 out of range %[0, 1%] at row 2",
      S.err_of(acc, "auc", {{{1, 0}, {0.5, 1.5}}}))
    assert.matches("auc: num_thresholds must be in %[2, 1000000%], got 1",
      S.err_of(core.metric_acc, {metric = "auc", param = 1}))
    assert.matches("AUC: num_thresholds must be an integer >= 2. Received: num_thresholds=1",
      S.err_of(keras.metrics.AUC, {num_thresholds = 1}))
    assert.matches("unknown metric 'f1'", S.err_of(core.metric_acc, "f1"))
  end)
end)

-- ------------------------------------------------------------ in models

-- A model whose output is its 1-wide input (so y_pred is the data given, in float32).
local function identity_model(metrics, loss)
  local inp = keras.layers.Input{shape = {1}}
  local d = keras.layers.Dense{units = 1, use_bias = false, kernel_initializer = "ones"}
  local m = keras.Model{inputs = inp, outputs = d(inp)}
  m:compile{optimizer = "sgd", loss = loss or "binary_crossentropy", metrics = metrics}
  return m
end

local function col(t) local r = {} for i, v in ipairs(t) do r[i] = {v} end return keras.array(r) end

describe("metrics in compile", function()
  local P = {0.9, 0.6, 0.4, 0.2, 0.7}
  local L = {1, 0, 1, 0, 0}
  it("precision, recall and auc accumulate over the epoch's batches (C loop, iterators)", function()
    local m = identity_model({"precision", "recall", "auc", keras.metrics.AUC{num_thresholds = 3, name = "auc3"}})
    assert.are.same({"precision", "recall", "auc", "auc3"}, m.metric_names)
    local _, mt = m:evaluate(col(P), col(L), {batch_size = 2})
    S.assert_near(mt.precision, 1 / 3, 1e-15)
    S.assert_near(mt.recall, 1 / 2, 1e-15)
    S.assert_near(mt.auc, exact_auc(L, P), 1e-12)
    local whole = acc({metric = "auc", param = 3}, {{L, P}})
    assert.are.equal(whole, mt.auc3)
    local it = keras.data_utils.ArrayIterator{data = col(P), label = col(L), batch_size = 2}
    local _, mi = m:evaluate(it)
    assert.are.same(mt, mi)
    -- fit logs the same accumulated values (lr 0: the weights do not move)
    m.optimizer:set_learning_rate(0)
    local h = m:fit(col(P), col(L), {batch_size = 2, epochs = 1, verbose = 0, shuffle = false})
    S.assert_near(h.history.precision[1], 1 / 3, 1e-15)
    S.assert_near(h.history.auc[1], mt.auc, 1e-15)
    -- (batches of 1: a padded last batch would be trained on with its pad rows, as MXNet)
    local it1 = keras.data_utils.ArrayIterator{data = col(P), label = col(L), batch_size = 1}
    local h2 = m:fit(it1, nil, {epochs = 1, verbose = 0})
    S.assert_near(h2.history.recall[1], 1 / 2, 1e-15)
  end)
  it("train_on_batch gives the batch's values", function()
    local m = identity_model({"precision", keras.metrics.AUC{}})
    m.optimizer:set_learning_rate(0)
    local _, mt = m:train_on_batch(col(P), col(L))
    S.assert_near(mt.precision, 1 / 3, 1e-15)
    S.assert_near(mt.auc, exact_auc(L, P), 1e-12)
  end)
  it("metric functions of (y_true, y_pred) are averaged over samples (batches by size)", function()
    local absdiff = function(yt, yp) return K.abs(yt - yp) end
    local m = identity_model({absdiff, keras.metrics.MeanMetricWrapper{
      fn = function(yt, yp) return K.mean(K.square(yt - yp)) end, name = "sq"}}, "mse")
    assert.are.same({"metric_1", "sq"}, m.metric_names)
    local a, s = 0, 0
    for i = 1, 5 do a = a + math.abs(L[i] - P[i]) / 5; s = s + (L[i] - P[i]) ^ 2 / 5 end
    for _, bs in ipairs({1, 2, 5}) do
      local loss, mt = m:evaluate(col(P), col(L), {batch_size = bs})
      S.assert_near(mt.metric_1, a, 1e-7)
      S.assert_near(mt.sq, s, 1e-7)
      S.assert_near(loss, s, 1e-7)
    end
    local it = keras.data_utils.ArrayIterator{data = col(P), label = col(L), batch_size = 2}
    local _, mi = m:evaluate(it)
    S.assert_near(mi.metric_1, a, 1e-7)
    local _, mb = m:train_on_batch(col(P), col(L))
    S.assert_near(mb.sq, s, 1e-7)
  end)
  it("top_k_categorical_accuracy by name and object", function()
    local inp = keras.layers.Input{shape = {3}}
    local m = keras.Model{inputs = inp, outputs = keras.layers.Activation{"linear"}(inp)}
    m:compile{optimizer = "sgd", loss = "categorical_crossentropy", metrics = {
      "top_k_categorical_accuracy", keras.metrics.TopKCategoricalAccuracy{k = 1, name = "top1"}}}
    local _, mt = m:evaluate(keras.array({{0.5, 0.3, 0.2}, {0.6, 0.3, 0.1}, {0.4, 0.4, 0.2}}),
      keras.array({{0, 0, 1}, {1, 0, 0}, {0, 1, 0}}))
    assert.are.equal(1, mt.top_k_categorical_accuracy)
    S.assert_near(mt.top1, 2 / 3, 1e-15)
  end)
  it("errors name the metric", function()
    local inp = keras.layers.Input{shape = {1}}
    local m = keras.Model{inputs = inp, outputs = keras.layers.Dense{units = 1}(inp)}
    assert.matches("unknown metric 'f1'", S.err_of(m.compile, m, {optimizer = "sgd", loss = "mse", metrics = {"f1"}}))
    assert.matches("two metrics are named 'auc'",
      S.err_of(m.compile, m, {optimizer = "sgd", loss = "mse", metrics = {"auc", keras.metrics.AUC{}}}))
    m:compile{optimizer = "sgd", loss = "mse", metrics = {function() return 1 end}}
    assert.matches("metric 'metric_1' must return a graph node",
      S.err_of(m.evaluate, m, keras.array({{1}}), keras.array({{1}})))
    local mm = identity_model({"auc"}, "mse")
    assert.matches("auc: y_pred 2 out of range %[0, 1%] at row 1",
      S.err_of(mm.evaluate, mm, col({2}), col({1})))
  end)
end)
