-- spec/mpi/sharded_save.lua: save / load_model of a model with Embedding{sharded = true}
-- across numbers of ranks (ctest: np = 2 and 3; issue 16). The np ranks train and save
-- (rank 0 writes the gathered table and optimizer states); they load it back (same
-- predictions, bit for bit); a one-process run (helpers/sharded_np1.lua, outside the MPI
-- world) loads the same file (same predictions, bit for bit), trains one more epoch and
-- saves; the ranks, having trained that epoch too, load its file: the predictions agree
-- within 1e-5 (the optimizer states made the trip both ways). Any failed check exits
-- non-zero.
local keras = require("keras")
local D = keras.distributed
local r, n = D.init()
local here = arg[0]:gsub("sharded_save.lua$", "")
local common = dofile(here .. "helpers/sharded_common.lua")
local fails = 0
local function check(cond, what)
  if not cond then
    fails = fails + 1
    io.stderr:write(string.format("rank %d: FAIL %s\n", r, what))
  end
end
local function maxdiff(p, list)
  local d = 0
  for i = 1, #list do d = math.max(d, math.abs(p:get(i, 1) - list[i])) end
  return d
end

local tag = D._broadcast_number(math.floor(os.time() % 100000) * 1000 + math.random(0, 999), 0)
local base = string.format("/tmp/kl_sharded_save_np%d_%d", n, tag)
local X, Y = common.data()
keras.random.seed(3)
local m = common.model()
m:fit(X, Y, {batch_size = 16, epochs = 2, verbose = 0, shuffle = false})
local p0 = m:predict(X)
m:save(base .. "_a.keras")
D.barrier()
-- the same np: the same model
local m2 = keras.models.load_model(base .. "_a.keras")
check(m2:get_layer("emb").embeddings.shape[1] == (common.V - r + n - 1) // n, "loaded as this rank's share")
local p2 = m2:predict(X)
local same = true
for i = 1, common.N do same = same and p2:get(i, 1) == p0:get(i, 1) end
check(same, "loaded at the same np: the same predictions")
-- one process loads it, trains an epoch, saves; the ranks train the same epoch
if r == 0 then
  local env = "env -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK -u PMI_SIZE -u PMI_RANK -u MPI_LOCALNRANKS"
  local cmd = string.format("%s lua5.4 %shelpers/sharded_np1.lua %s_a.keras %s_b.keras %s_p.txt", env,
    here, base, base, base)
  local ok = os.execute(cmd)
  check(ok, "the one-process run: " .. cmd)
end
D.barrier()
m:fit(X, Y, {batch_size = 16, epochs = 1, verbose = 0, shuffle = false})
local p1 = m:predict(X)
local ok, preds = pcall(common.read_preds, base .. "_p.txt")
check(ok and #preds == 2 * common.N, "the one-process predictions were written")
if ok and #preds == 2 * common.N then
  local before, after = {}, {}
  for i = 1, common.N do before[i], after[i] = preds[i], preds[common.N + i] end
  check(maxdiff(p0, before) == 0, "np = 1 loads the np = " .. n .. " file: the same predictions")
  local d = maxdiff(p1, after)
  check(d < 1e-5, string.format("an epoch more at np = 1 and at np = %d agree (%.3g)", n, d))
  local m3 = keras.models.load_model(base .. "_b.keras")
  local d3 = maxdiff(m3:predict(X), after)
  check(d3 == 0, string.format("np = %d loads the np = 1 file: its predictions (%.3g)", n, d3))
end
D.barrier()
if r == 0 then for _, s in ipairs({"_a.keras", "_b.keras", "_p.txt"}) do os.remove(base .. s) end end
local all = D._allreduce_number(fails, "sum")
if r == 0 then print(string.format("sharded_save np=%d: %s", n, all == 0 and "ok" or (all .. " failures"))) end
D.finalize()
os.exit(all == 0 and 0 or 1)
