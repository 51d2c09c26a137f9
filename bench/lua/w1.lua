-- w1.lua: W1, the Keras-MXNet sparse benchmark: ROWS x COLS CSR at density 0.01,
-- y = X . (1..COLS) / COLS, Dense(1, sparse_weight), SGD lr 0.001 momentum 0.9, mse; one
-- epoch of model:fit (shuffle off, verbose 0) per run, median of RUNS runs after a warm-up
-- epoch, for each batch size.
-- W2 (the seed tutorial) is the same script: 1000 x 100, batch 1, 10 epochs, y = X . (1..100),
-- lr 0.05 (examples/sparse_linear_regression.lua).
-- usage: lua5.4 bench/lua/w1.lua NAME ROWS COLS RUNS BATCH[,BATCH...] EPOCHS LR YSCALE [mem]
--   NAME: workload name, "%d" replaced by the batch size (W1-b%d); YSCALE divides y.
local keras = require("keras")
local K = keras.backend
local B = require("benchutil")

local name = arg[1]
local rows, cols = math.tointeger(tonumber(arg[2])), math.tointeger(tonumber(arg[3]))
local runs = math.tointeger(tonumber(arg[4]))
local batches = {}
for b in arg[5]:gmatch("%d+") do batches[#batches + 1] = math.tointeger(tonumber(b)) end
local epochs, lr, yscale = math.tointeger(tonumber(arg[6])), tonumber(arg[7]), tonumber(arg[8])
local mem = arg[9] == "mem"

B.rss_note("start")
keras.random.seed(7)
local X = keras.sparse.rand({rows, cols}, "csr", 0.01, {seed = 7})
local y = K.dot(X, keras.range(1, cols):reshape({cols, 1})) / yscale
collectgarbage()
B.rss_note("data made")

for _, bs in ipairs(batches) do
  local model = keras.Sequential{
    keras.layers.Input{shape = {cols}, sparse = true},
    keras.layers.Dense{units = 1, sparse_weight = true,
      kernel_initializer = keras.initializers.Normal{stddev = 0.01}},
  }
  model:compile{optimizer = keras.optimizers.SGD{learning_rate = lr, momentum = 0.9}, loss = "mse"}
  local loss
  local function epoch()
    local h = model:fit(X, y, {batch_size = bs, epochs = epochs, verbose = 0, shuffle = false})
    loss = h.history.loss[epochs]
  end
  local wl = name:gsub("%%d", tostring(bs))
  if mem then
    epoch()
    B.rss_note("after an epoch")
    local data = B.tensor_bytes(X) + B.tensor_bytes(y)
    local weights = cols * 4 + 4
    B.mem(wl, "keras-lua", data + 2 * weights,
          string.format("X %.1f MiB + y + kernel/bias + SGD momentum", B.tensor_bytes(X) / 1048576))
  else
    local t = B.median_time(epoch, runs)
    B.result(wl, "keras-lua", t, runs, string.format("loss=%.4g steps=%d", loss, epochs * ((rows + bs - 1) // bs)))
  end
end
-- Leave without lua_close: closing the state dlcloses core.so (and with it libgomp) while
-- OpenMP worker threads live, which crashes at exit with OMP_NUM_THREADS > 1 (see README).
os.exit(0, false)
