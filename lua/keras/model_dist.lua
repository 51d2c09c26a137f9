-- keras/model_dist.lua: what model:fit does differently in a model compiled with
-- `distributed = true` and run by an MPI launcher (issue 15). models.lua calls these at a
-- few points; in a world of one process none of them changes anything.
--
-- Semantics (Horovod's and PyTorch DDP's, with a global batch):
-- * at the start of every fit, rank 0's weights, optimizer states and step count are
--   broadcast, so ranks that initialised differently start equal;
-- * batch_size is the global batch: each rank trains on its 1/n of every batch (its share
--   of the same shuffled order: the shuffle seed is rank 0's draw, broadcast each epoch), and
--   the plan's gradient hook (distributed/dist_mpi.c) sums the shares' gradients, each
--   weighted by its share of the rows, so every rank applies the global batch's step to the
--   same bits: the weights stay identical;
-- * an iterator is read in parts, one a rank (LibSVMIter{num_parts =, part_index =}): each
--   step's global batch is the ranks' batches together; the ranks agree every step whether
--   any still has one, and a rank whose part has ended steps with no rows;
-- * the history and the logs the callbacks see average over all ranks' rows (the loss and
--   count metrics exactly; auc / precision / recall as the rows-weighted mean of the ranks');
--   a callback that stops training is obeyed when any rank's does;
-- * only rank 0 prints the progress bar and writes files (ModelCheckpoint, CSVLogger, save).
local D = require("keras.distributed")
local A = require("keras.argcheck")

local MD = {}

-- compile's `distributed` option: nil/false, true, or {deterministic = true}.
function MD.parse(fn, v)
  if v == nil or v == false then return nil end
  if v == true then return {deterministic = false} end
  if type(v) == "table" and getmetatable(v) == nil then
    for k in pairs(v) do
      if k ~= "deterministic" then A.fail("%s: unknown distributed option %s", fn, A.repr(k)) end
    end
    return {deterministic = v.deterministic == true}
  end
  A.fail("%s: distributed must be true, false or {deterministic = true}. Received: distributed=%s",
    fn, A.repr(v))
end

-- The model's sharded Embedding layers (Embedding{sharded = true} in a world of n > 1).
function MD.shard_layers(model)
  local r = {}
  for _, l in ipairs(model._all_layers or model.layers or {}) do
    if rawget(l, "_shard") then r[#r + 1] = l end
  end
  return r
end

-- Makes plan p run the model's sharded Embedding nodes through the MPI exchange
-- (distributed/sharded.c); called for every plan the model makes (infer: a plan without
-- weights). The set of sharded weight indices of p is kept in model._shard_ks[p] (the
-- data-parallel broadcast skips them).
function MD.attach_shards(model, p, infer)
  local ls = MD.shard_layers(model)
  if #ls == 0 then return end
  if not model._distributed then
    A.fail("Model: layer '%s' is an Embedding sharded over %d ranks: compile the model with " ..
      "distributed = true", ls[1].name, ls[1]._shard.n)
  end
  local mpi = D._module()
  local ids = {}
  if not infer then
    for k, id in ipairs((model:_trainable_weights())) do ids[id] = k end
  end
  local ks = {}
  for _, l in ipairs(ls) do
    local t = l._weights[1].tensor
    local k = ids[l:_var(model.gs, t).id] or 0
    if k > 0 then ks[k] = true end
    for _, rec in ipairs(rawget(l, "_shard_nodes") or {}) do
      if rec.gs == model.gs then mpi.shard_attach(p, rec.id, k, t, l._shard.V) end
    end
  end
  model._shard_ks = model._shard_ks or setmetatable({}, {__mode = "k"})
  model._shard_ks[p] = ks
end

-- The fit's context, or nil when the model is not distributed. A distributed model in a
-- world of one still draws each epoch's shuffle seed as the ranks do, so a run (or a resume)
-- at np = 1 shuffles as at any np.
function MD.begin_fit(model, p)
  local cfg = model._distributed
  if not cfg then return nil end
  D.init()
  if D.size() == 1 then return {rank = 0, size = 1, plan = p} end
  if model._dist_plan ~= p then -- a new plan (compile): its exchange, owned by the plan
    D._attach(p, {deterministic = cfg.deterministic})
    model._dist_plan = p
  end
  -- rank 0's weights, optimizer states and step count everywhere
  -- (not the shards of sharded Embeddings: each rank holds its own rows). Skipped when every
  -- rank already holds the same bits (a later fit): one digest allreduce instead of sending
  -- the weights and states again (768 MB at W3's V = 1e6: seconds).
  local sk = model._shard_ks and model._shard_ks[p] or {}
  local list = {}
  for _, w in ipairs(model:get_weight_tensors()) do
    if not w._sharded then list[#list + 1] = w end
  end
  for k = 1, p:num_weights() do
    for s = 1, sk[k] and 0 or p:num_states(k) do list[#list + 1] = p:state(k, s) end
  end
  if not D._same_everywhere(list, p:step_count()) then
    for _, t in ipairs(list) do D._broadcast_into(t, 0) end
    p:set_step_count(D._broadcast_number(p:step_count(), 0))
  end
  return {rank = D.rank(), size = D.size(), plan = p}
end

-- A model with a sharded Embedding runs every batch's forward on all ranks together (the
-- rows are exchanged per batch): predict / evaluate over in-memory data check first that every
-- rank has the same number of batches, and fail on every rank otherwise, rather than leave one
-- waiting in the exchange.
function MD.agree_batches(model, fn, n, bs)
  if #MD.shard_layers(model) == 0 or not D.is_mpi() or D.size() == 1 then return end
  local nb = (n + bs - 1) // bs
  local lo, hi = D._allreduce_number(nb, "min"), D._allreduce_number(nb, "max")
  if lo ~= hi then
    A.fail("%s: a model with a sharded Embedding runs each batch on every rank together: this " ..
      "rank has %d batches, the ranks %d to %d (give every rank as many rows, or batches)", fn,
      nb, math.tointeger(lo) or lo, math.tointeger(hi) or hi)
  end
end

-- Callbacks that write files run on rank 0 only.
local WRITERS = {CSVLogger = true, ModelCheckpoint = true}
-- (ModelCheckpoint runs on every rank of a model with a sharded Embedding: its save gathers
-- the table, a collective; rank 0 alone writes.)
function MD.callbacks(ctx, list, model)
  if not ctx or ctx.rank == 0 then return list end
  local sharded = model and #MD.shard_layers(model) > 0
  local out = {}
  for _, c in ipairs(list) do
    local mt = getmetatable(c)
    local name = type(mt) == "table" and rawget(mt, "__name") or rawget(c, "class_name")
    if not WRITERS[name] or (sharded and name == "ModelCheckpoint") then out[#out + 1] = c end
  end
  return out
end

-- The options of one epoch of p:fit_epoch over in-memory data: this rank's part, and one
-- shuffle order for all (rank 0 draws the seed).
function MD.epoch_opts(ctx, o, shuffle)
  if not ctx then return o end
  o.part, o.nparts = ctx.rank + 1, ctx.size
  if shuffle then
    local seed = 0
    if ctx.rank == 0 then
      local u = require("keras.core").random_uniform({1}):get(1) -- this state's generator
      seed = math.floor(u * 2^52)
    end
    o.seed = D._broadcast_number(seed, 0)
  end
  return o
end

-- Rows this rank trains on in an epoch of n rows in batches of bs (its shares).
function MD.local_rows(ctx, n, bs)
  local rows = 0
  for b = 0, n - 1, bs do
    local len = math.min(bs, n - b)
    rows = rows + (len * (ctx.rank + 1)) // ctx.size - (len * ctx.rank) // ctx.size
  end
  return rows
end

-- The epoch's loss and metrics over all ranks: each rank's averages weighted by its rows.
function MD.combine(ctx, rows, loss, mt)
  if not ctx then return loss, mt end
  local total = D._allreduce_number(rows, "sum")
  local function avg(v)
    local x = (rows > 0 and v == v) and v * rows or 0
    local nan = D._allreduce_number((rows > 0 and v ~= v) and 1 or 0, "max")
    if nan > 0 or total == 0 then return 0 / 0 end
    return D._allreduce_number(x, "sum") / total
  end
  local out = {}
  -- every rank walks the metric names in the same (sorted) order
  local names = {}
  for k in pairs(mt or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do out[k] = avg(mt[k]) end
  return avg(loss), out
end

-- A stop any rank asked for stops every rank (a batch callback's stop_training).
function MD.agree_stop(ctx, stop)
  if not ctx then return stop end
  return D._allreduce_number(stop and 1 or 0, "max") > 0
end

-- Whether this process writes files (model:save and the writer callbacks): rank 0 of a
-- distributed model, or any process of a model trained alone.
function MD.writes(model)
  if not model._distributed or not D.is_initialized() then return true end
  return D.rank() == 0
end

return MD
