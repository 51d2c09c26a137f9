-- examples/distributed_libsvm.lua: a LibSVM classifier trained data-parallel over MPI.
--   mpirun -np 2 lua5.4 examples/distributed_libsvm.lua [out_dir=dist_example_out]
--   lua5.4 examples/distributed_libsvm.lua          (the same script, one process)
-- Each rank streams its own part of the training file (LibSVMIter{num_parts, part_index});
-- every step sums the ranks' gradients (row_sparse ones as rows: only the features the
-- batches used travel), so all ranks hold the same weights; rank 0 prints and saves.
-- KERAS_LUA_EXAMPLE_QUICK=1 uses a smaller data set; KERAS_LUA_EXAMPLE_OUT=dir the folder.
local keras = require("keras")
local L, du, dist = keras.layers, keras.data_utils, keras.distributed

local rank, size = dist.init()
local quick = os.getenv("KERAS_LUA_EXAMPLE_QUICK") == "1"
local out = os.getenv("KERAS_LUA_EXAMPLE_OUT") or (arg and arg[0] and
  arg[0]:match("distributed_libsvm%.lua$") and arg[1]) or "dist_example_out"
local rows, features, epochs = quick and 2000 or 40000, quick and 300 or 5000, quick and 4 or 6

-- 1. the data, made once by rank 0 (the others wait at the barrier)
local here = (debug.getinfo(1, "S").source:sub(2):match("(.*/)")) or "./"
local train_path, val_path = out .. "/train.svm", out .. "/val.svm"
if rank == 0 then
  os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'")
  local maker = dofile(here .. "make_libsvm_data.lua")
  maker.make{path = train_path, rows = rows, features = features, seed = 7}
  maker.make{path = val_path, rows = rows // 4, features = features, seed = 7, part = 1}
end
dist.barrier()

-- 2. each rank reads its part of the training file; validation is small: every rank has it
local train = du.LibSVMIter{path = train_path, n_features = features, batch_size = 64,
  num_parts = size, part_index = rank + 1}
local Xv, yv = du.load_svmlight_file(val_path, {n_features = features})

-- 3. a logistic regression on sparse input, compiled for data parallelism
keras.random.seed(rank) -- each rank its own init: fit starts from rank 0's weights anyway
local model = keras.Sequential{
  L.Input{shape = {features}, sparse = true},
  L.Dense{units = 1, activation = "sigmoid", sparse_weight = true, name = "logit"},
}
model:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.02},
  loss = "binary_crossentropy", metrics = {"accuracy"}, distributed = true}

local t0 = keras.core.now()
local h = model:fit(train, nil, {epochs = epochs, verbose = (quick or rank ~= 0) and 0 or 2,
  validation_data = {Xv, yv}})
train:close()
local secs = keras.core.now() - t0

-- 4. rank 0 saves (save is a no-op elsewhere); every rank holds the same weights
local model_path = out .. "/model.kl"
model:save(model_path)
local stats = require("keras.distributed").is_mpi() and
  require("keras.distributed_mpi").hook_stats(model._train_plan) or nil
local n = #h.history.loss
local result = {
  ranks = size, epochs = n, seconds = secs,
  first_loss = h.history.loss[1], last_loss = h.history.loss[n],
  val_loss = h.history.val_loss[n], val_accuracy = h.history.val_accuracy[n],
  model = model_path, exchanged = stats and stats.bytes_recv or 0, steps = stats and stats.steps or 0,
}
if rank == 0 then
  print(string.format("%d rank(s), %d epochs in %.2f s: loss %.4f -> %.4f, val_loss %.4f, " ..
    "val_accuracy %.4f", size, n, secs, result.first_loss, result.last_loss, result.val_loss,
    result.val_accuracy))
  if stats then
    print(string.format("gradient exchange: %d steps, %.1f KB received a step by rank 0",
      stats.steps, stats.bytes_recv / math.max(1, stats.steps) / 1024))
  end
  print("model: " .. model_path)
end
return result
