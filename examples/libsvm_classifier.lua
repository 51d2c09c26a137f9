-- examples/libsvm_classifier.lua: trains a sparse binary classifier from LibSVM files:
-- the training file is streamed in CSR batches by LibSVMIter (memory bounded by the batch),
-- the validation file is loaded whole by load_svmlight_file; a CSVLogger writes one row per
-- epoch, ModelCheckpoint keeps the best weights (when the model can be saved) and
-- plot_history draws the curves. The data is made by examples/make_libsvm_data.lua.
--   lua5.4 examples/libsvm_classifier.lua [out_dir=libsvm_example_out]
-- KERAS_LUA_EXAMPLE_QUICK=1 uses a smaller data set and fewer epochs;
-- KERAS_LUA_EXAMPLE_OUT=dir sets the output folder.
local keras = require("keras")
local L = keras.layers
local du = keras.data_utils

local quick = os.getenv("KERAS_LUA_EXAMPLE_QUICK") == "1"
local out = os.getenv("KERAS_LUA_EXAMPLE_OUT") or (arg and arg[0] and
  arg[0]:match("libsvm_classifier%.lua$") and arg[1]) or "libsvm_example_out"
local rows, features, epochs = quick and 1500 or 20000, quick and 200 or 2000, quick and 6 or 10
os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'")

-- 1. the data: a gzipped training file and a plain validation file, same hidden rule
local here = (debug.getinfo(1, "S").source:sub(2):match("(.*/)")) or "./"
local maker = dofile(here .. "make_libsvm_data.lua")
local train_path, val_path = out .. "/train.svm.gz", out .. "/val.svm"
maker.make{path = train_path, rows = rows, features = features, seed = 1}
-- the same hidden rule (seed), other rows (part 1)
local tmp = maker.make{path = val_path, rows = rows // 4, features = features, seed = 1, part = 1}
print(string.format("data: %s (%d rows), %s (%d rows), %d features", train_path, rows, val_path,
  tmp.rows, features))

-- 2. the inputs: a streaming iterator for training, an in-memory CSR for validation
local train = du.LibSVMIter{path = train_path, n_features = features, batch_size = 64}
local Xv, yv = du.load_svmlight_file(val_path, {n_features = features})

-- 3. a logistic regression on sparse input (a row_sparse kernel: only the rows of the
-- features a batch uses are read and updated)
local model = keras.Sequential{
  L.Input{shape = {features}, sparse = true},
  L.Dense{units = 1, activation = "sigmoid", sparse_weight = true, name = "logit"},
}
model:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.02},
  loss = "binary_crossentropy", metrics = {"accuracy"}}

local csv_path = out .. "/training.csv"
local cbs = {keras.callbacks.CSVLogger{filename = csv_path}}
local ckpt_path
if model.save_weights or model.save then
  ckpt_path = out .. "/best.kl"
  cbs[#cbs + 1] = keras.callbacks.ModelCheckpoint{filepath = ckpt_path, monitor = "val_loss",
    save_best_only = true}
end

local h = model:fit(train, nil, {epochs = epochs, verbose = quick and 0 or 2,
  validation_data = {Xv, yv}, callbacks = cbs})
train:close()

local plot_path = keras.utils.plot_history(h, out .. "/history.png",
  {title = "LibSVM classifier"})
local n = #h.history.loss
local result = {
  epochs = n,
  first_loss = h.history.loss[1], last_loss = h.history.loss[n],
  val_loss = h.history.val_loss[n], val_accuracy = h.history.val_accuracy[n],
  csv = csv_path, plot = plot_path, checkpoint = ckpt_path,
}
print(string.format("loss %.4f -> %.4f, val_loss %.4f, val_accuracy %.4f", result.first_loss,
  result.last_loss, result.val_loss, result.val_accuracy))
print("log: " .. csv_path .. "  plot: " .. plot_path ..
  (ckpt_path and ("  checkpoint: " .. ckpt_path) or "  (no checkpoint: model saving not available)"))
return result
