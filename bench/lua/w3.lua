-- w3.lua: W3, sparse embeddings: Embedding(V, 64, sparse_grad) -> GlobalAveragePooling1D ->
-- Dense(1), mse, lazy Adam; batches of 256 x 20 ids (uniform in 1..V, seeded), STEPS steps
-- per epoch (one model:fit epoch, shuffle off); the figure is the time per step (median
-- epoch time / STEPS), median of RUNS epochs after a warm-up epoch.
-- usage: lua5.4 bench/lua/w3.lua V STEPS RUNS [mem]
local keras = require("keras")
local B = require("benchutil")

local V, steps, runs = math.tointeger(tonumber(arg[1])), math.tointeger(tonumber(arg[2])),
  math.tointeger(tonumber(arg[3]))
local mem = arg[4] == "mem"
local bs, L, D = 256, 20, 64
local n = bs * steps

B.rss_note("start")
-- ids from a splitmix-style LCG, so that the data does not depend on Lua's math.random;
-- built as tensors of 1,024 rows joined by K.concatenate, so that no nested Lua table of
-- all the ids (~25 MB of Lua heap at 51,200 x 20, never handed back to the system) is held
local state = 7
local xs, yv = {}, {}
for i0 = 1, n, 1024 do
  local rows, ys = {}, {}
  for i = i0, math.min(n, i0 + 1023) do
    local r = {}
    for j = 1, L do
      state = (state * 6364136223846793005 + 1442695040888963407)
      r[j] = ((state >> 11) % V) + 1
    end
    rows[#rows + 1] = r
    ys[#ys + 1] = {(state >> 40) % 2}
  end
  xs[#xs + 1] = keras.array(rows, {dtype = "int64"})
  yv[#yv + 1] = keras.array(ys)
end
local X = #xs == 1 and xs[1] or keras.backend.concatenate(xs, 1)
local y = #yv == 1 and yv[1] or keras.backend.concatenate(yv, 1)
xs, yv = nil, nil
collectgarbage()
B.rss_note("data made")

local inp = keras.layers.Input{shape = {L}, dtype = "int64"}
local h = keras.layers.Embedding{input_dim = V, output_dim = D, input_length = L, sparse_grad = true}(inp)
h = keras.layers.GlobalAveragePooling1D{}(h)
local out = keras.layers.Dense{units = 1}(h)
local model = keras.Model{inputs = inp, outputs = out}
model:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.001, lazy_update = true}, loss = "mse"}
B.rss_note("model built")
local loss
local function epoch()
  local hist = model:fit(X, y, {batch_size = bs, epochs = 1, verbose = 0, shuffle = false})
  loss = hist.history.loss[1]
end
local wl = V >= 1e6 and string.format("W3-V1e%d", math.floor(math.log(V, 10) + 0.5)) or
  string.format("W3-V1e%d", math.floor(math.log(V, 10) + 0.5))
if mem then
  epoch()
  B.rss_note("after an epoch")
  local weights = V * D * 4 + D * 4 + 4
  B.mem(wl, "keras-lua", B.tensor_bytes(X) + B.tensor_bytes(y) + 3 * weights,
        "ids + y + embedding/dense weights + Adam m, v")
else
  local t = B.median_time(epoch, runs)
  B.result(wl, "keras-lua", t / steps, runs, string.format("per step; loss=%.4g steps=%d", loss, steps))
end
-- Leave without lua_close: closing the state dlcloses core.so (and with it libgomp) while
-- OpenMP worker threads live, which crashes at exit with OMP_NUM_THREADS > 1 (see README).
os.exit(0, false)
