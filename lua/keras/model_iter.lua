-- keras/model_iter.lua: the Model methods over data iterators (anything with batches()
-- yielding x, y[, pad]: keras.data_utils.ArrayIterator, LibSVMIter): one C step per batch
-- for fit, evaluate and predict, with the compiled metrics.
local core = require("keras.core")
local metrics_mod = require("keras.metrics")
local MD = require("keras.model_dist")

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

-- Metric running sums, weighted by rows (a mean metric is a mean over samples, and a
-- batch's sample count is proportional to its rows; a metric function's value is weighted
-- by the batch's rows as in Keras 2). Precision, recall and AUC are keras.MetricAcc states
-- in the step list, made once for the pass: each step returns their value so far.
local function acc_new(model)
  local list, spec = model:_step_args()
  return {names = model._canon, list = list, spec = spec, sum = {}, last = {}, rows = 0, loss = 0}
end
local function acc_add(a, loss, mt, nb)
  a.loss, a.rows = a.loss + loss * nb, a.rows + nb
  for i, n in ipairs(a.names) do
    local v = mt and mt[n] or 0 / 0
    a.sum[n], a.last[n] = (a.sum[n] or 0) + v * nb, v
    if metrics_mod.is_state(a.list[i]) then a.sum[n] = nil end
  end
end
local function acc_means(a)
  local mt = {}
  for _, n in ipairs(a.names) do
    if a.sum[n] == nil then mt[n] = a.rows > 0 and a.last[n] or 0 / 0
    else mt[n] = a.rows > 0 and a.sum[n] / a.rows or 0 / 0 end
  end
  return a.rows > 0 and a.loss / a.rows or 0 / 0, mt
end

-- The batches of iter with each one's first row in its pass (0-based), from a fresh pass;
-- with steps, the first steps batches only.
local function pass(iter, steps)
  local f, row0, k = iter:batches(), 0, 0
  return function()
    if steps and k >= steps then return nil end
    local xb, yb, pad = f()
    if xb == nil then return nil end
    local r = row0
    row0, k = row0 + (is_tensor(xb) and xb or xb[1]).shape[1], k + 1
    return xb, yb, pad, r
  end
end

-- fit's batch source: each epoch a pass of iter, or with steps (steps_per_epoch) the next
-- steps batches, a pass starting again where one ends (as Keras reads a generator).
function M.stream(iter, steps)
  if not steps then return {epoch = function() return pass(iter) end} end
  local s = {}
  function s.epoch()
    local k = 0
    return function()
      if k >= steps then return nil end
      local xb, yb, pad, r = nil, nil, nil, nil
      if s.cur then xb, yb, pad, r = s.cur() end
      if xb == nil then -- a pass ended (or none began): the next one
        s.cur = pass(iter)
        xb, yb, pad, r = s.cur()
        if xb == nil then fail("Model.fit: the iterator yields no batch") end
      end
      k = k + 1
      return xb, yb, pad, r
    end
  end
  return s
end

-- The feeds of one batch: x, y shaped for the model, the labels checked as the loss wants
-- them (rows of the pass in the message), and the class weights of its rows.
local function batch_feeds(model, fn, xs, yb, nb, row0, class_weight)
  if #model.outputs > 1 then
    fail("%s: a model with several outputs takes in-memory data (an iterator yields one y)", fn)
  end
  local y, extra = model:_targets(yb, nb, fn, nil, class_weight)
  local loss = rawget(model, "loss_name")
  if model._wfeed and type(loss) == "string" then
    local s = model.outputs[1].shape
    core.loss_check_data(loss, y, nil, s[#s], row0, fn)
  end
  return model:_feeds(xs, y, extra)
end

-- One training epoch over a stream (M.stream): one C train step per batch (metrics from the
-- same forward). Returns the mean loss and the metric means keyed by canonical names.
-- dctx (model_dist): a distributed fit, each rank reading its own part: the ranks agree
-- every step whether any still has a batch (a rank whose part has ended steps with no rows,
-- so none waits alone in a collective), and the means are over all ranks' rows.
function M.fit_epoch(model, p, stream, cbl, want_batches, metric_logs, dctx, class_weight)
  local fn = "Model.fit"
  local a = acc_new(model)
  local batch = 0
  local next_batch, ended = stream.epoch(), false
  while true do
    local xb, yb, _, row0
    if not ended then xb, yb, _, row0 = next_batch() end
    ended = xb == nil
    if dctx then
      if not MD.agree_stop(dctx, not ended) then break end -- every part has ended
      if ended then -- this part has ended, others have not: a step with no rows
        p:train_step_empty()
        batch = batch + 1
        if MD.agree_stop(dctx, model.stop_training) then model.stop_training = true; break end
        goto continue
      end
    elseif ended then
      break
    end
    do
    local xs, nb = batch_xs(xb, 0, fn) -- a padded batch is trained on as it comes (MXNet)
    if yb == nil then fail("%s: the iterator has no label", fn) end
    local feeds = batch_feeds(model, fn, xs, yb, nb, row0, class_weight)
    batch = batch + 1
    if want_batches then cbl:on_batch_begin(batch, {batch = batch, size = nb}) end
    local l, mt = p:train_step(feeds, a.list, a.spec)
    acc_add(a, l, mt, nb)
    if want_batches then
      local loss, means = acc_means(a)
      local seen = a.rows
      cbl:on_batch_end(batch, metric_logs(model, {batch = batch, size = nb, seen = seen, loss = loss}, means, ""))
    end
    if MD.agree_stop(dctx, model.stop_training) then model.stop_training = true; break end
    end
    ::continue::
  end
  local loss, mt = acc_means(a)
  if dctx then return MD.combine(dctx, a.rows, loss, mt) end
  return loss, mt
end

-- Loss and metric means over iter (its first steps batches when given), no training (pad
-- rows excluded).
function M.evaluate(model, p, iter, steps)
  local fn = "Model.evaluate"
  local a = acc_new(model)
  for xb, yb, pad, row0 in pass(iter, steps) do
    local xs, nb = batch_xs(xb, pad, fn)
    if yb == nil then fail("%s: the iterator has no label", fn) end
    if pad and pad > 0 and pad < yb.shape[1] then yb = yb:slice(1, nb) end
    local feeds = batch_feeds(model, fn, xs, yb, nb, row0, nil)
    local l, mt = p:test_step(feeds, a.list, a.spec)
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
