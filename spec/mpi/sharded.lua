-- spec/mpi/sharded.lua: Embedding{sharded = true} under mpirun (ctest: np = 2 and 3; issue
-- 16). The table's rows live on their owners (id mod n); every rank has the same data.
-- Checked: the initial table is the np-independent counter-based one; a sharded model
-- against the same model with a plain Embedding, both compile{distributed =
-- {deterministic = true}}, from the same weights: predictions and the gathered table equal
-- bit for bit after training (Adam, shuffled, last batch uneven, padding id 0 and samples
-- of padding only, V = 101 not divisible by n); both within 1e-5 of one process training
-- on the same global batches alone; ids that all land on rank 0; an out-of-range id on one
-- rank: a clear error there, the others name that rank, nothing trained, and training goes
-- on; summary and count_params. Any failed check exits non-zero.
local keras = require("keras")
local core = require("keras.core")
local L, D = keras.layers, keras.distributed
local r, n = D.init()
local fails = 0
local function check(cond, what)
  if not cond then
    fails = fails + 1
    io.stderr:write(string.format("rank %d: FAIL %s\n", r, what))
  end
end

local V, E, LEN, N = 101, 6, 5, 90

-- ids in 0..V (0: padding), sample 3 all padding; the same on every rank
local function data(seed, only_rank0)
  local g = seed
  local function rnd(m) g = (g * 1103515245 + 12345) % 2147483648; return g % m end
  local ids, y = {}, {}
  for i = 1, N do
    local row = {}
    for j = 1, LEN do
      local id = rnd(V + 1)
      if only_rank0 then id = (rnd(V) // n) * n + 1 end -- row id - 1 = 0 mod n: rank 0's
      if i == 3 or rnd(7) == 0 then id = 0 end
      row[j] = id
    end
    ids[i] = row
    y[i] = {rnd(1000) / 1000}
  end
  return keras.array(ids, {dtype = "int64"}), keras.array(y)
end

local function model(sharded, dist)
  local inp = L.Input{shape = {LEN}, dtype = "int64"}
  local e = L.Embedding{input_dim = V, output_dim = E, sparse_grad = true, sharded = sharded, name = "emb"}(inp)
  local out = L.Dense{units = 1}(L.GlobalAveragePooling1D{}(e))
  local m = keras.Model{inputs = inp, outputs = out}
  m:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.02}, loss = "mse", distributed = dist}
  return m
end

local function maxdiff(a, b)
  local d = 0
  local ta, tb = a:totable(), b:totable()
  local function walk(x, y)
    if type(x) == "table" then for i = 1, #x do walk(x[i], y[i]) end
    else d = math.max(d, math.abs(x - y)) end
  end
  walk(ta, tb)
  return d
end

-- 1. the initial table: rank 0's seed, rows made by the counter-based generator
keras.random.seed(7)
local seed = math.floor(core.random_uniform({1}, {dtype = "float64"}):get(1) * 2^52)
keras.random.seed(7)
local ms = model(true, {deterministic = true})
local full0 = ms:get_layer("emb"):get_weights()[1]
local ref = keras.zeros({V, E})
core.fill_rows_counter(ref, seed, 0, 1, "uniform", -0.05, 0.05)
check(maxdiff(full0, ref) == 0, "the gathered initial table is the np-independent one")
check(ms:get_layer("emb").embeddings.shape[1] == (V - r + n - 1) // n, "rank holds its share of rows")
check(ms:count_params() == V * E + E + 1, "count_params counts the whole table")
local lines = {}
ms:summary(function(s) lines[#lines + 1] = s end)
local text = table.concat(lines, "\n")
check(text:find("sharded over " .. n .. " ranks", 1, true) ~= nil, "summary shows the sharding: " .. text)

-- 2. sharded vs plain, deterministic: the same bits
local function compare(tag, only_rank0)
  local X, Y = data(tag == "rank0" and 5 or 3, only_rank0)
  keras.random.seed(11)
  local a = model(true, {deterministic = true})
  local b = model(false, {deterministic = true})
  local c = model(false, nil) -- one process's training on the same global batches
  b:set_weights(a:get_weights())
  c:set_weights(a:get_weights())
  a:fit(X, Y, {batch_size = 16, epochs = 3, verbose = 0, shuffle = false})
  b:fit(X, Y, {batch_size = 16, epochs = 3, verbose = 0, shuffle = false})
  c:fit(X, Y, {batch_size = 16, epochs = 3, verbose = 0, shuffle = false})
  local pa, pb, pc = a:predict(X), b:predict(X), c:predict(X)
  check(maxdiff(pa, pb) == 0, tag .. ": sharded and plain predictions equal bit for bit")
  local ta, tb, tc = a:get_weights()[1], b:get_weights()[1], c:get_weights()[1]
  check(maxdiff(ta, tb) == 0, tag .. ": gathered table equals the plain one bit for bit")
  local dp, dt = maxdiff(pa, pc), maxdiff(ta, tc)
  check(dp < 1e-5 and dt < 1e-5, string.format("%s: within 1e-5 of one process (%.3g, %.3g)", tag, dp, dt))
  -- shuffled: the same shuffle on both (rank 0's seed), and the same bits again
  keras.random.seed(21)
  a:fit(X, Y, {batch_size = 7, epochs = 1, verbose = 0, shuffle = true})
  keras.random.seed(21)
  b:fit(X, Y, {batch_size = 7, epochs = 1, verbose = 0, shuffle = true})
  check(maxdiff(a:predict(X), b:predict(X)) == 0, tag .. ": shuffled epoch, same bits")
  return a, X, Y
end
local a, X, Y = compare("mixed", false)
compare("rank0", true)

-- 3. an out-of-range id on the last rank only: every rank raises, none hangs, nothing trains
local before = a:get_weights()[1]
local rows = X:totable()
if r == n - 1 then rows[2][3] = V + 1 end
local bad = keras.array(rows, {dtype = "int64"})
local ok, err = pcall(function() return a:train_on_batch(bad, Y) end)
check(not ok, "an out-of-range id fails the step on every rank")
if r == n - 1 then
  check(tostring(err):find("id " .. (V + 1) .. " out of range [0, " .. V .. "] at position (2, 3)", 1, true) ~= nil,
    "the rank with the bad id says which: " .. tostring(err))
else
  check(tostring(err):find("rank " .. (n - 1) .. " refused its ids", 1, true) ~= nil,
    "the others name the rank: " .. tostring(err))
end
check(maxdiff(before, a:get_weights()[1]) == 0, "the failed step changed nothing")
ok = pcall(function() return a:predict(bad) end)
check(not ok, "predict refuses it too")
a:fit(X, Y, {batch_size = 16, epochs = 1, verbose = 0})
check(maxdiff(before, a:get_weights()[1]) > 0, "training goes on after the error")

-- 3b. predict / evaluate with another number of batches on one rank: refused on every rank
--     (the exchange runs each batch on all ranks together) instead of a rank left waiting
local rows_r = r == n - 1 and 20 or 16
ok, err = pcall(function() return a:predict(X:slice(1, rows_r), {batch_size = 8}) end)
check(not ok and tostring(err):find("Model.predict: a model with a sharded Embedding runs each batch on every rank together", 1, true) ~= nil,
  "uneven predict batches are refused everywhere: " .. tostring(err))
ok, err = pcall(function() return a:evaluate(X:slice(1, rows_r), Y:slice(1, rows_r), {batch_size = 8}) end)
check(not ok and tostring(err):find("Model.evaluate: a model with a sharded Embedding", 1, true) ~= nil,
  "uneven evaluate batches are refused everywhere: " .. tostring(err))
check(a:predict(X:slice(1, 16), {batch_size = 8}).shape[1] == 16, "even batches still predict")

-- 4. not distributed: refused when the table is sharded
ok, err = pcall(function()
  local m = model(true, nil)
  m:predict(X)
end)
check(not ok and tostring(err):find("compile the model with distributed = true", 1, true) ~= nil,
  "a sharded layer needs a distributed model: " .. tostring(err))

local all = D._allreduce_number(fails, "sum")
if r == 0 then print(string.format("sharded np=%d: %s", n, all == 0 and "ok" or (all .. " failures"))) end
D.finalize()
os.exit(all == 0 and 0 or 1)
