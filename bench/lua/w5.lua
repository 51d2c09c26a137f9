-- w5.lua: W5, one epoch of logistic regression on a LibSVM file: Dense(1, sparse_weight,
-- sigmoid), binary_crossentropy, Adagrad lr 0.1, batch 512, shuffle off. Each run trains a
-- fresh model for one epoch (timed: model:fit only); the log-loss is model:evaluate on the
-- training data after the last run's epoch.
-- usage: lua5.4 bench/lua/w5.lua FILE N_FEATURES RUNS
local keras = require("keras")
local B = require("benchutil")

local path, nf, runs = arg[1], math.tointeger(tonumber(arg[2])), math.tointeger(tonumber(arg[3]))
local X, y = keras.data_utils.load_svmlight_file(path, {n_features = nf})
local model
local function fresh()
  keras.random.seed(7)
  model = keras.Sequential{
    keras.layers.Input{shape = {nf}, sparse = true},
    keras.layers.Dense{units = 1, sparse_weight = true, activation = "sigmoid"},
  }
  model:compile{optimizer = keras.optimizers.Adagrad{learning_rate = 0.1}, loss = "binary_crossentropy"}
end
local ts = {}
for i = 0, runs do -- run 0: warm-up
  fresh()
  collectgarbage()
  local t0 = B.now()
  model:fit(X, y, {batch_size = 512, epochs = 1, verbose = 0, shuffle = false})
  if i > 0 then ts[i] = B.now() - t0 end
end
local loss = model:evaluate(X, y, {batch_size = 4096})
B.result("W5-logreg", "keras-lua", B.median(ts), runs, string.format("1 epoch Adagrad; log-loss=%.4f", loss))
io.write(string.format("LOSS W5-logreg keras-lua %d %.5f one epoch, Adagrad lr 0.1, batch 512\n", B.threads(), loss))
-- Leave without lua_close: closing the state dlcloses core.so (and with it libgomp) while
-- OpenMP worker threads live, which crashes at exit with OMP_NUM_THREADS > 1 (see README).
os.exit(0, false)
