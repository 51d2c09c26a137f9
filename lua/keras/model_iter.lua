-- keras/model_iter.lua: the Model methods over data iterators (anything with batches()
-- yielding x, y[, pad]: keras.data_utils.ArrayIterator, LibSVMIter): one C step per batch
-- for fit, evaluate and predict, with the compiled metrics.
local core = require("keras.core")

local M = {}
local is_tensor = core.is_tensor

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

-- True for a data iterator (a table, not a tensor, with a batches method).
function M.is_iterator(x)
  return type(x) == "table" and not is_tensor(x) and type(x.batches) == "function"
end

-- x of one batch as a list of tensors, without the pad rows of a padded last batch.
local function batch_xs(xb, pad, fn)
  local xs = is_tensor(xb) and {xb} or xb
  if type(xs) ~= "table" or not is_tensor(xs[1]) then
    fail("%s: the iterator must yield a tensor or a list of tensors as x (got %s)", fn, type(xb))
  end
  local nb = xs[1].shape[1]
  if pad and pad > 0 and pad < nb then
    local t = {}
    for i, x in ipairs(xs) do t[i] = x:slice(1, nb - pad) end
    return t, nb - pad
  end
  return xs, nb
end

-- Builds a deferred Sequential from the first batch of iter.
function M.build_from(model, iter, fn)
  if model.built then return end
  local first
  for xb in iter:batches() do first = xb; break end
  if first == nil then fail("%s: the iterator yields no batch", fn) end
  model:_build_from(is_tensor(first) and first or first[1])
end

-- Metric running sums, weighted by rows (each metric is a mean over samples, and a batch's
-- sample count is proportional to its rows).
local function acc_new(names) return {names = names, sum = {}, rows = 0, loss = 0} end
local function acc_add(a, loss, mt, nb)
  a.loss, a.rows = a.loss + loss * nb, a.rows + nb
  for _, n in ipairs(a.names) do a.sum[n] = (a.sum[n] or 0) + (mt and mt[n] or 0 / 0) * nb end
end
local function acc_means(a)
  local mt = {}
  for _, n in ipairs(a.names) do mt[n] = a.rows > 0 and a.sum[n] / a.rows or 0 / 0 end
  return a.rows > 0 and a.loss / a.rows or 0 / 0, mt
end

-- One training epoch over iter: one C train step per batch (metrics from the same
-- forward). Returns the mean loss and the metric means keyed by canonical names.
function M.fit_epoch(model, p, iter, cbl, want_batches, metric_logs)
  local fn = "Model.fit"
  local canon = model._canon
  local a = acc_new(canon)
  local batch = 0
  for xb, yb in iter:batches() do
    local xs, nb = batch_xs(xb, 0, fn) -- a padded batch is trained on as it comes (MXNet)
    if yb == nil then fail("%s: the iterator has no label", fn) end
    local feeds = {}
    for i, t in ipairs(xs) do feeds[i] = t end
    feeds[#feeds + 1] = model:_y(yb, nb, fn)
    batch = batch + 1
    if want_batches then cbl:on_batch_begin(batch, {batch = batch, size = nb}) end
    local l, mt = p:train_step(feeds, canon)
    acc_add(a, l, mt, nb)
    if want_batches then
      local loss, means = acc_means(a)
      local seen = iter.num_data and math.min(a.rows, iter.num_data) or a.rows
      cbl:on_batch_end(batch, metric_logs(model, {batch = batch, size = nb, seen = seen, loss = loss}, means, ""))
    end
    if model.stop_training then break end
  end
  return acc_means(a)
end

-- Loss and metric means over iter, no training (pad rows excluded).
function M.evaluate(model, p, iter)
  local fn = "Model.evaluate"
  local a = acc_new(model._canon)
  for xb, yb, pad in iter:batches() do
    local xs, nb = batch_xs(xb, pad, fn)
    if yb == nil then fail("%s: the iterator has no label", fn) end
    if pad and pad > 0 and pad < yb.shape[1] then yb = yb:slice(1, nb) end
    local feeds = {}
    for i, t in ipairs(xs) do feeds[i] = t end
    feeds[#feeds + 1] = model:_y(yb, nb, fn)
    local l, mt = p:test_step(feeds, model._canon)
    acc_add(a, l, mt, nb)
  end
  return acc_means(a)
end

-- The output over every batch of iter (pad rows dropped), rows concatenated.
function M.predict(model, p, iter, bs)
  local fn = "Model.predict"
  local parts = {}
  for xb, _, pad in iter:batches() do
    local xs = batch_xs(xb, pad, fn)
    parts[#parts + 1] = p:predict(xs, bs)
  end
  if #parts == 0 then fail("%s: the iterator yields no batch", fn) end
  -- concatenate takes at most 64 inputs: merge in groups of 64 until one is left
  while #parts > 1 do
    local merged = {}
    for i = 1, #parts, 64 do
      local group = table.move(parts, i, math.min(i + 63, #parts), 1, {})
      merged[#merged + 1] = #group == 1 and group[1] or core.op("concatenate", group, {axis = 1}, "predict")
    end
    parts = merged
  end
  return parts[1]
end

return M
