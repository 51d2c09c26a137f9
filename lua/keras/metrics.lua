-- keras/metrics.lua: Keras metric names resolved as Keras 2 compile does ("accuracy"
-- depends on the loss and the output width), keras.metrics.AUC, and metric functions of
-- graph nodes; what a compiled model passes to its plan's batch loop.
local core = require("keras.core")
local A = require("keras.argcheck")

local metrics = {}

local fail, check_opts = A.fail, A.check_opts

local KNOWN = "mse, mae, accuracy, binary_accuracy, categorical_accuracy, " ..
  "sparse_categorical_accuracy, top_k_categorical_accuracy, precision, recall, auc"

-- ------------------------------------------------------------ metric objects
local Metric = {}
Metric.__index = Metric
Metric.__tostring = function(m) return "<Metric '" .. m.name .. "'>" end
local function is_metric(x) return getmetatable(x) == Metric end
metrics.is_metric = is_metric

local function check_name(fn, name)
  if name ~= nil and type(name) ~= "string" then
    fail("%s: name must be a string. Received: name=%s", fn, A.repr(name))
  end
end

-- keras.metrics.AUC{num_thresholds = 200, name = "auc"}: tf.keras' ROC AUC: predictions
-- bucketed by num_thresholds thresholds (-1e-7, i / (T - 1), 1 + 1e-7), the ROC curve's
-- trapezoids summed; accumulated over the epoch. y_true 0/1, y_pred in [0, 1].
function metrics.AUC(opts)
  opts = check_opts("AUC", opts, {num_thresholds = true, name = true})
  local t = opts.num_thresholds == nil and 200 or A.int("AUC", "num_thresholds", opts.num_thresholds, 2)
  check_name("AUC", opts.name)
  return setmetatable({metric = "auc", param = t, name = opts.name or "auc"}, Metric)
end

-- keras.metrics.TopKCategoricalAccuracy{k = 5, name =}: y_true one-hot (n, C); a row counts
-- when the prediction at its class has fewer than k larger values in the row.
function metrics.TopKCategoricalAccuracy(opts)
  opts = check_opts("TopKCategoricalAccuracy", opts, {k = true, name = true})
  local k = opts.k == nil and 5 or A.int("TopKCategoricalAccuracy", "k", opts.k, 1)
  check_name("TopKCategoricalAccuracy", opts.name)
  return setmetatable({metric = "top_k_categorical_accuracy", param = k,
    name = opts.name or "top_k_categorical_accuracy"}, Metric)
end

-- keras.metrics.MeanMetricWrapper{fn = function(y_true, y_pred) ... end, name =}: a metric
-- function with the name its log key takes (a bare function is "metric_<position>").
function metrics.MeanMetricWrapper(opts)
  opts = check_opts("MeanMetricWrapper", opts, {fn = true, name = true})
  if type(opts.fn) ~= "function" then
    fail("MeanMetricWrapper: fn must be a function(y_true, y_pred). Received: fn=%s", type(opts.fn))
  end
  check_name("MeanMetricWrapper", opts.name)
  return setmetatable({fn = opts.fn, name = opts.name}, Metric)
end

-- ------------------------------------------------------------ names

-- resolve(name, loss_name, output_units) -> canonical name ("mse", "mae", "binary_accuracy",
-- "categorical_accuracy", "sparse_categorical_accuracy", "top_k_categorical_accuracy",
-- "precision", "recall", "auc"); errors on unknown names.
function metrics.resolve(name, loss_name, output_units)
  if type(name) ~= "string" then
    fail("metrics: expected a metric name (got %s)", type(name))
  end
  if (name == "accuracy" or name == "acc") and output_units == 1
      and loss_name ~= "sparse_categorical_crossentropy" then
    return "binary_accuracy"
  end
  local ok, r = pcall(core.metric_resolve, name, loss_name)
  if not ok then fail("metrics: unknown metric '%s' (%s, or a function)", name, KNOWN) end
  return r
end

-- The log key of entry i of compile's metrics list: the name given, an object's name, or
-- "metric_<i>" for a bare function (Lua functions have no names).
local function display_name(m, i)
  if type(m) == "string" then return m end
  if type(m) == "function" then return "metric_" .. i end
  if is_metric(m) then return m.name or ("metric_" .. i) end
  fail("metrics: metrics[%d] must be a name, a keras.metrics object or a function(y_true, " ..
    "y_pred) (got %s)", i, type(m))
end

-- names(list, loss_name) -> the log keys of compile's metrics (each entry validated).
function metrics.names(list, loss_name)
  if type(list) ~= "table" then fail("Model.compile: metrics must be a list") end
  local out, seen = {}, {}
  for i, m in ipairs(list) do
    if type(m) == "string" then metrics.resolve(m, loss_name, nil) end
    local n = display_name(m, i)
    if seen[n] then fail("Model.compile: two metrics are named '%s'", n) end
    seen[n] = true
    out[i] = n
  end
  return out
end

-- ------------------------------------------------------------ plan options

-- plan(list, loss_name, units, y_true, y_pred, first_output) -> {keys =, nodes =, opts =,
-- entries =}: what a compiled model gives its plan. keys: the result key of each metric
-- (the log keys); nodes: the 0-d graph nodes of metric functions (the mean of
-- fn(y_true, y_pred)), to append to the plan's outputs, the first being plan output
-- first_output (1-based); opts: fit_epoch / evaluate options (metrics, metric_keys,
-- metric_params, metric_outputs); entries: per metric {metric =, param =, key =, output =}.
function metrics.plan(list, loss_name, units, y_true, y_pred, first_output)
  local K = require("keras.backend")
  local S = require("keras.symbolic")
  local keys = metrics.names(list, loss_name)
  if not (S.is_node(y_true) and S.is_node(y_pred)) then
    fail("metrics.plan: y_true and y_pred must be graph nodes. Received: %s, %s", A.repr(y_true),
      A.repr(y_pred))
  end
  first_output = A.int("metrics.plan", "first_output", first_output, 1)
  local names, params, outs, nodes, entries = {}, {}, {}, {}, {}
  for i, m in ipairs(list) do
    local fn = type(m) == "function" and m or (is_metric(m) and m.fn)
    if fn then
      local v = fn(y_true, y_pred)
      if not S.is_node(v) then
        fail("Model.compile: metric '%s' must return a graph node (K ops on y_true, y_pred)", keys[i])
      end
      if v.ndim ~= 0 then v = K.mean(v) end
      nodes[#nodes + 1] = v.id
      names[i], params[i], outs[i] = "output_mean", 0, first_output + #nodes - 1
    else
      names[i] = is_metric(m) and m.metric or metrics.resolve(m, loss_name, units)
      params[i], outs[i] = is_metric(m) and m.param or 0, 1
    end
    entries[i] = {metric = names[i], param = params[i], key = keys[i], output = outs[i]}
  end
  return {keys = keys, nodes = nodes, entries = entries,
    opts = {metrics = names, metric_keys = keys, metric_params = params, metric_outputs = outs}}
end

-- The metrics list and spec of p:train_step / p:test_step for a plan's metrics: names, with
-- keras.MetricAcc states for those not averaged over samples (precision, recall, auc) or
-- with a parameter. Made once for an epoch over an iterator, these accumulate over it; made
-- for one step, they give that batch's value.
function metrics.step_args(mp)
  if type(mp) ~= "table" or type(mp.entries) ~= "table" then
    fail("metrics.step_args: expected a compiled model's metric plan (metrics.plan). Received: %s",
      A.repr(mp))
  end
  local list, outs = {}, {}
  for i, e in ipairs(mp.entries) do
    local stateful = e.metric == "precision" or e.metric == "recall" or e.metric == "auc" or e.param ~= 0
    list[i] = stateful and core.metric_acc(e) or e.metric
    outs[i] = e.output
  end
  return list, {keys = mp.keys, outputs = outs}
end

-- Whether entry i of a step list accumulates by itself (its value is the epoch's so far).
function metrics.is_state(x) return type(x) == "userdata" end

return metrics
