-- spec/mpi/fit.lua: model:fit with compile{distributed = true} under mpirun (ctest: np = 2
-- and 3). Ranks initialise differently on purpose (the fit broadcasts rank 0's weights).
-- Checked: identical weights on every rank after training (shuffled, uneven shares, empty
-- shares of a last batch); np ranks against one process on the same global batches (within
-- 2e-6); the deterministic mode bit for bit against one process that sums the shards'
-- gradients in rank order; the history averaged over all ranks; an iterator read in uneven
-- parts; save written by rank 0 only. Any failed check exits non-zero.
local keras = require("keras")
local K, L, D = keras.backend, keras.layers, keras.distributed
local r, n = D.init()
local fails = 0
local function check(cond, what)
  if not cond then
    fails = fails + 1
    io.stderr:write(string.format("rank %d: FAIL %s\n", r, what))
  end
end

-- the same data on every rank (fixed seeds), a sparse Dense (row_sparse gradients) into a
-- dense one (dense gradients)
local N, C = 98, 60
local X = keras.sparse.rand({N, C}, "csr", 0.1, {seed = 11})
local Y = K.dot(X, keras.random.uniform({C, 1}, {seed = 12}))

local function model(seed, dist, opt)
  keras.random.seed(seed)
  local inp = L.Input{shape = {C}, sparse = true}
  local h = L.Dense{units = 4, sparse_weight = true, activation = "relu"}(inp)
  local m = keras.Model{inputs = inp, outputs = L.Dense{units = 1}(h)}
  m:compile{optimizer = opt or keras.optimizers.SGD{learning_rate = 0.1}, loss = "mse", distributed = dist}
  return m
end

local function flat(m)
  local out = {}
  for _, w in ipairs(m:get_weight_tensors()) do
    local t = w:tostype("default"):totable()
    local function walk(v) if type(v) == "table" then for _, x in ipairs(v) do walk(x) end else out[#out + 1] = v end end
    walk(t)
  end
  return out
end

-- identical on every rank: each value's max and min over the ranks agree
local function same_everywhere(m, what)
  local v = flat(m)
  local t = keras.array(v, {dtype = "float64"})
  local hi, lo = D.allreduce(t, {op = "max"}), D.allreduce(t, {op = "min"})
  local ok = true
  for i = 1, #v do ok = ok and hi:get(i) == lo:get(i) and hi:get(i) == v[i] end
  check(ok, what .. ": weights identical on every rank")
end

-- 1. shuffled, Adam, 2 epochs, ranks seeded differently: identical weights, a history
local m1 = model(100 + r, true, keras.optimizers.Adam{learning_rate = 0.01})
local h1 = m1:fit(X, Y, {batch_size = 16, epochs = 2, verbose = 0, shuffle = true})
same_everywhere(m1, "shuffled Adam")
check(#h1.history.loss == 2 and h1.history.loss[2] == h1.history.loss[2], "history has 2 finite epochs")
local hl = D.allreduce(keras.array({h1.history.loss[2]}, {dtype = "float64"}), {op = "max"}):get(1)
check(hl == h1.history.loss[2], "the history is the same on every rank")
local stats = require("keras.distributed_mpi").hook_stats(m1._train_plan)
check(stats and stats.steps == 2 * 7 and stats.bytes_recv > 0, "the exchange ran once a step")

-- 2. np ranks == one process on the same global batches (no shuffle), within float sums
local m2 = model(7, true)
m2:fit(X, Y, {batch_size = 16, epochs = 1, verbose = 0, shuffle = false})
same_everywhere(m2, "unshuffled")
-- a later fit re-broadcasts only when the ranks differ: perturb one rank, fit 0 new epochs
-- (initial_epoch = epochs): the start-of-fit sync alone makes them equal again
if r == n - 1 then
  local w1 = m2:get_weight_tensors()[1]
  K.set_value(w1, w1 * 1.5)
end
m2:fit(X, Y, {batch_size = 16, epochs = 1, initial_epoch = 1, verbose = 0, shuffle = false})
same_everywhere(m2, "resynced after one rank changed")
local ref = model(7, false)
ref:fit(X, Y, {batch_size = 16, epochs = 1, verbose = 0, shuffle = false})
local a, b = flat(m2), flat(ref)
local worst = 0
for i = 1, #a do worst = math.max(worst, math.abs(a[i] - b[i])) end
check(#a == #b and worst < 2e-6, string.format("np=%d vs one process: max |diff| %.3g", n, worst))

-- 3. deterministic mode: bit for bit the single process that sums the shards' gradients in
--    rank order (scaled by their shares) and applies SGD
local m3 = model(7, {deterministic = true})
m3:fit(X, Y, {batch_size = 16 * n, epochs = 1, verbose = 0, shuffle = false})
same_everywhere(m3, "deterministic")
if r == 0 then
  local m4 = model(7, false)
  local p = m4:_train()
  local opt = m4.optimizer._c
  local ws = m4:get_weight_tensors()
  local empty = keras.zeros({0})
  for b0 = 1, N, 16 * n do
    local e0 = math.min(b0 + 16 * n - 1, N)
    local len, total = e0 - b0 + 1, nil
    for q = 0, n - 1 do
      local sb, se = b0 + (len * q) // n, b0 + (len * (q + 1)) // n - 1
      if se >= sb then
        p:forward({X:slice(sb, se), Y:slice(sb, se), empty}, true)
        local g = p:backward()
        local s = (se - sb + 1) / len
        for k = 1, #g do
          local gs = g[k] * s
          total = total or {}
          total[k] = total[k] and total[k] + gs or gs
        end
      end
    end
    for k = 1, #ws do opt:update(ws[k], total[k]) end
  end
  local x3, x4 = flat(m3), flat(m4)
  local same = #x3 == #x4
  for i = 1, #x3 do same = same and x3[i] == x4[i] end
  check(same, "deterministic mode == one process summing the shards in order, bit for bit")
end

-- 3b. the exchange's two row_sparse paths: few columns, every rank touching all of them, so
--     the rows sent (n x 6) exceed twice the union (6) from np = 3 on: one allreduce of the
--     union rows; at np = 2 the gather. Either way: identical weights, within float sums of
--     one process.
do
  local Xs = keras.sparse.rand({96, 6}, "csr", 0.9, {seed = 31})
  local Ys = K.dot(Xs, keras.random.uniform({6, 1}, {seed = 32}))
  local function small(dist)
    keras.random.seed(8)
    local m = keras.Sequential{L.Input{shape = {6}, sparse = true}, L.Dense{units = 2, sparse_weight = true}}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.05}, loss = "mse", distributed = dist}
    m:fit(Xs, K.concatenate({Ys, Ys}, 2),
      {batch_size = 24, epochs = 2, verbose = 0, shuffle = false})
    return m
  end
  local ms, mr = small(true), small(false)
  same_everywhere(ms, "small union")
  local st = require("keras.distributed_mpi").hook_stats(ms._train_plan)
  if n >= 3 then check(st.sparse_allreduce > 0 and st.sparse_gather == 0, "the allreduce path at np >= 3")
  else check(st.sparse_gather > 0 and st.sparse_allreduce == 0, "the gather path at np = 2") end
  local xa, xb, worst_s = flat(ms), flat(mr), 0
  for i = 1, #xa do worst_s = math.max(worst_s, math.abs(xa[i] - xb[i])) end
  check(worst_s < 2e-6, string.format("small union vs one process: %.3g", worst_s))
end

-- 4. uneven shares and empty ones: 5 rows in batches of 4 -> the last batch has 1 row
local m5 = model(300 + r, true)
m5:fit(X:slice(1, 5), Y:slice(1, 5), {batch_size = 4, epochs = 3, verbose = 0})
same_everywhere(m5, "empty shares")

-- 5. an iterator read in parts: LibSVMIter over a file written by rank 0
local path = (os.getenv("TMPDIR") or "/tmp") .. "/kl_mpi_fit_" .. (os.getenv("OMPI_COMM_WORLD_SIZE") or "x") .. "_" .. (D._broadcast_number(r == 0 and math.random(1, 1e9) or 0, 0)) .. ".svm"
if r == 0 then keras.data_utils.dump_svmlight_file(X, Y, path) end
D.barrier()
local it = keras.data_utils.LibSVMIter{path = path, n_features = C, batch_size = 7,
  num_parts = D.size(), part_index = D.rank() + 1}
local m6 = model(400 + r, true)
local h6 = m6:fit(it, nil, {epochs = 2, verbose = 0})
same_everywhere(m6, "LibSVMIter parts")
check(#h6.history.loss == 2, "iterator history")
it:close()

-- 6. save: rank 0 writes, the others do not
local spath = path .. ".model"
os.remove(spath)
D.barrier()
m6:save(spath)
D.barrier()
local f = io.open(spath, "rb")
check(f ~= nil, "the saved model exists")
if f then f:close() end
D.barrier()
if r == 0 then
  local back = keras.models.load_model(spath)
  local x6, xb = flat(m6), flat(back)
  local same = #x6 == #xb
  for i = 1, #x6 do same = same and x6[i] == xb[i] end
  check(same, "the model saved by rank 0 loads with the trained weights")
  os.remove(spath)
  os.remove(path)
end

if fails > 0 then os.exit(1) end
if r == 0 then print(string.format("fit: np=%d ok", n)) end
