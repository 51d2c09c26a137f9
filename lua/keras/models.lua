-- keras/models.lua: keras.Model and keras.Sequential: compile to a C plan, fit (the batch
-- loop in C via p:fit_epoch), evaluate, predict, *_on_batch, summary, weights.
local core = require("keras.core")
local S = require("keras.symbolic")
local layers = require("keras.layers")
local optimizers = require("keras.optimizers")
local losses = require("keras.losses")
local metrics_mod = require("keras.metrics")
local callbacks = require("keras.callbacks")
local model_iter = require("keras.model_iter")
local MW = require("keras.model_weights")
local MO = require("keras.model_outputs")
local MD = require("keras.model_dist")
local A = require("keras.argcheck")

local models = {}
local is_node, is_tensor = S.is_node, core.is_tensor

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

local function check_opts(fn, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then fail("%s: options must be a table (got %s)", fn, type(opts)) end
  for k in pairs(opts) do
    if not allowed[k] then fail("%s: unknown option '%s'", fn, tostring(k)) end
  end
  return opts
end

local model_counters = {}
local function model_name(base)
  model_counters[base] = (model_counters[base] or 0) + 1
  return base .. "_" .. model_counters[base]
end

-- ------------------------------------------------------------ Model
local Model = {}
Model.__index = Model
Model.__tostring = function(m) return "<Model '" .. m.name .. "'>" end
models.Model_class = Model

local function as_list(x)
  if is_node(x) then return {x} end
  return x
end

-- Sets inputs/outputs and collects the layers reachable from the outputs (topological).
function Model:_init_graph(inputs, outputs, keep_input_layers)
  inputs, outputs = as_list(inputs), as_list(outputs)
  if type(inputs) ~= "table" or #inputs == 0 then fail("Model: inputs must be an Input node or a list of them") end
  if type(outputs) ~= "table" or #outputs == 0 then fail("Model: outputs must be a node or a list of nodes") end
  for i, n in ipairs(inputs) do
    if not is_node(n) or n:kind() ~= "placeholder" then
      fail("Model: inputs[%d] must be a keras.layers.Input node", i)
    end
  end
  for i, n in ipairs(outputs) do
    if not is_node(n) then fail("Model: outputs[%d] must be a graph node (a layer output)", i) end
    if n.gs ~= inputs[1].gs then fail("Model: outputs[%d] is not in the inputs' graph", i) end
  end
  self.inputs, self.outputs, self.gs = inputs, outputs, inputs[1].gs
  local seen, first, list = {}, {}, {}
  local is_input = {}
  for _, n in ipairs(inputs) do is_input[n.id] = true end
  local function walk(n)
    if seen[n] then return end
    seen[n] = true
    if n:kind() == "placeholder" and not is_input[n.id] then
      fail("Model: graph disconnected: the outputs need input '%s', which is not among the model's inputs",
        tostring(rawget(n, "name") or n.id))
    end
    for _, p in ipairs(rawget(n, "parents") or {}) do walk(p) end
    local l = rawget(n, "layer")
    if l and not first[l] then
      first[l] = n.id
      list[#list + 1] = l
    end
  end
  for _, o in ipairs(outputs) do walk(o) end
  table.sort(list, function(a, b) return first[a] < first[b] end)
  self.layers = {}
  for _, l in ipairs(list) do
    if keep_input_layers or l.class_name ~= "InputLayer" then self.layers[#self.layers + 1] = l end
  end
  self._all_layers = list
  self._nodes = seen -- the model's nodes (layers._loss_nodes: the penalties of its layers' calls)
  self.built = true
  self._train_plan, self._infer_plan = nil, nil
end

local function new_model(cls, name)
  return setmetatable({name = name, layers = {}, built = false, compiled = false,
    stop_training = false}, cls)
end

-- keras.Model{inputs=, outputs=, name=}
function models.Model(opts)
  opts = check_opts("Model", opts, {inputs = true, outputs = true, name = true})
  local m = new_model(Model, opts.name or model_name("model"))
  m:_init_graph(opts.inputs, opts.outputs, true)
  return m
end

-- ------------------------------------------------------------ Sequential
local Sequential = setmetatable({}, {__index = Model})
Sequential.__index = Sequential
Sequential.__tostring = Model.__tostring

-- model(x): Keras' nested models are not supported (a clear error, not "attempt to call").
function Model.__call(m)
  fail("Model: calling model '%s' on inputs (nested models) is not supported; call its layers " ..
    "on the new inputs instead (a layer called twice shares its weights)", m.name)
end
Sequential.__call = Model.__call

-- keras.Sequential{layer, ...} (the first may be an Input node), or {layers={...}, name=}.
function models.Sequential(opts)
  opts = opts or {}
  if type(opts) ~= "table" or is_tensor(opts) or is_node(opts) or layers.is_layer(opts) then
    fail("Sequential: expects a list of layers (or {layers = {...}, name = ...}). Received: %s",
      A.repr(opts))
  end
  if opts.layers ~= nil and (type(opts.layers) ~= "table" or is_tensor(opts.layers)) then
    fail("Sequential: layers must be a list of layers. Received: layers=%s", A.repr(opts.layers))
  end
  if opts.name ~= nil and type(opts.name) ~= "string" then
    fail("Sequential: name must be a string. Received: name=%s", A.repr(opts.name))
  end
  local m = new_model(Sequential, opts.name or model_name("sequential"))
  m._seq = {}
  for _, l in ipairs(opts.layers or opts) do m:add(l) end
  return m
end

function Sequential:add(layer)
  if is_node(layer) then
    if self._input or #self._seq > 0 then fail("Sequential: an Input can only be the first element") end
    self._input, self._out = layer, layer
    return
  end
  if models.is_model(layer) then
    fail("Sequential: a model inside a model (nested models) is not supported; add its layers instead")
  end
  if not layers.is_layer(layer) then
    fail("Sequential: add expects a layer (got %s)", is_tensor(layer) and "a tensor" or type(layer))
  end
  self._seq[#self._seq + 1] = layer
  if not self._input and #self._seq == 1 and layer.batch_input_shape then
    self._input = layers.Input{shape = layer.batch_input_shape, dtype = layer.dtype}
    self._out = self._input
  end
  if self._out then
    self._out = layer(self._out)
    self:_init_graph({self._input}, {self._out}, false)
  else
    self.layers[#self.layers + 1] = layer
  end
  self.compiled = self.compiled and false
end

-- Builds a deferred Sequential from the first data tensor (its shape, stype and dtype).
function Sequential:_build_from(x)
  if self.built then return end
  if #self._seq == 0 then fail("Sequential: the model has no layers") end
  local shape = {}
  for i = 2, #x.shape do shape[i - 1] = x.shape[i] end
  self._input = layers.Input{shape = shape, sparse = x.stype == "csr",
    dtype = x.dtype == "float64" and "float64" or "float32"}
  local out = self._input
  for _, l in ipairs(self._seq) do out = l(out) end
  self._out = out
  self:_init_graph({self._input}, {out}, false)
end

function Model:_build_from() end

-- ------------------------------------------------------------ devices
-- The host, as the binding takes a device ({device_type =, device_id =}).
local HOST = {device_type = "cpu", device_id = 0}
local function device_name(d) return d.device_type .. "(" .. tostring(d.device_id) .. ")" end

-- compile's / load_model's device: nil for the host (nil, "cpu", keras.cpu()), else a GPU
-- that exists (keras.gpu(n)'s checks, named after fn).
local function check_device(fn, d)
  if d == nil or d == "cpu" then return nil end
  if type(d) ~= "table" or (d.device_type ~= "cpu" and d.device_type ~= "gpu")
      or math.type(d.device_id) ~= "integer" then
    fail("%s: device must be keras.cpu() or keras.gpu(n). Received: device=%s", fn, A.repr(d))
  end
  if d.device_type == "cpu" then
    if d.device_id ~= 0 then fail("%s: invalid device %s", fn, device_name(d)) end
    return nil
  end
  local ok, err = pcall(require("keras").gpu, d.device_id)
  if not ok then fail("%s: %s", fn, tostring(err)) end
  return err
end

-- What a model on a GPU cannot be yet: distributed (its gradient exchange and sharded
-- Embeddings run over MPI on the host).
local function check_device_model(self, fn, dev, dist)
  if not dev then return end
  if dist then
    fail("%s: a distributed model on a GPU is not supported yet (NCCL / CUDA-aware MPI): " ..
      "use device = keras.cpu()", fn)
  end
  for _, l in ipairs(self._all_layers or self._seq or self.layers or {}) do
    if rawget(l, "sharded") then
      fail("%s: layer '%s' is a sharded Embedding (its rows are exchanged over MPI on the host): " ..
        "on a GPU it is not supported yet (use device = keras.cpu())", fn, tostring(l.name))
    end
  end
end

-- Moves every weight of the model (trainable or not) to its device (model.device, the host
-- when nil) in place: the tensors keep their identity, so graphs, layers and the caller's
-- handles see them there. Plans are made after it (_train, _infer).
function Model:_place_weights()
  local dev = rawget(self, "device") or HOST
  local name = device_name(dev)
  for _, l in ipairs(self:_weight_layers()) do
    for _, w in ipairs(l:weight_records()) do
      if w.tensor.device ~= name then core.tensor_move(w.tensor, dev) end
    end
  end
end

-- Sets the model's device (load_model{device =} of a model saved uncompiled): its weights
-- move there and its plans are made again.
function Model:_set_device(d, fn)
  local dev = check_device(fn, d)
  check_device_model(self, fn, dev, rawget(self, "_distributed"))
  self.device = dev
  self._train_plan, self._infer_plan = nil, nil
  self:_place_weights()
end

-- A tensor of the model (a weight, a state, an output) as a host tensor: itself on the host
-- (copy: a copy there too), else a host copy.
local function on_host(t, copy)
  if t.device ~= "cpu(0)" then return t:to(HOST) end
  return copy and t:copy() or t
end
models._on_host = on_host

-- ------------------------------------------------------------ compile

-- compile{optimizer=, loss=, metrics={...}, loss_weights=, device=}; with several outputs,
-- loss, loss_weights and metrics per output (model_outputs.lua).
function Model:compile(opts)
  opts = check_opts("Model.compile", opts, {optimizer = true, loss = true, metrics = true,
    device = true, loss_weights = true, distributed = true})
  if opts.optimizer == nil then fail("Model.compile: optimizer is required") end
  if opts.loss == nil then fail("Model.compile: loss is required") end
  -- device = keras.gpu(n): the weights move there now (in place), the optimizer states are
  -- made there, and the whole step runs there; keras.cpu() (the default) brings them back
  local dev = check_device("Model.compile", opts.device)
  local dist = MD.parse("Model.compile", opts.distributed) -- data-parallel fit (model_dist)
  check_device_model(self, "Model.compile", dev, dist)
  self.optimizer = optimizers.get(opts.optimizer)
  self._outputs_cfg, self._log_keys, self._mtargets, self._loss_weight = nil, nil, nil, nil
  if self.built and #self.outputs > 1 then
    MO.compile(self, opts)
  else
    self:_compile_one(opts)
  end
  self.device = dev
  self._distributed = dist
  self.compiled = true
  self._train_plan, self._infer_plan = nil, nil
  self:_place_weights()
  -- layer.trainable as Keras reads it: at compile (a later change waits for the next compile)
  self._trainable_at = {}
  for _, l in ipairs(self._all_layers or self._seq or self.layers) do self._trainable_at[l] = l.trainable end
end

-- compile's options of a model with one output (a one-entry list or output-keyed table of
-- loss / loss_weights works as its entry).
function Model:_compile_one(opts)
  local name = self:_output_name()
  local function one(v, what, is_single)
    return MO.per_output("Model.compile", what, v, {name}, 1, nil, is_single)
  end
  opts.loss = one(opts.loss, "loss", function() return false end)
  if opts.loss == nil then fail("Model.compile: loss has no entry for output '%s'", name) end
  local lw = one(opts.loss_weights, "loss_weights", function() return false end)
  if lw ~= nil and (type(lw) ~= "number" or lw ~= lw or math.abs(lw) == math.huge) then
    fail("Model.compile: loss_weights must be a number a output. Received: %s", A.repr(lw))
  end
  self._loss_weight = lw ~= 1 and lw or nil
  if type(opts.loss) == "function" then
    self.loss_name, self.loss_fn = "custom", opts.loss
  else
    self.loss_name, self.loss_fn = losses.resolve(opts.loss), nil
  end
  local ms = opts.metrics or {}
  if type(ms) ~= "table" then fail("Model.compile: metrics must be a list of names") end
  ms = self:_metrics_by_output(ms)
  -- names, keras.metrics objects or functions of (y_true, y_pred) nodes; their log keys
  self.metric_names = metrics_mod.names(ms, self.loss_name)
  self._metric_list = ms
end

-- The name of the model's output (Keras: its layer's name).
function Model:_output_name()
  local o = self.outputs and self.outputs[1]
  local l = o and rawget(o, "layer") or (self._seq and self._seq[#self._seq])
  return l and l.name or "output_1"
end

-- compile's metrics keyed by output name (Keras' dict form) -> that output's list; a list as
-- it is. A key that is no output's name, or a table mixing both forms, is an error.
function Model:_metrics_by_output(ms)
  if is_tensor(ms) or next(ms) == nil then return ms end
  local n, keyed = rawlen(ms), false
  for k in pairs(ms) do
    if math.type(k) ~= "integer" or k < 1 or k > n then keyed = k; break end
  end
  if keyed == false then return ms end
  local name = self:_output_name()
  if n > 0 then
    fail("Model.compile: metrics must be a list, or a table keyed by output name; got both (key %s)", A.repr(keyed))
  end
  for k, v in pairs(ms) do
    if k ~= name then
      fail("Model.compile: metrics are keyed by output name, and the model has no output %s (its output is '%s')",
        A.repr(k), name)
    end
    if type(v) == "string" or metrics_mod.is_metric(v) or type(v) == "function" then return {v} end
    if type(v) ~= "table" then fail("Model.compile: metrics['%s'] must be a list of metrics", name) end
    return v
  end
end

local function out_units(self)
  local s = self.outputs[1].shape
  return s[#s]
end

-- The training plan (feeds: inputs..., target; output 0: the model output).
function Model:_train()
  if self._train_plan then return self._train_plan end
  self:_place_weights() -- (weights made or replaced since compile)
  if #self.outputs > 1 then
    if not self._outputs_cfg then fail("Model: compile the model again: it has %d outputs now", #self.outputs) end
    return MO.train(self, self:_trainable_weights())
  end
  local gs, out = self.gs, self.outputs[1]
  local scce = self.loss_name == "sparse_categorical_crossentropy"
  local target = gs.g:placeholder{shape = MO.target_shape(out, scce), dtype = out.dtype, name = "target"}
  -- per-row sample weights (fed empty when none are given: the loss op is then unweighted)
  local wfeed = not self.loss_fn and
    gs.g:placeholder{shape = {-1}, dtype = out.dtype, name = "sample_weight"} or nil
  local loss_id
  if self.loss_fn then
    local l = self.loss_fn(S.new_node(gs, target, {}), out)
    if not is_node(l) then fail("Model.compile: a loss function must return a graph node") end
    loss_id = l.id
    if l.ndim ~= 0 then loss_id = gs.g:op("mean", {loss_id}, {}) end
  else
    loss_id = gs.g:op(losses.op_name(self.loss_name), {target, out.id, wfeed}, {})
  end
  if self._loss_weight then loss_id = gs.g:op("mul_scalar", {loss_id}, {scalar = self._loss_weight}) end
  -- the layers' regularization penalties (Keras' model.losses) join the loss
  for _, n in ipairs(layers._loss_nodes(self._all_layers, self._nodes)) do
    loss_id = gs.g:op("add", {loss_id, n.id}, {})
  end
  local feeds = {}
  for i, n in ipairs(self.inputs) do feeds[i] = n.id end
  feeds[#feeds + 1] = target
  feeds[#feeds + 1] = wfeed
  self._wfeed, self._wdtype = wfeed, out.dtype
  local weights, stypes = self:_trainable_weights()
  -- the metrics: results keyed by their log keys; metric functions' values are plan outputs
  local mp = metrics_mod.plan(self._metric_list or self.metric_names,
    self.loss_name ~= "custom" and self.loss_name or nil, out_units(self),
    S.new_node(gs, target, {}), out, 2)
  self._canon, self._mplan = mp.keys, mp
  local p = core.plan_new(gs.g, {feeds = feeds, outputs = {out.id, table.unpack(mp.nodes)}, loss = loss_id,
    weights = weights, grad_stypes = stypes, optimizer = self.optimizer._c, device = self.device})
  self.optimizer:_bind(p)
  MD.attach_shards(self, p) -- sharded Embeddings exchange rows over MPI
  self._train_plan, self._scce = p, scce
  return p
end

-- compile's loss_weights as given (nil: none), for the model file.
function Model:_loss_weights_config()
  if self._outputs_cfg then return self._outputs_cfg.loss_weights end
  return self._loss_weight
end

-- The trainable weights' variable nodes and their gradients' stypes.
function Model:_trainable_weights()
  local gs, weights, stypes = self.gs, {}, {}
  for _, l in ipairs(self._all_layers) do
    for _, w in ipairs(l:weight_records()) do
      w.trainable = l:_weight_trainable(w, self._trainable_at and self._trainable_at[l])
      if w.trainable then
        weights[#weights + 1] = l:_var(gs, w.tensor).id
        stypes[#stypes + 1] = w.grad_stype
      end
    end
  end
  return weights, stypes
end

function Model:_infer()
  if not self._infer_plan then
    self:_place_weights()
    local feeds = {}
    for i, n in ipairs(self.inputs) do feeds[i] = n.id end
    local outs = {}
    for j, o in ipairs(self.outputs) do outs[j] = o.id end
    self._infer_plan = core.plan_new(self.gs.g, {feeds = feeds, outputs = outs, device = self.device})
    MD.attach_shards(self, self._infer_plan, true)
  end
  return self._infer_plan
end

-- ------------------------------------------------------------ data checks
local function shape_str(s) return S.shape_str(s) end

-- x as a list of tensors, one per model input; builds a deferred Sequential.
function Model:_xs(x, fn)
  local xs = x
  if is_tensor(x) then xs = {x} end
  if type(xs) ~= "table" or #xs == 0 then
    fail("%s: x must be a tensor or a list of tensors (got %s)", fn, type(x))
  end
  for i, t in ipairs(xs) do
    if not is_tensor(t) then fail("%s: x[%d] must be a tensor (got %s)", fn, i, type(t)) end
    if t.ndim == 0 then fail("%s: x[%d] is a 0-d tensor; rows expected", fn, i) end
  end
  if not self.built then self:_build_from(xs[1]) end
  if #xs ~= #self.inputs then
    fail("%s: the model has %d input(s), got %d tensor(s)", fn, #self.inputs, #xs)
  end
  for i, t in ipairs(xs) do
    local want = self.inputs[i].shape
    local ok = #t.shape == #want
    for d = 2, #want do ok = ok and (want[d] < 0 or want[d] == t.shape[d]) end
    if not ok then
      fail("%s: x[%d] has shape %s but input '%s' of the model expects %s", fn, i,
        shape_str(t.shape), tostring(rawget(self.inputs[i], "name") or i), shape_str(want))
    end
  end
  local n = xs[1].shape[1]
  for i = 2, #xs do
    if xs[i].shape[1] ~= n then
      fail("%s: all inputs must have the same number of rows: x[1] has %d, x[%d] has %d", fn, n, i, xs[i].shape[1])
    end
  end
  return xs, n
end

-- y shaped like the target placeholder ((n) against an output (n, 1) works as in Keras).
function Model:_y(y, n, fn, j)
  if not is_tensor(y) then fail("%s: y must be a tensor (got %s)", fn, type(y)) end
  if y.ndim == 0 then fail("%s: y is a 0-d tensor; rows expected", fn) end
  if y.shape[1] ~= n then
    fail("%s: x and y have different numbers of rows: x has %d, y has %d", fn, n, y.shape[1])
  end
  if y.stype ~= "default" then y = y:tostype("default") end
  local out = self.outputs[j or 1].shape
  if (j and MO.scce(self, j)) or (not j and self._scce) then
    if y.ndim == 2 and y.shape[2] == 1 then return y:reshape({n}) end
    if y.ndim ~= 1 then
      fail("%s: sparse_categorical_crossentropy expects class ids of shape (n) or (n, 1), got %s",
        fn, shape_str(y.shape))
    end
    return y
  end
  if y.ndim == 1 and #out == 2 and out[2] == 1 then return y:reshape({n, 1}) end
  local ok = y.ndim == #out
  for d = 2, #out do ok = ok and (out[d] < 0 or out[d] == y.shape[d]) end
  if not ok then
    fail("%s: y has shape %s but the model's output has shape %s", fn, shape_str(y.shape), shape_str(out))
  end
  return y
end

local function split_rows(t, a, b) return t:slice(a, b) end

-- opts plus the compiled metrics' options of p:fit_epoch / p:evaluate.
local function with_metrics(self, opts)
  for k, v in pairs(self._mplan.opts) do opts[k] = v end
  return opts
end

-- opts plus the data fed after y (Model:_targets: other targets, weights; nil: none).
function Model:_weighted(opts, extra)
  opts.extra = extra
  return opts
end

-- y shaped for the model and the data its plan takes after y: with one output, {w or false}
-- when the loss can be weighted (w: sample_weight times class_weight's rows); with several,
-- model_outputs.targets.
function Model:_targets(y, n, fn, sw, cw)
  if #self.outputs > 1 then return MO.targets(self, y, n, fn, sw, cw) end
  y = self:_y(y, n, fn)
  local w = MW.rows(fn, self, y, n, sw, cw)
  return y, self._wfeed and {w or false} or nil
end

-- Rows a..b of each tensor of an extra list (false stays).
local function split_extra(extra, a, b)
  local r = {}
  for i, t in ipairs(extra) do r[i] = t and t:slice(a, b) end
  return r
end

-- The feeds of one step: the inputs, y, and the extra data (false: the empty "no weights").
function Model:_feeds(xs, y, extra)
  local feeds = {}
  for i, t in ipairs(xs) do feeds[i] = t end
  feeds[#feeds + 1] = y
  for _, t in ipairs(extra or {}) do feeds[#feeds + 1] = t or MW.none(self) end
  return feeds
end

-- The metric list and spec of p:train_step / p:test_step (the target: the feed after the
-- inputs).
function Model:_step_args()
  local list, spec = metrics_mod.step_args(self._mplan)
  spec.targets = self._mtargets or {}
  for i = 1, #list do spec.targets[i] = spec.targets[i] or #self.inputs + 1 end
  return list, spec
end

local function metric_logs(self, logs, mt, prefix)
  for i, name in ipairs(self._log_keys or self.metric_names) do logs[prefix .. name] = mt[self._canon[i]] end
  return logs
end

-- ------------------------------------------------------------ fit
local function check_positive(fn, name, v, def)
  if v == nil then return def end
  local iv = A.toint(v)
  if iv == nil or iv < 1 then
    fail("%s: %s must be a positive integer. Received: %s=%s", fn, name, name, tostring(v))
  end
  return iv
end

-- Why fit / evaluate refuse an option with an iterator.
local iter_why = {
  batch_size = "the iterator makes the batches: LibSVMIter{batch_size = }",
  shuffle = "the iterator yields batches in its own order: ArrayIterator{shuffle = true}",
  validation_split = "an iterator cannot be split: give validation_data",
  sample_weight = "weights must be batched with the rows: use in-memory data, or class_weight",
}

-- validation_freq: an integer k (every k-th epoch) or a list of epochs -> f(epoch) -> bool.
local function check_freq(fn, v)
  if v == nil then return function() return true end end
  local k = A.toint(v)
  if k ~= nil and k >= 1 then return function(e) return e % k == 0 end end
  if type(v) == "table" and not is_tensor(v) and rawlen(v) > 0 then
    local set = {}
    for i = 1, rawlen(v) do
      local e = A.toint(rawget(v, i))
      if e == nil or e < 1 then
        fail("%s: validation_freq must be a positive integer or a list of epochs. Received: validation_freq=%s",
          fn, A.repr(v))
      end
      set[e] = true
    end
    return function(e) return set[e] == true end
  end
  fail("%s: validation_freq must be a positive integer or a list of epochs. Received: validation_freq=%s",
    fn, A.repr(v))
end

function Model:_require_compiled()
  if not self.compiled then fail("Model: you must compile the model before training") end
end

-- fit(x, y, {batch_size=32, epochs=1, verbose=1, shuffle=true|false|"batch",
--   validation_data={xv, yv[, wv]} or an iterator, validation_split=0, validation_steps=,
--   validation_freq=1, callbacks={...}, initial_epoch=0, sample_weight=, class_weight=,
--   steps_per_epoch=}) -> History
function Model:fit(x, y, opts)
  local fn = "Model.fit"
  opts = check_opts(fn, opts, {batch_size = true, epochs = true, verbose = true, shuffle = true,
    validation_data = true, validation_split = true, callbacks = true, initial_epoch = true,
    sample_weight = true, class_weight = true, steps_per_epoch = true, validation_steps = true,
    validation_freq = true})
  self:_require_compiled()
  local initial_epoch = opts.initial_epoch == nil and 0 or A.int(fn, "initial_epoch", opts.initial_epoch, 0)
  local iter = model_iter.is_iterator(x) and x or nil
  if iter and self.built and #self.outputs > 1 then
    fail("%s: a model with several outputs trains on in-memory data (an iterator yields one y)", fn)
  end
  if iter then
    -- what an iterator decides itself is an error to give, not an option to drop
    for _, k in ipairs({"batch_size", "shuffle", "validation_split", "sample_weight"}) do
      if opts[k] ~= nil then fail("%s: %s cannot be used with a data iterator (%s)", fn, k, iter_why[k]) end
    end
  elseif opts.steps_per_epoch ~= nil then
    fail("%s: steps_per_epoch is for data iterators; in-memory data is split into batches of batch_size", fn)
  end
  local bs = check_positive(fn, "batch_size", opts.batch_size, 32)
  local epochs = check_positive(fn, "epochs", opts.epochs, 1)
  local steps = check_positive(fn, "steps_per_epoch", opts.steps_per_epoch, nil)
  local vsteps = check_positive(fn, "validation_steps", opts.validation_steps, nil)
  local vfreq = check_freq(fn, opts.validation_freq)
  local verbose = opts.verbose == nil and 1 or opts.verbose
  if verbose ~= 0 and verbose ~= 1 and verbose ~= 2 then
    fail("%s: verbose must be 0, 1 or 2. Received: verbose=%s", fn, tostring(verbose))
  end
  local shuffle = opts.shuffle == nil and true or opts.shuffle
  if shuffle ~= true and shuffle ~= false and shuffle ~= "batch" then
    fail("%s: shuffle must be true, false or 'batch'. Received: shuffle=%s", fn, A.repr(shuffle))
  end
  local xs, n, xv, yv, wv, w
  if iter then
    if y ~= nil then fail("%s: y must be nil when x is a data iterator", fn) end
    model_iter.build_from(self, iter, fn)
  else
    xs, n = self:_xs(x, fn)
  end
  local p = self:_train()
  local dctx = MD.begin_fit(self, p) -- distributed: rank 0's weights and states everywhere
  if dctx and dctx.rank ~= 0 then verbose = 0 end -- rank 0 prints
  if not iter then
    y, w = self:_targets(y, n, fn, opts.sample_weight, opts.class_weight)
  elseif opts.class_weight ~= nil then -- applied batch by batch (model_iter)
    if not self._wfeed then MW.rows(fn, self, nil, 0, nil, opts.class_weight) end
    A.plain_table(fn, "class_weight", opts.class_weight)
  end
  local split = opts.validation_split or 0
  if type(split) ~= "number" or split < 0 or split >= 1 then
    fail("%s: validation_split must be a number in [0, 1). Received: validation_split=%s", fn, tostring(split))
  end
  if model_iter.is_iterator(opts.validation_data) then
    xv = opts.validation_data -- an iterator: evaluated batch by batch after each epoch
  elseif opts.validation_data ~= nil then
    local vd = opts.validation_data
    if type(vd) ~= "table" or is_tensor(vd) or vd[1] == nil or vd[2] == nil or rawlen(vd) > 3 then
      fail("%s: validation_data must be {x_val, y_val} or {x_val, y_val, sample_weight_val}", fn)
    end
    local vn
    xv, vn = self:_xs(vd[1], fn .. " (validation_data)")
    yv, wv = self:_targets(vd[2], vn, fn .. " (validation_data)", vd[3], nil)
  elseif split > 0 and not iter then
    local nv = math.floor(n * split)
    if nv >= 1 and nv < n then
      local nt = n - nv
      xv, yv = {}, split_rows(y, nt + 1, n)
      for i, t in ipairs(xs) do xv[i] = split_rows(t, nt + 1, n); xs[i] = split_rows(t, 1, nt) end
      if w then wv, w = split_extra(w, nt + 1, n), split_extra(w, 1, nt) end
      y, n = split_rows(y, 1, nt), nt
    end
  end
  if vsteps and not model_iter.is_iterator(xv) then
    fail("%s: validation_steps is for validation data given as an iterator", fn)
  end
  local history = callbacks.History()
  local list = {}
  local progbar = verbose > 0 and callbacks.ProgbarLogger{verbose = verbose} or nil
  list[#list + 1] = progbar
  -- one warning when the loss becomes NaN or inf (before the user's callbacks see that batch)
  list[#list + 1] = callbacks._LossWatch.new(progbar)
  local user_cbs = opts.callbacks or {}
  if type(user_cbs) ~= "table" or getmetatable(user_cbs) ~= nil then
    fail("%s: callbacks must be a list of callbacks. Received: callbacks=%s", fn, A.repr(user_cbs))
  end
  for i, c in ipairs(user_cbs) do
    if not callbacks.is_callback(c) then
      fail("%s: callbacks[%d] is not a callback (keras.callbacks.*). Received: %s", fn, i, A.repr(c))
    end
  end
  for _, c in ipairs(MD.callbacks(dctx, user_cbs, self)) do list[#list + 1] = c end
  list[#list + 1] = history
  local cbl = callbacks.CallbackList.new(list)
  local shown = {"loss"}
  for _, nm in ipairs(self._log_keys or self.metric_names) do shown[#shown + 1] = nm end
  if xv then
    shown[#shown + 1] = "val_loss"
    for _, nm in ipairs(self._log_keys or self.metric_names) do shown[#shown + 1] = "val_" .. nm end
  end
  -- rows an epoch: unknown for an iterator until a pass has ended (LibSVMIter.num_samples)
  local function epoch_rows()
    if not iter then return n end
    if steps then return nil end
    return iter.num_data or rawget(iter, "num_samples")
  end
  n = epoch_rows()
  local params = {epochs = epochs, samples = n, batch_size = bs, verbose = verbose,
    metrics = shown, do_validation = xv ~= nil, steps = steps or (n and (n + bs - 1) // bs or nil)}
  if iter then params.batch_size = rawget(iter, "batch_size") end
  cbl:set_model(self)
  cbl:set_params(params)
  self.history = history
  self.stop_training = false
  local want_batches = verbose == 1 or cbl:wants_batches()
  want_batches = MD.agree_stop(dctx, want_batches) -- the same on every rank (collectives follow)
  local stream = iter and model_iter.stream(iter, steps) or nil
  cbl:on_train_begin({})
  for epoch = initial_epoch + 1, epochs do
    if iter and params.samples == nil and not steps then params.samples = epoch_rows() end
    cbl:on_epoch_begin(epoch, {})
    local logs = {}
    if iter then
      local loss, mt = model_iter.fit_epoch(self, p, stream, cbl, want_batches, metric_logs, dctx,
        opts.class_weight)
      logs.loss = loss
      metric_logs(self, logs, mt, "")
    else
      local prev_seen = 0
      local on_batch
      if want_batches then
        on_batch = function(batch, seen, total, loss, mt)
          local bl = metric_logs(self, {batch = batch, size = seen - prev_seen, seen = seen, loss = loss}, mt, "")
          prev_seen = seen
          cbl:on_batch_begin(batch, {batch = batch, size = bl.size})
          cbl:on_batch_end(batch, bl)
          return MD.agree_stop(dctx, self.stop_training)
        end
      end
      local loss, mt = p:fit_epoch(xs, y, self:_weighted(with_metrics(self, MD.epoch_opts(dctx,
        {batch_size = bs, shuffle = shuffle, on_batch = on_batch}, shuffle)), w))
      if dctx then loss, mt = MD.combine(dctx, MD.local_rows(dctx, n, bs), loss, mt) end
      logs.loss = loss
      metric_logs(self, logs, mt, "")
    end
    if xv and vfreq(epoch) then
      local vl, vm
      if yv == nil then
        vl, vm = model_iter.evaluate(self, p, xv, vsteps)
      else
        vl, vm = p:evaluate(xv, yv, self:_weighted(with_metrics(self, {batch_size = bs}), wv))
      end
      logs.val_loss = vl
      metric_logs(self, logs, vm, "val_")
    end
    self._epoch = epoch -- (model files record it: a checkpoint resumes from here)
    cbl:on_epoch_end(epoch, logs)
    if self.stop_training then break end
  end
  cbl:on_train_end({})
  return history
end

-- ------------------------------------------------------------ evaluate / predict
-- evaluate(x, y, {batch_size=32, verbose=, sample_weight=}) -> loss, {metric name given to
-- compile = value}
function Model:evaluate(x, y, opts)
  local fn = "Model.evaluate"
  opts = check_opts(fn, opts, {batch_size = true, verbose = true, sample_weight = true, steps = true})
  self:_require_compiled()
  if model_iter.is_iterator(x) then
    for _, k in ipairs({"batch_size", "sample_weight"}) do
      if opts[k] ~= nil then fail("%s: %s cannot be used with a data iterator (%s)", fn, k, iter_why[k]) end
    end
    if y ~= nil then fail("%s: y must be nil when x is a data iterator", fn) end
    model_iter.build_from(self, x, fn)
    local loss, mt = model_iter.evaluate(self, self:_train(), x,
      check_positive(fn, "steps", opts.steps, nil))
    return loss, metric_logs(self, {}, mt, "")
  end
  if opts.steps ~= nil then fail("%s: steps is for data iterators; in-memory data takes batch_size", fn) end
  local bs = check_positive(fn, "batch_size", opts.batch_size, 32)
  local xs, n = self:_xs(x, fn)
  MD.agree_batches(self, fn, n, bs)
  local p = self:_train()
  local w
  y, w = self:_targets(y, n, fn, opts.sample_weight, nil)
  local loss, mt = p:evaluate(xs, y, self:_weighted(with_metrics(self, {batch_size = bs}), w))
  return loss, metric_logs(self, {}, mt, "")
end

-- predict(x, {batch_size=32}) -> dense tensor of the output over all rows
function Model:predict(x, opts)
  local fn = "Model.predict"
  if type(opts) == "number" then opts = {batch_size = opts} end
  opts = check_opts(fn, opts, {batch_size = true, verbose = true})
  local bs = check_positive(fn, "batch_size", opts.batch_size, 32)
  if model_iter.is_iterator(x) then
    model_iter.build_from(self, x, fn)
    if #self.outputs > 1 then fail("%s: a model with several outputs predicts on in-memory data", fn) end
    return model_iter.predict(self, self:_infer(), x, bs)
  end
  local xs, n = self:_xs(x, fn)
  MD.agree_batches(self, fn, n, bs)
  if #self.outputs > 1 then return {self:_infer():predict(xs, bs)} end -- a tensor an output
  return self:_infer():predict(xs, bs)
end

-- The weights of a *_on_batch call: sample weights (a tensor; with several outputs a list or
-- a table keyed by output name) or {sample_weight =, class_weight =} (Keras' keywords).
local function batch_weights(self, fn, w)
  if w == nil or is_tensor(w) then return w, nil end
  if type(w) ~= "table" then
    fail("%s: the third argument must be sample weights (a tensor) or {sample_weight =, class_weight =}. Received: %s",
      fn, A.repr(w))
  end
  if rawget(w, "sample_weight") == nil and rawget(w, "class_weight") == nil then
    return w, nil -- a list (or table keyed by output name) of sample weights
  end
  w = check_opts(fn, w, {sample_weight = true, class_weight = true})
  return w.sample_weight, w.class_weight
end

-- train_on_batch(x, y[, w]) -> loss, metrics table (computed from the step's own forward,
-- before the update, as Keras; empty without compiled metrics). w: sample weights, or
-- {sample_weight =, class_weight =}.
function Model:train_on_batch(x, y, w)
  local fn = "Model.train_on_batch"
  self:_require_compiled()
  local xs, n = self:_xs(x, fn)
  local p = self:_train()
  local extra
  y, extra = self:_targets(y, n, fn, batch_weights(self, fn, w))
  local loss, m = p:train_step(self:_feeds(xs, y, extra), self:_step_args())
  return loss, metric_logs(self, {}, m, "")
end

-- test_on_batch(x, y[, w]) -> loss, metrics (w: sample weights, as train_on_batch's)
function Model:test_on_batch(x, y, w)
  local fn = "Model.test_on_batch"
  local xs, n = self:_xs(x, fn)
  local sw, cw = batch_weights(self, fn, w)
  if cw ~= nil then fail("%s: class_weight is for training (Keras' test_on_batch takes sample_weight)", fn) end
  -- evaluate's in-memory path on one batch, its messages naming test_on_batch
  self:_require_compiled()
  local bs = math.max(n, 1)
  MD.agree_batches(self, fn, n, bs)
  local p = self:_train()
  local wt
  y, wt = self:_targets(y, n, fn, sw, nil)
  local loss, mt = p:evaluate(xs, y, self:_weighted(with_metrics(self, {batch_size = bs}), wt))
  return loss, metric_logs(self, {}, mt, "")
end

-- predict_on_batch(x) -> output tensor
function Model:predict_on_batch(x)
  local xs = self:_xs(x, "Model.predict_on_batch")
  local outs = self:_infer():forward(xs, false)
  if #self.outputs > 1 then
    for j, t in ipairs(outs) do outs[j] = on_host(t, true) end
    return outs
  end
  return on_host(outs[1], true)
end

-- ------------------------------------------------------------ weights
function Model:_weight_layers()
  return self._all_layers or self.layers
end

-- get_weights(): copies of the weights, on the host (a model on a GPU copies them back).
function Model:get_weights()
  local r = {}
  for _, l in ipairs(self:_weight_layers()) do
    for _, t in ipairs(l:get_weights()) do r[#r + 1] = on_host(t) end
  end
  return r
end

function Model:set_weights(list)
  if type(list) ~= "table" or is_tensor(list) then
    fail("Model.set_weights: expected a list of tensors. Received: weights=%s", A.repr(list))
  end
  local total = 0
  for _, l in ipairs(self:_weight_layers()) do total = total + #l.weights end
  if rawlen(list) ~= total then   -- rawlen: a list's own length, whatever its __len says
    fail("Model.set_weights: the model has %d weight(s), got %d", total, rawlen(list))
  end
  local k = 0
  for _, l in ipairs(self:_weight_layers()) do
    local part = {}
    for i = 1, #l.weights do part[i] = rawget(list, k + i) end
    k = k + #l.weights
    if #part > 0 then l:set_weights(part) end
  end
  -- a row_sparse weight is replaced by a new host tensor (Layer:set_weights): to the device
  if rawget(self, "device") then self:_place_weights() end
end

-- model.weights: every weight tensor, layer by layer.
function Model:get_weight_tensors()
  local r = {}
  for _, l in ipairs(self:_weight_layers()) do
    for _, t in ipairs(l.weights) do r[#r + 1] = t end
  end
  return r
end

-- get_layer(name) or get_layer(index) (1-based, in model.layers)
function Model:get_layer(key)
  key = A.toint(key) or key -- get_layer(2.0) is get_layer(2)
  if math.type(key) == "integer" then
    local l = self.layers[key]
    if not l then fail("Model.get_layer: index %d out of range (the model has %d layers)", key, #self.layers) end
    return l
  end
  for _, l in ipairs(self._all_layers or self.layers) do
    if l.name == key then return l end
  end
  fail("Model.get_layer: no such layer: '%s'", tostring(key))
end

function Model:count_params()
  local n = 0
  for _, l in ipairs(self:_weight_layers()) do n = n + l:count_params() end
  return n
end

-- summary(print_fn=print): in model_summary.lua.
require("keras.model_summary").install(Model)

-- Model metatable access to model.weights
local model_index = Model.__index
local function index(cls)
  return function(m, k)
    if k == "weights" then return m:get_weight_tensors() end
    return cls[k]
  end
end
Model.__index = index(Model)
Sequential.__index = index(Sequential)
local _ = model_index

models.Model = models.Model
models.Sequential = models.Sequential
function models.is_model(x) local mt = getmetatable(x); return mt == Model or mt == Sequential end

return models
