-- examples/keras_sparse.lua: a tour of keras-lua's sparse support in the Keras API: a sparse
-- Input into Dense with a row_sparse kernel, Embedding with a row_sparse gradient, sparse
-- backend ops (sum, mean, dot, concatenate) and prepare_sliced_sparse_data.
local keras = require("keras")
local K = keras.backend
local L = keras.layers

keras.random.seed(3)
local n, features, vocab, len = 1000, 200, 50, 6

-- sparse backend ops
local X = keras.sparse.rand({n, features}, "csr", 0.02, {seed = 3})
print("X:", X, "nnz:", X.data.shape[1])
print("sum(X) =", K.sum(X):item(), " mean over rows ->", K.mean(X, 1).shape[1], "values")
local W = keras.random.normal({features, 4})
print("dot(X, W):", K.dot(X, W), " dot(X^T, G) with G dense:", K.dot(X, keras.ones({n, 4}), {transpose_a = true}))
print("concat(X, X):", K.concatenate({X, X}, 2))

-- prepare_sliced_sparse_data: whole batches only, stype kept
local Xs = keras.data_utils.prepare_sliced_sparse_data(X, 32)
print(string.format("prepare_sliced_sparse_data: %d rows -> %d rows (%s)", n, Xs.shape[1], Xs.stype))

-- a two-input model: sparse features through a row_sparse Dense, token ids through Embedding
local ids = keras.random.uniform({n, len}, {low = 0, high = vocab + 1})
local idt = {}
for i, row in ipairs(ids:totable()) do
  idt[i] = {}
  for j, v in ipairs(row) do idt[i][j] = math.min(vocab, math.floor(v)) end
end
ids = keras.array(idt)
local target = K.dot(X, keras.random.normal({features, 1})) + K.mean(ids, 2, true) * 0.01

local xin = L.Input{shape = {features}, sparse = true, name = "features"}
local tin = L.Input{shape = {len}, name = "tokens"}
local h1 = L.Dense{units = 8, sparse_weight = true, name = "sparse_dense"}(xin)
local e = L.Embedding{input_dim = vocab, output_dim = 8, input_length = len, sparse_grad = true}(tin)
local h2 = L.GlobalAveragePooling1D{}(e)
local out = L.Dense{units = 1}(L.Concatenate{}({h1, h2}))
local model = keras.Model{inputs = {xin, tin}, outputs = out, name = "keras_sparse"}
model:summary()
model:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.01}, loss = "mse", metrics = {"mae"}}
local h = model:fit({Xs, ids:slice(1, Xs.shape[1])}, target:slice(1, Xs.shape[1]),
  {batch_size = 32, epochs = 5, verbose = 2})
local first, last = h.history.loss[1], h.history.loss[#h.history.loss]
print(string.format("loss %.4f -> %.4f", first, last))
print("kernel stype:", model:get_layer("sparse_dense").weights[1].stype)
return {rows = Xs.shape[1], stype = Xs.stype, first_loss = first, last_loss = last}
