-- examples/sparse_linear_regression.lua: the sparse linear regression tutorial (MXNet's
-- "Train a Linear Regression Model with Sparse Symbols", Keras-MXNet style): a 1000 x 100 CSR
-- dataset at density 0.01, y = X . (1..100), Dense(1) with a row_sparse kernel, SGD with
-- momentum at batch size 1. Prints each epoch's MSE; it ends below 1.
-- KERAS_LUA_EXAMPLE_QUICK=1 trains 3 epochs instead of 10.
local keras = require("keras")
local K = keras.backend

local quick = os.getenv("KERAS_LUA_EXAMPLE_QUICK") == "1"
local epochs = quick and 3 or 10

keras.random.seed(42)
local num_samples, num_features = 1000, 100
local X = keras.sparse.rand({num_samples, num_features}, "csr", 0.01, {seed = 42})
local true_w = keras.range(1, num_features):reshape({num_features, 1})
local y = K.dot(X, true_w) -- (1000, 1), dense

local model = keras.Sequential{
  keras.layers.Input{shape = {num_features}, sparse = true},
  keras.layers.Dense{units = 1, sparse_weight = true, use_bias = false,
    kernel_initializer = keras.initializers.Normal{stddev = 0.01}},
}
model:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.05, momentum = 0.9}, loss = "mse"}
model:summary()

local mse
model:fit(X, y, {batch_size = 1, epochs = epochs, verbose = 0, shuffle = false, callbacks = {
  keras.callbacks.LambdaCallback{on_epoch_end = function(epoch, logs)
    mse = model:evaluate(X, y, {batch_size = 100}) -- MSE over the data after the epoch
    print(string.format("Epoch %d, training loss: %.6f, MSE: %.6f", epoch, logs.loss, mse))
  end},
}})
local final = model:evaluate(X, y, {batch_size = 100})
print(string.format("final MSE: %.6f", final))
return {final_mse = final, last_epoch_mse = mse, epochs = epochs}
