-- keras/model_outputs.lua: models with several outputs (Keras 2): compile's loss, loss_weights
-- and metrics per output (a list in output order, or a table keyed by output name), the
-- training plan (one target and one sample-weight feed an output, the total loss
-- sum_j loss_weight_j L_j, each L_j also a plan output so the C loop averages it like the
-- loss), targets and weights given as lists or keyed by output name, and the log keys
-- "<output>_loss", "<output>_<metric>".
local core = require("keras.core")
local S = require("keras.symbolic")
local A = require("keras.argcheck")
local losses = require("keras.losses")
local layers = require("keras.layers")
local metrics_mod = require("keras.metrics")
local MW = require("keras.model_weights")

local M = {}
local fail, is_tensor = A.fail, core.is_tensor

-- The output names (Keras: the output layers' names; "output_<j>" for a node of no layer).
local function output_names(self)
  local names, seen = {}, {}
  for j, o in ipairs(self.outputs) do
    local l = rawget(o, "layer")
    local nm = l and l.name or ("output_" .. j)
    if seen[nm] then nm = nm .. "_" .. j end
    names[j], seen[nm] = nm, true
  end
  return names
end

-- Entry j of a per-output option: a list in output order or a table keyed by output name
-- (def where the option or the entry is absent); anything else is the same for all.
local function per_output(fn, what, v, names, j, def, is_single)
  if v == nil then return def end
  if type(v) ~= "table" or is_tensor(v) or is_single(v) then return v end
  local n = rawlen(v)
  if n > 0 then
    if n ~= #names then
      fail("%s: %s has %d entries but the model has %d outputs", fn, what, n, #names)
    end
    return rawget(v, j)
  end
  for k in pairs(v) do
    local ok = false
    for _, nm in ipairs(names) do ok = ok or k == nm end
    if not ok then
      fail("%s: %s is keyed by output name, and the model has no output %s (its outputs: %s)", fn,
        what, A.repr(k), table.concat(names, ", "))
    end
  end
  local e = v[names[j]]
  if e == nil then return def end
  return e
end
M.per_output = per_output

local function never() return false end
local function is_metric_list_entry(v) return metrics_mod.is_metric(v) end

-- The per-output specs of compile's options: {name, loss (canonical or "custom"), fn,
-- weight, metrics (a list)}.
local function specs_of(self, cfg, fn)
  local names = output_names(self)
  local out = {}
  for j, nm in ipairs(names) do
    local l = per_output(fn, "loss", cfg.loss, names, j, nil, never)
    if l == nil then fail("%s: loss has no entry for output '%s'", fn, nm) end
    local sp = {name = nm}
    if type(l) == "function" then sp.loss, sp.fn = "custom", l else sp.loss = losses.resolve(l) end
    local w = per_output(fn, "loss_weights", cfg.loss_weights, names, j, 1, never)
    if type(w) ~= "number" or w ~= w or math.abs(w) == math.huge then
      fail("%s: loss_weights for output '%s' must be a number. Received: %s", fn, nm, A.repr(w))
    end
    sp.weight = w
    -- a flat list of metrics applies to every output (Keras 2)
    local ms = cfg.metrics or {}
    if rawlen(ms) == 0 and next(ms) ~= nil then
      ms = per_output(fn, "metrics", ms, names, j, {}, is_metric_list_entry)
    end
    if type(ms) == "string" or type(ms) == "function" or metrics_mod.is_metric(ms) then ms = {ms} end
    if type(ms) ~= "table" then fail("%s: metrics for output '%s' must be a list", fn, nm) end
    metrics_mod.names(ms, sp.fn and nil or sp.loss) -- each one valid
    sp.metrics = ms
    out[j] = sp
  end
  return out
end

-- compile's part for several outputs: validates and keeps the options; the per-output specs
-- are made again by the training plan.
function M.compile(self, opts)
  local fn = "Model.compile"
  local cfg = {loss = opts.loss, loss_weights = opts.loss_weights, metrics = opts.metrics}
  if cfg.metrics ~= nil and type(cfg.metrics) ~= "table" then
    fail("%s: metrics must be a list, or a table keyed by output name", fn)
  end
  local specs = specs_of(self, cfg, fn)
  local names, custom = {}, false
  for j, sp in ipairs(specs) do names[j], custom = sp.loss, custom or sp.fn ~= nil end
  self.loss_name, self.loss_fn = custom and "custom" or names, nil
  self.metric_names, self._metric_list = cfg.metrics or {}, nil
  self._outputs_cfg = cfg
end

-- The target placeholder's shape for output node out (class ids (n) for scce).
local function target_shape(out, scce)
  if scce then return {-1} end
  local t = {}
  for i, d in ipairs(out.shape) do t[i] = d end
  t[1] = -1
  return t
end

-- The training plan of a model with several outputs. Feeds: inputs..., a target an output,
-- then a sample-weight feed an output whose loss is built in. Outputs: the model's, then
-- each output's loss, then the metric functions' values.
function M.train(self, weights, stypes)
  local gs, K = self.gs, #self.outputs
  local specs = specs_of(self, self._outputs_cfg, "Model.compile")
  local targets, wfeeds, lids, loss_id = {}, {}, {}, nil
  for j, o in ipairs(self.outputs) do
    specs[j].scce = specs[j].loss == "sparse_categorical_crossentropy"
    targets[j] = gs.g:placeholder{shape = target_shape(o, specs[j].scce), dtype = o.dtype,
      name = specs[j].name .. "_target"}
  end
  for j, o in ipairs(self.outputs) do
    if not specs[j].fn then
      wfeeds[j] = gs.g:placeholder{shape = {-1}, dtype = o.dtype, name = specs[j].name .. "_sample_weight"}
    end
  end
  for j, o in ipairs(self.outputs) do
    local sp, l = specs[j]
    if sp.fn then
      local r = sp.fn(S.new_node(gs, targets[j], {}), o)
      if not S.is_node(r) then fail("Model.compile: a loss function must return a graph node") end
      l = r.ndim ~= 0 and gs.g:op("mean", {r.id}, {}) or r.id
    else
      l = gs.g:op(losses.op_name(sp.loss), {targets[j], o.id, wfeeds[j]}, {})
    end
    lids[j] = l
    local wl = sp.weight ~= 1 and gs.g:op("mul_scalar", {l}, {scalar = sp.weight}) or l
    loss_id = loss_id and gs.g:op("add", {loss_id, wl}, {}) or wl
  end
  for _, n in ipairs(layers._loss_nodes(self._all_layers, self._nodes)) do
    loss_id = gs.g:op("add", {loss_id, n.id}, {})
  end
  local feeds, outs = {}, {}
  for i, n in ipairs(self.inputs) do feeds[i] = n.id end
  for j = 1, K do feeds[#feeds + 1] = targets[j] end
  for j = 1, K do feeds[#feeds + 1] = wfeeds[j] end -- (nil for a loss function: skipped)
  for j, o in ipairs(self.outputs) do outs[j] = o.id end
  for j = 1, K do outs[K + j] = lids[j] end
  -- the log keys: each output's loss, then each output's metrics, prefixed by its name
  local keys, entries, mtargets = {}, {}, {}
  local opts = {metrics = {}, metric_keys = {}, metric_params = {}, metric_outputs = {}, metric_targets = {}}
  local function add(key, metric, param, output, target)
    local i = #keys + 1
    keys[i], mtargets[i] = key, #self.inputs + target
    entries[i] = {metric = metric, param = param, key = key, output = output}
    opts.metrics[i], opts.metric_keys[i], opts.metric_params[i] = metric, key, param
    opts.metric_outputs[i], opts.metric_targets[i] = output, target
  end
  for j = 1, K do add(specs[j].name .. "_loss", "output_mean", 0, K + j, 1) end
  for j, o in ipairs(self.outputs) do
    local sp = specs[j]
    local mp = metrics_mod.plan(sp.metrics, sp.fn and nil or sp.loss, o.shape[#o.shape],
      S.new_node(gs, targets[j], {}), o, #outs + 1)
    for _, id in ipairs(mp.nodes) do outs[#outs + 1] = id end
    for i, e in ipairs(mp.entries) do
      -- a metric function's value is a plan output of its own; the others read output j
      local out_k = e.metric == "output_mean" and e.output or j
      add(sp.name .. "_" .. mp.keys[i], e.metric, e.param, out_k, j)
    end
  end
  self._canon, self._log_keys, self._mtargets = keys, keys, mtargets
  self._mplan = {keys = keys, entries = entries, nodes = {}, opts = opts}
  self._specs = specs
  self._wfeeds, self._wfeed = {}, nil
  for j, o in ipairs(self.outputs) do self._wfeeds[j] = {_wfeed = wfeeds[j], _wdtype = o.dtype} end
  local p = core.plan_new(gs.g, {feeds = feeds, outputs = outs, loss = loss_id,
    weights = weights, grad_stypes = stypes, optimizer = self.optimizer._c,
    device = rawget(self, "device")}) -- (compile{device =}: models.lua)
  self.optimizer:_bind(p)
  require("keras.model_dist").attach_shards(self, p)
  self._train_plan = p
  return p
end

-- The targets of a call: y (the first output's, shaped) and the extra data the plan takes
-- after it (the other targets, then the weights: false for none), from y, sample_weight and
-- class_weight as a list in output order or keyed by output name.
function M.targets(self, y, n, fn, sw, cw)
  local names = output_names(self)
  local ys, extra = {}, {}
  for j in ipairs(names) do
    local yj = per_output(fn, "y", y, names, j, nil, is_tensor)
    if yj == nil or (j > 1 and yj == y and is_tensor(y)) then
      fail("%s: the model has %d outputs: y must be a list of %d tensors or a table keyed by output name (%s)",
        fn, #names, #names, table.concat(names, ", "))
    end
    ys[j] = self:_y(yj, n, fn, j)
  end
  for j = 2, #names do extra[#extra + 1] = ys[j] end
  for j, nm in ipairs(names) do
    local wj = per_output(fn, "sample_weight", sw, names, j, nil, is_tensor)
    local cj = per_output(fn, "class_weight", cw, names, j, nil, never)
    if sw ~= nil and is_tensor(sw) then
      fail("%s: the model has %d outputs: sample_weight must be a list or a table keyed by output name", fn, #names)
    end
    local spec = self._wfeeds[j]
    local w = MW.rows(fn .. " (output '" .. nm .. "')", spec, ys[j], n, wj, cj)
    if spec._wfeed then extra[#extra + 1] = w or false end
  end
  return ys[1], extra
end

-- The per-output sparse categorical flag of output j (what _y reshapes for).
function M.scce(self, j) return self._specs and self._specs[j] and self._specs[j].scce end

M.output_names, M.target_shape = output_names, target_shape
return M
