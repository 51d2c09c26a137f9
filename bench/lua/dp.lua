-- dp.lua: the data-parallel workloads (issue 15): W3 and W1 trained with
-- model:compile{distributed = true}, run by bench/run under `mpirun -np NP` (also at np = 1,
-- where the same script trains alone). batch_size is the global batch: each rank trains on
-- its 1/NP of every batch and the plan's gradient hook sums the shares' gradients (dense:
-- allreduce; row_sparse: allgatherv of the rows, or an allreduce of the union rows).
--
-- Timing: one model:fit of 1 + RUNS epochs; the epochs are timed by a callback (the figure is
-- the median of the RUNS epochs after the first, per step), so the broadcast of rank 0's
-- weights and optimizer states that starts every distributed fit is not in the step time;
-- it is reported in the note as "fit start". Only rank 0 prints.
--   RESULT DP-<workload>-np<NP> keras-lua 1 <seconds per step> <runs> <note>
--   XCHG DP-<workload>-np<NP> keras-lua <NP> <sent/step> <recv/step> <weight bytes> <note>
-- (XCHG: bytes this rank sent / received per step by the hook's counters, hook_stats, and
-- the bytes of all weights: a dense ring allreduce of the gradients would move 2 x that.)
--
-- usage: lua5.4 bench/lua/dp.lua W3 V STEPS RUNS
--        lua5.4 bench/lua/dp.lua W1 ROWS COLS RUNS BATCH[,BATCH...] LR YSCALE
local keras = require("keras")
local K = keras.backend
local B = require("benchutil")
local dist = keras.distributed

local rank, size = dist.init()
local which = arg[1]

local function say(...)
  if rank == 0 then B.result(...) end
end

-- hook_stats of the model's training plan, or zeros when no hook is attached (np = 1)
local function stats(model)
  local s = model._train_plan and dist._stats(model._train_plan)
  return s or {steps = 0, bytes_recv = 0, bytes_sent = 0, sparse_gather = 0, sparse_allreduce = 0}
end

local function weight_bytes(model)
  local n = 0
  for _, w in ipairs(model:get_weight_tensors()) do n = n + B.tensor_bytes(w) end
  return n
end

-- Trains 1 + runs epochs in one fit; returns the median timed epoch (s), the fit's start
-- (s: fit's total minus its epochs), the last loss and the hook's counters over the timed
-- epochs.
local function run(model, x, y, bs, runs)
  local times, t0 = {}, 0
  local s0
  local cb = keras.callbacks.LambdaCallback{
    on_epoch_begin = function(e)
      if e == 2 then s0 = stats(model) end -- fit numbers epochs from 1: the first timed one
      t0 = B.now()
    end,
    on_epoch_end = function() times[#times + 1] = B.now() - t0 end,
  }
  dist.barrier()
  local f0 = B.now()
  local h = model:fit(x, y, {batch_size = bs, epochs = 1 + runs, verbose = 0, shuffle = false,
                             callbacks = {cb}})
  local total = B.now() - f0
  local s1 = stats(model)
  local sum = 0
  for _, t in ipairs(times) do sum = sum + t end
  table.remove(times, 1) -- the warm-up epoch
  local d = {}
  for k, v in pairs(s1) do d[k] = v - (s0 and s0[k] or 0) end
  return B.median(times), total - sum, h.history.loss[1 + runs], d
end

local function xchg(wl, d, wbytes, note)
  if rank ~= 0 or size == 1 then return end
  local steps = math.max(d.steps, 1)
  io.write(string.format("XCHG %s keras-lua %d %.0f %.0f %.0f %s\n", wl, size, d.bytes_sent / steps,
                         d.bytes_recv / steps, wbytes,
                         string.format("gather=%d allreduce=%d steps=%d; %s", d.sparse_gather,
                                       d.sparse_allreduce, d.steps, note)))
  io.flush()
end

if which == "W3" then
  local V, steps, runs = math.tointeger(tonumber(arg[2])), math.tointeger(tonumber(arg[3])),
    math.tointeger(tonumber(arg[4]))
  local bs, L, D = 256, 20, 64
  local n = bs * steps
  -- the ids of bench/lua/w3.lua (the same LCG), the same on every rank
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
  local X = #xs == 1 and xs[1] or K.concatenate(xs, 1)
  local y = #yv == 1 and yv[1] or K.concatenate(yv, 1)
  xs, yv = nil, nil
  collectgarbage()
  local inp = keras.layers.Input{shape = {L}, dtype = "int64"}
  local h = keras.layers.Embedding{input_dim = V, output_dim = D, input_length = L, sparse_grad = true}(inp)
  h = keras.layers.GlobalAveragePooling1D{}(h)
  local model = keras.Model{inputs = inp, outputs = keras.layers.Dense{units = 1}(h)}
  model:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.001, lazy_update = true},
                loss = "mse", distributed = true}
  local wl = string.format("DP-W3-V1e%d-np%d", math.floor(math.log(V, 10) + 0.5), size)
  local t, start, loss, d = run(model, X, y, bs, runs)
  say(wl, "keras-lua", t / steps, runs, string.format("per step; global batch %d (%d a rank); " ..
      "loss=%.4g steps=%d; fit start %.3f s", bs, bs // size, loss, steps, start))
  xchg(wl, d, weight_bytes(model), string.format("embedding %dx%d f32 + dense 64x1", V, D))
elseif which == "W1" then
  local rows, cols = math.tointeger(tonumber(arg[2])), math.tointeger(tonumber(arg[3]))
  local runs = math.tointeger(tonumber(arg[4]))
  local lr, yscale = tonumber(arg[6]), tonumber(arg[7])
  keras.random.seed(7)
  local X = keras.sparse.rand({rows, cols}, "csr", 0.01, {seed = 7}) -- the same on every rank
  local y = K.dot(X, keras.range(1, cols):reshape({cols, 1})) / yscale
  for b in arg[5]:gmatch("%d+") do
    local bs = math.tointeger(tonumber(b))
    local model = keras.Sequential{
      keras.layers.Input{shape = {cols}, sparse = true},
      keras.layers.Dense{units = 1, sparse_weight = true,
        kernel_initializer = keras.initializers.Normal{stddev = 0.01}},
    }
    model:compile{optimizer = keras.optimizers.SGD{learning_rate = lr, momentum = 0.9},
                  loss = "mse", distributed = true}
    local steps = (rows + bs - 1) // bs
    local wl = string.format("DP-W1-b%d-np%d", bs, size)
    local t, start, loss, d = run(model, X, y, bs, runs)
    say(wl, "keras-lua", t / steps, runs, string.format("per step; global batch %d (%d a rank); " ..
        "loss=%.4g steps=%d; fit start %.3f s", bs, bs // size, loss, steps, start))
    xchg(wl, d, weight_bytes(model), string.format("kernel %dx1 f32 + bias", cols))
  end
else
  error("dp.lua: the first argument must be W3 or W1. Received: " .. tostring(which))
end
dist.barrier()
-- Leave without lua_close (see bench/lua/w3.lua); MPI is finalized at exit.
os.exit(0, false)
