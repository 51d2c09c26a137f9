-- spec/api_contract_spec.lua: every public name of API.md's "keras.backend", "keras.layers",
-- "Models", "Optimizers, losses, metrics, callbacks", "keras.data_utils" and
-- "keras.autograd" sections, called with the documented argument forms.
local keras = require("keras")
local K = keras.backend
local L = keras.layers
local sparse = keras.sparse
local S = require("support")

local function csr34()
  return sparse.csr_matrix{data = {1, 2, 3}, indices = {1, 3, 2}, indptr = {1, 3, 3, 4}, shape = {3, 4}}
end

describe("keras.backend", function()
  it("placeholder{shape=, sparse=, dtype=, name=} with -1 for the batch dim", function()
    local x = K.placeholder{shape = {-1, 4}, sparse = true, dtype = "float64", name = "x"}
    assert.are.same({-1, 4}, K.int_shape(x))
    assert.are.equal(2, K.ndim(x))
    assert.are.equal("float64", K.dtype(x))
    assert.are.equal("csr", x.stype)
    assert.is_true(K.is_sparse(x))
    -- a sparse placeholder holds CSR: a CSR feed stays CSR
    local f = K.func({x}, x)
    local v = f(csr34():astype("float64"))
    assert.are.equal("csr", v.stype)
    assert.are.same(csr34():totable(), v:totable())
    local d = K.placeholder{shape = {-1, 2}}
    assert.is_false(K.is_sparse(d))
    assert.are.equal("float32", K.dtype(d))
  end)
  it("variable(value, {dtype=, name=, stype=}) and constant", function()
    local v = K.variable({{1, 0}, {0, 2}}, {dtype = "float64", name = "w", stype = "row_sparse"})
    assert.are.equal("row_sparse", v.stype)
    assert.are.equal("float64", K.dtype(v))
    assert.is_true(K.is_sparse(v))
    assert.are.same({{1, 0}, {0, 2}}, K.to_dense(v):totable())
    local c = K.constant({1, 2, 3})
    assert.are.same({3}, K.int_shape(c))
    assert.are.same({{5, 5}, {5, 5}}, K.constant(5, {shape = {2, 2}}):totable())
  end)
  it("to_dense on tensors and sparse nodes", function()
    assert.are.equal("default", K.to_dense(csr34()).stype)
    local x = K.placeholder{shape = {-1, 4}, sparse = true}
    assert.are.equal("default", K.to_dense(x).stype)
    assert.are.same(csr34():totable(), K.func({x}, K.to_dense(x))(csr34()):totable())
  end)
  it("the ops compute at once on tensors", function()
    local a = keras.array{{1, 2}, {3, 4}}
    assert.are.same({{7, 10}, {15, 22}}, K.dot(a, a):totable())
    assert.are.equal(10, K.sum(a):item())
    assert.are.equal(0, K.sum(a).ndim)
    assert.are.same({4, 6}, K.sum(a, 1):totable())
    assert.are.same({{3}, {7}}, K.sum(a, -1, true):totable())
    assert.are.equal(2.5, K.mean(a):item())
    assert.are.same({1.5, 3.5}, K.mean(a, 2):totable())
    assert.are.same({{1, 2, 1, 2}, {3, 4, 3, 4}}, K.concatenate({a, a}):totable())
    assert.are.same({{1, 2}, {3, 4}, {1, 2}, {3, 4}}, K.concatenate({a, a}, 1):totable())
    assert.are.same({{1, 3}, {2, 4}}, K.transpose(a):totable())
    assert.are.same({{1, 4}, {9, 16}}, K.square(a):totable())
    S.assert_near(K.sqrt(a):totable(), {{1, math.sqrt(2)}, {math.sqrt(3), 2}}, 1e-6)
    S.assert_near(K.exp(a):totable()[1], {math.exp(1), math.exp(2)}, 1e-6)
    S.assert_near(K.log(a):totable()[2], {math.log(3), math.log(4)}, 1e-6)
    assert.are.same({0, 2}, K.relu(keras.array{-1, 2}):totable())
    S.assert_near(K.sigmoid(keras.array{0}):totable(), {0.5}, 1e-7)
    S.assert_near(K.tanh(keras.array{0.5}):totable(), {(math.exp(1) - 1) / (math.exp(1) + 1)}, 1e-6)
    S.assert_near(K.softmax(keras.array{{0, 0}}):totable(), {{0.5, 0.5}}, 1e-7)
    assert.are.equal(a, K.eval(a))
  end)
  it("sparse inputs stay sparse (storage-type inference)", function()
    local c = csr34()
    local w = keras.ones({4, 2})
    assert.are.equal("default", K.dot(c, w).stype)
    assert.are.equal("row_sparse", K.dot(c, keras.ones({3, 2}), {transpose_a = true}).stype)
    assert.are.equal("csr", K.concatenate({c, c}).stype)
    assert.are.equal("default", K.sum(c).stype)
    assert.are.equal(6, K.sum(c):item())
  end)
  it("the ops build graph nodes on placeholders; func and eval run them", function()
    local x = K.placeholder{shape = {-1, 4}, sparse = true}
    local w = K.variable(keras.ones({4, 2}))
    local y = K.relu(K.dot(x, w))
    assert.are.same({-1, 2}, K.int_shape(y))
    assert.are.equal("csr", K.concatenate({x, x}).stype)
    local f = K.func({x}, {y, K.sum(y)})
    local r = f(csr34())
    assert.are.same({{3, 3}, {0, 0}, {3, 3}}, r[1]:totable())
    assert.are.equal(12, r[2]:item())
    local z = K.sum(K.variable(keras.ones({2, 2})) * 1) -- eager (no node)
    assert.are.equal(4, K.eval(z):item())
  end)
  it("gradients(loss, variables) evaluated by func", function()
    local x = K.placeholder{shape = {-1, 4}, sparse = true}
    local w = K.variable(keras.ones({4, 1}), {stype = "row_sparse"})
    local loss = K.sum(K.dot(x, w))
    local g = K.gradients(loss, {w})
    local gv = K.func({x}, g)(csr34())[1]
    assert.are.equal("row_sparse", gv.stype)
    assert.are.same({{1}, {3}, {2}, {0}}, gv:tostype("default"):totable())
  end)
end)

describe("keras.layers", function()
  it("Input, Dense with every documented option", function()
    local x = L.Input{shape = {4}, sparse = true, dtype = "float32", name = "in"}
    assert.are.same({-1, 4}, x.shape)
    local d = L.Dense{units = 2, activation = "relu", use_bias = true, sparse_weight = true,
      kernel_initializer = "glorot_uniform", bias_initializer = "zeros", name = "dense_a"}
    local y = d(x)
    assert.are.equal("dense_a", d.name)
    assert.are.same({-1, 2}, y.shape)
    assert.are.equal(2, #d.weights)
    assert.are.equal("row_sparse", d.weights[1].stype)
    local ws = d:get_weights()
    assert.are.same({4, 2}, ws[1].shape)
    d:set_weights({keras.ones({4, 2}), keras.array{1, -100}})
    assert.are.same({{5, 0}, {1, 0}, {1, 0}}, -- relu(x . ones + {1, -100})
      K.func({x}, y)(sparse.csr_matrix{data = {1, 1, 1, 1}, indices = {1, 2, 3, 4},
        indptr = {1, 5, 5, 5}, shape = {3, 4}}):totable())
    assert.are.same({{1, 1}, {1, 1}, {1, 1}, {1, 1}}, d:get_weights()[1]:tostype("default"):totable())
  end)
  it("Embedding{input_dim, output_dim, input_length, sparse_grad, embeddings_initializer}: id 0 pads", function()
    local ids = L.Input{shape = {3}}
    local e = L.Embedding{input_dim = 5, output_dim = 2, input_length = 3, sparse_grad = true,
      embeddings_initializer = "ones"}
    local y = e(ids)
    assert.are.same({-1, 3, 2}, y.shape)
    local v = K.func({ids}, y)(keras.array{{1, 0, 5}})
    assert.are.same({{{1, 1}, {0, 0}, {1, 1}}}, v:totable())
    local g = K.gradients(K.sum(y), {e.weights[1]})
    local gv = K.func({ids}, g)(keras.array{{1, 0, 5}})[1]
    assert.are.equal("row_sparse", gv.stype)
    assert.are.same({{1, 1}, {0, 0}, {0, 0}, {0, 0}, {1, 1}}, gv:tostype("default"):totable())
  end)
  it("Flatten, Activation, GlobalAveragePooling1D, Lambda", function()
    local x = L.Input{shape = {2, 3}}
    assert.are.same({-1, 6}, L.Flatten{}(x).shape)
    local a = L.Activation{"relu"}(x)
    local a2 = L.Activation{activation = "tanh"}(x)
    assert.are.same({-1, 2, 3}, a.shape)
    assert.are.same({-1, 2, 3}, a2.shape)
    local p = L.GlobalAveragePooling1D{}(x)
    assert.are.same({-1, 3}, p.shape)
    local l = L.Lambda{function(t) return t * 2 end}(x)
    local r = K.func({x}, {p, l})(keras.array{{{1, 2, 3}, {3, 4, 5}}})
    assert.are.same({{2, 3, 4}}, r[1]:totable())
    assert.are.same({{{2, 4, 6}, {6, 8, 10}}}, r[2]:totable())
    local l2 = L.Lambda{fn = function(t) return K.sum(t, 2) end}(x)
    assert.are.same({-1, 3}, l2.shape)
  end)
  it("Dropout{rate=} is active only in training", function()
    keras.random.seed(2)
    local m = keras.Sequential{L.Input{shape = {200}}, L.Dropout{rate = 0.5}}
    m:compile{optimizer = "sgd", loss = "mse"}
    local x = keras.ones({4, 200})
    assert.are.same(x:totable(), m:predict(x):totable()) -- inference: identity
    -- training: the loss against the input itself sees dropped (0) and scaled (2) entries
    local loss = m:train_on_batch(x, x)
    S.assert_near(loss, 1, 0.15) -- E[(d - 1)^2] = 1 for d in {0, 2}
    assert.is_true(loss > 0.5)
  end)
  it("Concatenate{axis=} gives csr when all inputs are csr", function()
    local a, b = L.Input{shape = {3}, sparse = true}, L.Input{shape = {2}, sparse = true}
    local c = L.Concatenate{axis = -1}({a, b})
    assert.are.equal("csr", c.stype)
    assert.are.same({-1, 5}, c.shape)
    local d = L.Input{shape = {2}}
    assert.are.equal("default", L.Concatenate{}({a, d}).stype)
    local v = K.func({a, b}, c)(sparse.csr_matrix{{1, 0, 2}}, sparse.csr_matrix{{0, 3}})
    assert.are.equal("csr", v.stype)
    assert.are.same({{1, 0, 2, 0, 3}}, v:totable())
  end)
end)

describe("Models", function()
  local function xy()
    keras.random.seed(3)
    local x = keras.random.normal({40, 3})
    local t = x:totable()
    local y = {}
    for i = 1, 40 do y[i] = {t[i][1] - 2 * t[i][2] > 0 and 1 or 0} end
    return x, keras.array(y)
  end
  local function clf(name)
    keras.random.seed(1)
    local x = L.Input{shape = {3}}
    local h = L.Dense{units = 4, activation = "tanh"}(x)
    local out = L.Dense{units = 1, activation = "sigmoid", name = "out"}(h)
    return keras.Model{inputs = x, outputs = out, name = name}
  end
  it("Model{inputs=, outputs=, name=}, compile with names, fit returns a History", function()
    local m = clf("clf")
    assert.are.equal("clf", m.name)
    m:compile{optimizer = "adam", loss = "binary_crossentropy", metrics = {"accuracy", "mae"}}
    local x, y = xy()
    local h = m:fit(x, y, {batch_size = 8, epochs = 3, verbose = 0, shuffle = true,
      validation_split = 0.25, callbacks = {}})
    assert.are.same({1, 2, 3}, h.epoch)
    assert.are.equal(3, #h.history.loss)
    assert.are.equal(3, #h.history.val_loss)
    assert.are.equal(3, #h.history.accuracy)
    assert.are.equal(3, #h.history.val_mae)
    local loss, mt = m:evaluate(x, y, {batch_size = 16})
    assert.is_number(loss)
    assert.is_number(mt.accuracy)
    assert.is_number(mt.mae)
    assert.is_nil(mt.binary_accuracy) -- keyed by the compile names
    local p = m:predict(x, {batch_size = 7})
    assert.is_true(keras.is_tensor(p))
    assert.are.same({40, 1}, p.shape)
    assert.are.equal(m:get_layer("out"), m.layers[#m.layers])
    local lines = {}
    m:summary(function(l) lines[#lines + 1] = l end)
    assert.are.equal('Model: "clf"', lines[1])
    assert.truthy(table.concat(lines, "\n"):find("out (Dense)", 1, true))
    assert.truthy(table.concat(lines, "\n"):find("Total params: 21", 1, true))
  end)
  it("every optimizer name compiles and trains", function()
    local x, y = xy()
    for _, name in ipairs({"sgd", "adam", "adagrad", "rmsprop", "ftrl"}) do
      local m = clf()
      m:compile{optimizer = name, loss = "mse", device = keras.cpu()}
      local h = m:fit(x, y, {epochs = 1, verbose = 0})
      assert.is_number(h.history.loss[1], name)
    end
  end)
  it("Sequential{layer, ...} and add; validation_data; a list of inputs", function()
    local m = keras.Sequential{L.Input{shape = {3}}}
    m:add(L.Dense{units = 1})
    assert.are.equal(1, #m.layers)
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.01}, loss = "mean_squared_error"}
    local x, y = xy()
    local h = m:fit({x}, y, {epochs = 2, verbose = 0, validation_data = {x, y}})
    assert.are.equal(2, #h.history.val_loss)
    local l1 = m:test_on_batch(x, y)
    local l2 = m:train_on_batch(x, y)
    assert.are.equal(l1, l2)
    assert.are.same({40, 1}, m:predict_on_batch(x).shape)
    local w = m:get_weights()
    assert.are.equal(2, #w)
    w[1] = keras.zeros({3, 1})
    m:set_weights(w)
    assert.are.same({{0}, {0}, {0}}, m:get_weights()[1]:totable())
  end)
  it("every loss and metric name", function()
    local x = keras.array{{0.2, 0.8}, {0.9, 0.1}}
    local onehot = keras.array{{0, 1}, {1, 0}}
    local ids = keras.array{2, 1}
    for _, loss in ipairs({"mse", "mean_squared_error", "mae", "binary_crossentropy",
        "categorical_crossentropy", "sparse_categorical_crossentropy"}) do
      local m = keras.Sequential{L.Input{shape = {2}}, L.Activation{"softmax"}}
      local metrics = loss == "sparse_categorical_crossentropy"
        and {"accuracy", "sparse_categorical_accuracy"}
        or {"mse", "mae", "accuracy", "binary_accuracy", "categorical_accuracy"}
      m:compile{optimizer = "sgd", loss = loss, metrics = metrics}
      local y = loss == "sparse_categorical_crossentropy" and ids or onehot
      local l, mt = m:evaluate(x, y)
      assert.is_number(l, loss)
      for _, n in ipairs(metrics) do assert.is_number(mt[n], loss .. " " .. n) end
      if loss ~= "sparse_categorical_crossentropy" then
        assert.are.equal(1, mt.categorical_accuracy)
      else
        assert.are.equal(1, mt.accuracy)
      end
    end
  end)
end)

describe("Optimizers", function()
  it("SGD with every documented option; create_state / update", function()
    local opt = keras.optimizers.SGD{learning_rate = 0.01, momentum = 0.01, nesterov = false,
      weight_decay = 0, clipvalue = 10, rescale_grad = 1, lazy_update = true}
    local w = keras.ones({4, 2}):tostype("row_sparse")
    local g = sparse.row_sparse_array{data = {{1, 2}, {4, 5}}, indices = {2, 3}, shape = {4, 2}}
    local s = opt:create_state(w)
    opt:update(w, g, s)
    S.assert_near(w:tostype("default"):totable(), {{1, 1}, {0.99, 0.98}, {0.96, 0.95}, {1, 1}}, 1e-6)
  end)
  it("Adam, Adagrad, RMSprop, Ftrl with their documented options", function()
    local opts = {
      Adam = {learning_rate = 0.001, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-7, lazy_update = true},
      Adagrad = {learning_rate = 0.01, epsilon = 1e-7},
      RMSprop = {learning_rate = 0.001},
      Ftrl = {learning_rate = 0.1},
    }
    for name, o in pairs(opts) do
      local opt = keras.optimizers[name](o)
      local w = keras.ones({3, 2})
      local s = opt:create_state(w)
      opt:update(w, keras.ones({3, 2}), s)
      assert.is_true(w:get(1, 1) < 1, name)
    end
  end)
end)

describe("Initializers", function()
  it("objects and names", function()
    local init = keras.initializers
    local n = init.Normal{mean = 0, stddev = 0.01}
    local u = init.Uniform{}
    local gu = init.GlorotUniform{}
    for _, i in ipairs({n, u, gu, init.Zeros{}, init.Ones{}}) do
      local m = keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 2, kernel_initializer = i}}
      assert.are.same({3, 2}, m:get_weights()[1].shape)
    end
    for _, name in ipairs({"normal", "glorot_uniform", "zeros"}) do
      local d = L.Dense{units = 2, kernel_initializer = name}
      d(L.Input{shape = {3}})
      if name == "zeros" then assert.are.same({{0, 0}, {0, 0}, {0, 0}}, d:get_weights()[1]:totable()) end
    end
    local d = L.Dense{units = 2, kernel_initializer = init.Ones{}}
    d(L.Input{shape = {3}})
    assert.are.same({{1, 1}, {1, 1}, {1, 1}}, d:get_weights()[1]:totable())
  end)
end)

describe("Callbacks", function()
  local function setup()
    keras.random.seed(4)
    local x = keras.random.normal({32, 2})
    local y = K.dot(x, keras.array{{1}, {-1}})
    local m = keras.Sequential{L.Input{shape = {2}}, L.Dense{units = 1}}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.05}, loss = "mse"}
    return m, x, y
  end
  it("Callback hooks get epochs from 1 and the logs", function()
    local m, x, y = setup()
    local ev = {}
    local cb = keras.callbacks.Callback{
      on_train_begin = function() ev[#ev + 1] = "train_begin" end,
      on_epoch_begin = function(_, epoch) ev[#ev + 1] = "epoch_begin " .. epoch end,
      on_batch_begin = function() end,
      on_batch_end = function() end,
      on_epoch_end = function(_, epoch, logs) ev[#ev + 1] = "epoch_end " .. epoch .. " " .. type(logs.loss) end,
      on_train_end = function() ev[#ev + 1] = "train_end" end,
    }
    m:fit(x, y, {epochs = 2, verbose = 0, callbacks = {cb}})
    assert.are.same({"train_begin", "epoch_begin 1", "epoch_end 1 number", "epoch_begin 2",
      "epoch_end 2 number", "train_end"}, ev)
  end)
  it("LearningRateScheduler{schedule=function(epoch, lr)} numbers epochs from 1", function()
    local m, x, y = setup()
    local calls = {}
    local sched = keras.callbacks.LearningRateScheduler{schedule = function(epoch, lr)
      calls[#calls + 1] = {epoch, lr}
      return epoch == 1 and lr or 0
    end}
    m:fit(x, y, {epochs = 3, verbose = 0, callbacks = {sched}})
    assert.are.equal(1, calls[1][1])
    assert.are.equal(3, calls[3][1])
    S.assert_near(calls[1][2], 0.05, 1e-7)
    -- epochs 2 and 3 ran with lr 0: the weights stop moving
    local w2 = m:get_weights()[1]:totable()
    m:fit(x, y, {epochs = 1, verbose = 0, callbacks = {keras.callbacks.LearningRateScheduler{
      schedule = function() return 0 end}}})
    assert.are.same(w2, m:get_weights()[1]:totable())
  end)
  it("EarlyStopping{monitor=, patience=, min_delta=, restore_best_weights=}", function()
    local m, x, y = setup()
    local seen, weights = {}, {}
    -- the loss blows up once the learning rate jumps to 5 (from epoch 3)
    local sched = keras.callbacks.LearningRateScheduler{schedule = function(epoch)
      return epoch <= 2 and 0.05 or 5
    end}
    local snap = keras.callbacks.Callback{on_epoch_end = function(_, epoch, logs)
      seen[epoch] = logs.loss
      weights[epoch] = m:get_weights()[1]:totable()
    end}
    local es = keras.callbacks.EarlyStopping{monitor = "loss", patience = 1, min_delta = 0,
      restore_best_weights = true}
    local h = m:fit(x, y, {epochs = 20, verbose = 0, callbacks = {sched, snap, es}})
    local last = #h.history.loss
    assert.is_true(last < 20)
    local best = 1
    for e = 1, last do if seen[e] < seen[best] then best = e end end
    assert.is_true(best < last)
    assert.are.same(weights[best], m:get_weights()[1]:totable())
    assert.are_not.same(weights[last], m:get_weights()[1]:totable())
  end)
  it("ModelCheckpoint and CSVLogger exist with their documented options", function()
    assert.is_not_nil(keras.callbacks.ModelCheckpoint)
    assert.is_not_nil(keras.callbacks.CSVLogger)
    local c = keras.callbacks.CSVLogger{filename = os.tmpname()}
    assert.is_true(keras.callbacks.is_callback(c))
  end)
  it("LambdaCallback", function()
    local m, x, y = setup()
    local n = 0
    m:fit(x, y, {epochs = 2, verbose = 0, callbacks = {keras.callbacks.LambdaCallback{
      on_epoch_end = function(epoch, logs) n = n + epoch end}}})
    assert.are.equal(3, n)
  end)
end)

describe("keras.data_utils", function()
  it("prepare_sliced_sparse_data(x, batch_size) keeps the stype", function()
    local x = sparse.rand({1000, 5}, "csr", 0.1, {seed = 1})
    local t = keras.data_utils.prepare_sliced_sparse_data(x, 32)
    assert.are.same({992, 5}, t.shape)
    assert.are.equal("csr", t.stype)
    local d = keras.data_utils.prepare_sliced_sparse_data(keras.zeros({10, 2}), 4)
    assert.are.same({8, 2}, d.shape)
  end)
  it("ArrayIterator{data=, label=, batch_size=, shuffle=, last_batch_handle=} with batches()", function()
    local x = csr34()
    local y = keras.array{1, 2, 3}
    for h, want in pairs({pad = {2, 2}, discard = {2}, roll_over = {2}}) do
      local it = keras.data_utils.ArrayIterator{data = x, label = y, batch_size = 2, shuffle = true,
        last_batch_handle = h}
      local sizes = {}
      for xb, yb in it:batches() do
        assert.are.equal("csr", xb.stype)
        assert.are.equal(xb.shape[1], yb.shape[1])
        sizes[#sizes + 1] = xb.shape[1]
      end
      assert.are.same(want, sizes, h)
    end
  end)
end)

describe("keras.autograd", function()
  it("record(fn) returns fn's results; backward overwrites .grad", function()
    local w = keras.array{{1}, {2}}
    w:attach_grad()
    local x = keras.array{{1, 1}}
    local loss, extra = keras.autograd.record(function()
      return K.sum(K.dot(x, w) * 3), 7
    end)
    assert.are.equal(7, extra)
    loss:backward()
    assert.are.same({{3}, {3}}, w.grad:totable())
    keras.autograd.record(function() return K.sum(K.dot(x, w)) end):backward()
    assert.are.same({{1}, {1}}, w.grad:totable()) -- written, not accumulated
  end)
  it("K.dot(csr, w) with attach_grad{stype='row_sparse'} gives a row_sparse gradient", function()
    local w = keras.ones({4, 1})
    w:attach_grad{stype = "row_sparse"}
    keras.autograd.record(function() return K.sum(K.dot(csr34(), w)) end):backward()
    assert.are.equal("row_sparse", w.grad.stype)
    assert.are.same({{1}, {3}, {2}, {0}}, w.grad:tostype("default"):totable())
  end)
end)
