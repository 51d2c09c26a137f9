-- spec/keras_bad_input_spec.lua: the "Bad input" list of the Keras layer (issue 3), each
-- message asserted verbatim: bad layer arguments, unknown option keys, a layer called on an
-- incompatible shape, fit with x/y row counts that differ, class labels out of range,
-- Embedding ids out of range, fit before compile, unknown loss/optimizer/metric names.
local keras = require("keras")
local K = keras.backend
local L = keras.layers

local function fails(msg, f)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error: " .. msg)
  assert.are.equal(msg, err)
end

local function softmax3()
  return keras.Sequential{L.Input{shape = {2}, name = "in"}, L.Dense{units = 3, activation = "softmax"}}
end

describe("bad layer arguments", function()
  it("name the layer, the argument and the value", function()
    fails("Dense: units must be a positive integer. Received: units=-3", function() return L.Dense{units = -3} end)
    fails("Dense: units must be a positive integer. Received: units=1.5", function() return L.Dense{units = 1.5} end)
    fails("Dense: use_bias must be a boolean. Received: use_bias='yes'", function() return L.Dense{units = 1, use_bias = "yes"} end)
    fails("Dense: sparse_weight must be a boolean. Received: sparse_weight=1", function() return L.Dense{units = 1, sparse_weight = 1} end)
    fails("Dense: unknown activation 'relux' (relu, sigmoid, tanh, softmax, exp, linear or a function)",
      function() return L.Dense{units = 1, activation = "relux"} end)
    fails("Dense: unknown initializer 'foo' (normal, uniform, glorot_uniform, zeros, ones)",
      function() return L.Dense{units = 1, kernel_initializer = "foo"} end)
    fails("Embedding: input_dim must be a positive integer. Received: input_dim=0",
      function() return L.Embedding{input_dim = 0, output_dim = 2} end)
    fails("Embedding: output_dim must be a positive integer. Received: output_dim=2.5",
      function() return L.Embedding{input_dim = 3, output_dim = 2.5} end)
    fails("Embedding: sparse_grad must be a boolean. Received: sparse_grad='no'",
      function() return L.Embedding{input_dim = 3, output_dim = 2, sparse_grad = "no"} end)
    fails("Dropout: rate must be a number in [0, 1). Received: rate=1", function() return L.Dropout{rate = 1} end)
    fails("Dropout: rate must be a number in [0, 1). Received: rate=-0.5", function() return L.Dropout{-0.5} end)
    fails("Concatenate: axis must be a non-zero integer. Received: axis=0", function() return L.Concatenate{axis = 0} end)
    fails("Activation: unknown activation 'foo' (relu, sigmoid, tanh, softmax, exp, linear or a function)",
      function() return L.Activation{"foo"} end)
    fails("Lambda: fn must be a function. Received: fn=3", function() return L.Lambda{3} end)
    fails("Input: shape must be a table of positive integers. Received: shape={0}", function() return L.Input{shape = {0}} end)
    fails("Input: shape is required (without the batch dimension)", function() return L.Input{} end)
    fails("Input: a sparse input must be 1-d per sample (CSR rows). Received: shape={2, 3}",
      function() return L.Input{shape = {2, 3}, sparse = true} end)
  end)
end)

describe("unknown option keys", function()
  it("in layers, K, models, optimizers, callbacks, initializers and iterators", function()
    fails("Dense: unknown option 'unit'", function() return L.Dense{unit = 3} end)
    fails("Input: unknown option 'shap'", function() return L.Input{shap = {3}} end)
    fails("Embedding: unknown option 'vocab'", function() return L.Embedding{input_dim = 3, output_dim = 2, vocab = 3} end)
    fails("placeholder: unknown option 'sparce'", function() return K.placeholder{shape = {-1, 2}, sparce = true} end)
    fails("variable: unknown option 'stpye'", function() return K.variable(1, {stpye = "csr"}) end)
    fails("Model: unknown option 'input'", function() return keras.Model{input = L.Input{shape = {2}}} end)
    local m = softmax3()
    fails("Model.compile: unknown option 'metric'", function() m:compile{optimizer = "sgd", loss = "mse", metric = {"acc"}} end)
    m:compile{optimizer = "sgd", loss = "mse"}
    fails("Model.fit: unknown option 'epoch'", function() m:fit(keras.ones({4, 2}), keras.ones({4, 3}), {epoch = 3}) end)
    fails("Model.evaluate: unknown option 'batchsize'", function() m:evaluate(keras.ones({4, 2}), keras.ones({4, 3}), {batchsize = 3}) end)
    fails("Model.predict: unknown option 'batchsize'", function() m:predict(keras.ones({4, 2}), {batchsize = 2}) end)
    fails("Adam: unknown option 'beta1'", function() return keras.optimizers.Adam{beta1 = 1} end)
    fails("SGD: learning_rate must be >= 0. Received: learning_rate=-1", function() return keras.optimizers.SGD{learning_rate = -1} end)
    fails("EarlyStopping: unknown option 'patiense'", function() return keras.callbacks.EarlyStopping{patiense = 1} end)
    fails("Normal: unknown option 'std'", function() return keras.initializers.Normal{std = 1} end)
    fails("ArrayIterator: unknown option 'batchsize'",
      function() return keras.data_utils.ArrayIterator{data = keras.ones({2, 2}), batchsize = 1} end)
  end)
end)

describe("a layer called on an incompatible shape", function()
  it("Dense, Embedding, GlobalAveragePooling1D, Concatenate", function()
    local d = L.Dense{units = 2, name = "d_in3"}
    d(L.Input{shape = {3}})
    fails("Dense: input 1 of layer 'd_in3' is incompatible with the layer: expected axis -1 of input " ..
      "shape to have value 3, but received input with shape (None, 4)", function() return d(L.Input{shape = {4}}) end)
    fails("Embedding: input 1 of layer 'emb4' is incompatible with the layer: expected axis 2 of input " ..
      "shape to have value 4, but received input with shape (None, 3)",
      function() return L.Embedding{input_dim = 5, output_dim = 2, input_length = 4, name = "emb4"}(L.Input{shape = {3}}) end)
    fails("Embedding: layer 'emb2d' expects ids of shape (batch, length), got (None, 3, 2)",
      function() return L.Embedding{input_dim = 5, output_dim = 2, name = "emb2d"}(L.Input{shape = {3, 2}}) end)
    fails("GlobalAveragePooling1D: layer 'gap' expects a 3-d input (batch, steps, features), got (None, 4)",
      function() return L.GlobalAveragePooling1D{name = "gap"}(L.Input{shape = {4}}) end)
    fails("Concatenate: layer 'cat1' needs at least 2 inputs, got 1",
      function() return L.Concatenate{name = "cat1"}({L.Input{shape = {2}}}) end)
    fails("Dense: expected a graph node (keras.layers.Input or a layer output), got a tensor",
      function() return L.Dense{units = 1}(keras.ones({2, 2})) end)
  end)
  it("data of the wrong shape for the model's input or output", function()
    local m = softmax3()
    m:compile{optimizer = "sgd", loss = "categorical_crossentropy"}
    fails("Model.fit: x[1] has shape (4, 3) but input 'in' of the model expects (None, 2)",
      function() m:fit(keras.ones({4, 3}), keras.ones({4, 3}), {verbose = 0}) end)
    fails("Model.predict: x[1] has shape (4, 2, 1) but input 'in' of the model expects (None, 2)",
      function() m:predict(keras.ones({4, 2, 1})) end)
    fails("Model.fit: y has shape (4, 2) but the model's output has shape (None, 3)",
      function() m:fit(keras.ones({4, 2}), keras.ones({4, 2}), {verbose = 0}) end)
    fails("Model.fit: the model has 1 input(s), got 2 tensor(s)",
      function() m:fit({keras.ones({4, 2}), keras.ones({4, 2})}, keras.ones({4, 3}), {verbose = 0}) end)
  end)
  it("a graph that does not reach the inputs", function()
    local a, b = L.Input{shape = {2}, name = "a_in"}, L.Input{shape = {2}, name = "b_in"}
    fails("Model: graph disconnected: the outputs need input 'b_in', which is not among the model's inputs",
      function() return keras.Model{inputs = a, outputs = L.Dense{units = 1}(b)} end)
  end)
end)

describe("fit with x and y row counts that differ", function()
  it("in fit, evaluate, train_on_batch and validation_data", function()
    local m = softmax3()
    m:compile{optimizer = "sgd", loss = "sparse_categorical_crossentropy"}
    fails("Model.fit: x and y have different numbers of rows: x has 4, y has 3",
      function() m:fit(keras.ones({4, 2}), keras.array{1, 2, 3}, {verbose = 0}) end)
    fails("Model.evaluate: x and y have different numbers of rows: x has 4, y has 5",
      function() m:evaluate(keras.ones({4, 2}), keras.array{1, 2, 3, 1, 1}) end)
    fails("Model.train_on_batch: x and y have different numbers of rows: x has 2, y has 1",
      function() m:train_on_batch(keras.ones({2, 2}), keras.array{1}) end)
    fails("Model.fit (validation_data): x and y have different numbers of rows: x has 2, y has 3",
      function() m:fit(keras.ones({4, 2}), keras.array{1, 2, 3, 1},
        {verbose = 0, validation_data = {keras.ones({2, 2}), keras.array{1, 1, 1}}}) end)
    fails("ArrayIterator: data and label have different numbers of rows: 4 and 3",
      function() return keras.data_utils.ArrayIterator{data = keras.ones({4, 2}), label = keras.ones({3})} end)
  end)
end)

describe("class labels out of range", function()
  it("sparse_categorical labels outside 1..C, in fit, evaluate and the metric", function()
    local m = softmax3()
    m:compile{optimizer = "sgd", loss = "sparse_categorical_crossentropy", metrics = {"accuracy"}}
    fails("fit: sparse_categorical_crossentropy: label 4 out of range [1, 3] at row 1",
      function() m:fit(keras.ones({4, 2}), keras.array{4, 1, 2, 3}, {verbose = 0, shuffle = false}) end)
    fails("fit: sparse_categorical_crossentropy: label 0 out of range [1, 3] at row 4",
      function() m:fit(keras.ones({4, 2}), keras.array{1, 2, 3, 0}, {verbose = 0, shuffle = false}) end)
    fails("evaluate: sparse_categorical_crossentropy: label 5 out of range [1, 3] at row 3",
      function() m:evaluate(keras.ones({4, 2}), keras.array{1, 2, 5, 1}) end)
    fails("sparse_categorical_crossentropy: label -1 out of range [1, 3] at row 2",
      function() m:train_on_batch(keras.ones({2, 2}), keras.array{1, -1}) end)
  end)
end)

describe("Embedding ids out of range", function()
  local function emb_model()
    local m = keras.Sequential{L.Input{shape = {2}}, L.Embedding{input_dim = 5, output_dim = 2},
      L.Flatten{}, L.Dense{units = 1}}
    m:compile{optimizer = "sgd", loss = "mse"}
    return m
  end
  it("above input_dim and negative, in fit, predict and K.func", function()
    local m = emb_model()
    fails("Embedding: id 6 out of range [0, 5] at position (1, 2)",
      function() m:fit(keras.array{{1, 6}}, keras.array{1}, {verbose = 0}) end)
    fails("Embedding: id -1 out of range [0, 5] at position (1, 1)",
      function() m:fit(keras.array{{-1, 2}}, keras.array{1}, {verbose = 0}) end)
    fails("Embedding: id 7 out of range [0, 5] at position (2, 1)",
      function() m:predict(keras.array{{1, 2}, {7, 1}}) end)
    local ids = L.Input{shape = {2}}
    local f = K.func({ids}, L.Embedding{input_dim = 3, output_dim = 2}(ids))
    fails("Embedding: id -2 out of range [0, 3] at position (1, 2)", function() return f(keras.array{{1, -2}}) end)
    -- 0 (padding) and input_dim itself are in range
    assert.are.same({1, 2, 2}, f(keras.array{{0, 3}}).shape)
  end)
end)

describe("fit before compile", function()
  it("fit, evaluate, train_on_batch and test_on_batch refuse an uncompiled model", function()
    local m = softmax3()
    local msg = "Model: you must compile the model before training"
    fails(msg, function() m:fit(keras.ones({4, 2}), keras.ones({4, 3})) end)
    fails(msg, function() m:evaluate(keras.ones({4, 2}), keras.ones({4, 3})) end)
    fails(msg, function() m:train_on_batch(keras.ones({4, 2}), keras.ones({4, 3})) end)
    fails(msg, function() m:test_on_batch(keras.ones({4, 2}), keras.ones({4, 3})) end)
    assert.are.same({4, 3}, m:predict(keras.ones({4, 2})).shape) -- predict needs no compile
  end)
end)

describe("unknown loss, optimizer or metric names", function()
  it("are refused at compile with the known names", function()
    local m = softmax3()
    fails("optimizers: unknown optimizer 'sgdx' (sgd, adam, adagrad, rmsprop, ftrl)",
      function() m:compile{optimizer = "sgdx", loss = "mse"} end)
    fails("losses: unknown loss 'msex' (mse, mae, binary_crossentropy, categorical_crossentropy, " ..
      "sparse_categorical_crossentropy, hinge, squared_hinge, poisson, huber)",
      function() m:compile{optimizer = "sgd", loss = "msex"} end)
    fails("metrics: unknown metric 'acc2' (mse, mae, accuracy, binary_accuracy, categorical_accuracy, " ..
      "sparse_categorical_accuracy, top_k_categorical_accuracy, precision, recall, auc, or a function)",
      function() m:compile{optimizer = "sgd", loss = "mse", metrics = {"acc2"}} end)
    fails("Model.compile: optimizer is required", function() m:compile{loss = "mse"} end)
    fails("Model.compile: loss is required", function() m:compile{optimizer = "sgd"} end)
    assert.is_false(m.compiled)
  end)
end)
