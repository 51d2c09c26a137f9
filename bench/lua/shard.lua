-- shard.lua: SHARD, the sharded-embedding workload (issue 16): W3's model (Embedding(V, 64,
-- sparse_grad) -> GlobalAveragePooling1D -> Dense(1), mse, lazy Adam, global batches of
-- 256 x 20 ids from w3.lua's LCG, STEPS steps an epoch, shuffle off) compiled with
-- distributed = true and run by bench/run under `mpirun -np NP` with a V large enough that
-- one process holds a large share of the machine (full: V = 8e6: 1.9 GiB of table, 5.7 GiB
-- with Adam's m and v).
--   MODE sharded: Embedding{sharded = true}: rank r holds rows r, r + n, ... and their Adam
--     states (distributed/sharded.c); at np = 1 an ordinary Embedding (impl "keras-lua").
--   MODE plain: the data-parallel Embedding, the table and its states replicated on every
--     rank (the row_sparse gradients exchanged by the plan's hook).
-- Timing as bench/lua/dp.lua: one fit of 1 + RUNS epochs, timed by an epoch callback; the
-- figure is rank 0's median epoch / STEPS.
-- Memory: every rank's VmHWM (/proc/self/status) at the end, gathered on rank 0.
-- Exchange: the shard's counters (shard_stats: the forward's ids out and rows back, the
-- backward's rows to their owners; a rank's own rows included, as Alltoallv copies them) plus
-- the hook's (hook_stats: the Dense's dense gradient, counted 2 x its bytes; for MODE plain
-- the row_sparse gather too), over the timed epochs, per step, rank 0. For MODE sharded the
-- script also counts the same bytes from the ids themselves (each rank's share of each
-- batch, deduplicated, grouped by owner) and says whether they equal the counters; the ids
-- that cross to another rank are the "off-rank" part.
-- Lines (rank 0):
--   RESULT SHARD-W3-V<v>-np<NP> <impl> 1 <seconds per step> <runs> <note>
--   RSS SHARD-W3-V<v>-np<NP> <impl> <NP> <rank> <VmHWM bytes> <floor bytes> <note>
--   SXCHG SHARD-W3-V<v>-np<NP> <impl> <NP> <sent/step> <recv/step> <off-rank sent/step>
--         <off-rank recv/step> <table + dense weight bytes> <note>
-- usage: lua5.4 bench/lua/shard.lua V STEPS RUNS sharded|plain
local keras = require("keras")
local K = keras.backend
local B = require("benchutil")
local dist = keras.distributed

local rank, size = dist.init()
local V, steps, runs = math.tointeger(tonumber(arg[1])), math.tointeger(tonumber(arg[2])),
  math.tointeger(tonumber(arg[3]))
local mode = arg[4]
if not (V and steps and runs) or (mode ~= "sharded" and mode ~= "plain") then
  error("usage: lua5.4 bench/lua/shard.lua V STEPS RUNS sharded|plain")
end
local sharded = mode == "sharded"
local bs, L, D = 256, 20, 64
local n = bs * steps

local function note_rss(what) B.rss_note(string.format("[rank %d/%d %s] %s", rank, size, mode, what)) end

-- "8e6" for 8000000, "1e3" for 1000; else the number
local function vname(v)
  local e = math.floor(math.log(v, 10) + 1e-9)
  local m = v / 10 ^ e
  if m == math.floor(m) then return string.format("%de%d", math.floor(m), e) end
  return tostring(v)
end
local wl = string.format("SHARD-W3-V%s-np%d", vname(V), size)
local impl = size == 1 and "keras-lua" or (sharded and "keras-lua-sharded" or "keras-lua-replicated")

note_rss("start")
-- The ids and labels of bench/lua/w3.lua (the same LCG), the same on every rank; built in
-- 1,024-row tensors (4 steps each). While they are made, each step's ids are counted as the
-- sharded exchange sees them: per rank q of the world, the distinct ids of its share of the
-- step's batch (rows [256 q / n, 256 (q + 1) / n), as fit splits a global batch), by owner
-- ((id - 1) mod n).
local U, A, self_ = {}, {}, {} -- per rank: ids it sends, ids it is asked for, of them its own
for r = 0, size - 1 do U[r], A[r], self_[r] = 0, 0, 0 end
local function count_step(rows)
  for q = 0, size - 1 do
    local seen, own = {}, {}
    for r = 0, size - 1 do own[r] = 0 end
    for i = (bs * q) // size + 1, (bs * (q + 1)) // size do
      for _, id in ipairs(rows[i]) do
        if id ~= 0 and not seen[id] then
          seen[id] = true
          U[q] = U[q] + 1
          local o = (id - 1) % size
          own[o] = own[o] + 1
        end
      end
    end
    for r = 0, size - 1 do A[r] = A[r] + own[r] end
    self_[q] = self_[q] + own[q]
  end
end
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
  for s0 = 1, #rows, bs do count_step(table.move(rows, s0, s0 + bs - 1, 1, {})) end
  xs[#xs + 1] = keras.array(rows, {dtype = "int64"})
  yv[#yv + 1] = keras.array(ys)
end
local X = #xs == 1 and xs[1] or K.concatenate(xs, 1)
local y = #yv == 1 and yv[1] or K.concatenate(yv, 1)
xs, yv = nil, nil
collectgarbage()
note_rss("data made")

local inp = keras.layers.Input{shape = {L}, dtype = "int64"}
local emb = keras.layers.Embedding{input_dim = V, output_dim = D, input_length = L, sparse_grad = true,
                                   sharded = sharded}
local h = keras.layers.GlobalAveragePooling1D{}(emb(inp))
local model = keras.Model{inputs = inp, outputs = keras.layers.Dense{units = 1}(h)}
model:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.001, lazy_update = true},
              loss = "mse", distributed = true}
note_rss("model built")

-- counters: the shard's (nil unless sharded over n > 1) and the hook's (nil at np = 1)
local function counters()
  local c = {steps = 0, sent = 0, recv = 0, hsent = 0, hrecv = 0}
  local p = model._train_plan
  if not p or size == 1 then return c end
  local hs = dist._stats(p)
  if hs then c.hsent, c.hrecv, c.steps = hs.bytes_sent, hs.bytes_recv, hs.steps end
  local mpi = dist._module()
  for _, rec in ipairs(rawget(emb, "_shard_nodes") or {}) do
    if rec.gs == model.gs then
      local s = mpi.shard_stats(p, rec.id)
      if s then c.sent, c.recv, c.ssteps = c.sent + s.bytes_sent, c.recv + s.bytes_recv, s.steps end
    end
  end
  return c
end

local times, t0, c0 = {}, 0, nil
local cb = keras.callbacks.LambdaCallback{
  on_epoch_begin = function(e)
    if e == 2 then c0 = counters() end -- the first timed epoch
    t0 = B.now()
  end,
  on_epoch_end = function() times[#times + 1] = B.now() - t0 end,
}
dist.barrier()
local f0 = B.now()
local hist = model:fit(X, y, {batch_size = bs, epochs = 1 + runs, verbose = 0, shuffle = false,
                              callbacks = {cb}})
local total = B.now() - f0
local c1 = counters()
note_rss("after fit")
local sum = 0
for _, t in ipairs(times) do sum = sum + t end
table.remove(times, 1) -- the warm-up epoch
local t = B.median(times)
local loss = hist.history.loss[1 + runs]

-- every rank's peak RSS, on every rank (rows in rank order)
local _, hwm = B.rss()
local all = dist.allgather(keras.array({{hwm}}, {dtype = "float64"})):totable()

if rank == 0 then
  B.result(wl, impl, t / steps, runs, string.format("per step; global batch %d (%d a rank); " ..
           "loss=%.4g steps=%d; fit start %.3f s", bs, bs // size, loss, steps, total - sum))
  local data = B.tensor_bytes(X) + B.tensor_bytes(y)
  local dense = (D + 1) * 4 * 3
  for r = 0, size - 1 do
    local rows = (sharded and size > 1) and (V > r and (V - r + size - 1) // size or 0) or V
    io.write(string.format("RSS %s %s %d %d %.0f %.0f %s\n", wl, impl, size, r, all[r + 1][1],
                           rows * D * 4 * 3 + data + dense,
                           string.format("floor: %d rows x %d x 4 B x 3 (table, Adam m, v) + ids/y %.1f MiB",
                                         rows, D, data / 1048576)))
  end
  if size > 1 then
    local k = (c1.ssteps or c1.steps) - (c0 and (c0.ssteps or c0.steps) or 0)
    k = math.max(k, 1)
    local sent = (c1.sent - c0.sent + c1.hsent - c0.hsent) / k
    local recv = (c1.recv - c0.recv + c1.hrecv - c0.hrecv) / k
    local hs, hr = (c1.hsent - c0.hsent) / k, (c1.hrecv - c0.hrecv) / k
    local note, osent, orecv
    local rb = D * 4
    if sharded then
      -- from the ids, per step of rank 0: forward ids out (8 B) and rows back, backward rows
      local u, a, me = U[0] / steps, A[0] / steps, self_[0] / steps
      local psent, precv = u * (8 + rb) + a * rb, a * (8 + rb) + u * rb
      local exact = math.abs((sent - hs) - psent) < 0.5 and math.abs((recv - hr) - precv) < 0.5
      osent = (u - me) * (8 + rb) + (a - me) * rb + hs
      orecv = (a - me) * (8 + rb) + (u - me) * rb + hr
      note = string.format("shard counters %s the ids' count; rank 0 per step: %.1f distinct ids sent " ..
                           "(%.1f its own), %.1f asked of it (%.1f by others); dense hook %.0f/%.0f B",
                           exact and "equal" or "DIFFER FROM", u, me, a, a - me, hs, hr)
    else
      osent, orecv = sent, recv
      note = string.format("hook: row_sparse gather (gather=%s) + dense; all to/from the other rank",
                           tostring((dist._stats(model._train_plan) or {}).sparse_gather))
    end
    io.write(string.format("SXCHG %s %s %d %.0f %.0f %.0f %.0f %.0f %s\n", wl, impl, size, sent, recv,
                           osent, orecv, V * D * 4 + (D + 1) * 4, note))
  end
  io.flush()
end
dist.barrier()
-- Leave without lua_close (see bench/lua/w3.lua); MPI is finalized at exit.
os.exit(0, false)
