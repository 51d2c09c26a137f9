-- keras/saving.lua: model files: save_model/load_model (architecture, weights, compile config,
-- optimizer state) and save_weights/load_weights, over core.save_tensors/load_tensors.
local core = require("keras.core")
local json = require("keras.json")
local A = require("keras.argcheck")
local layers = require("keras.layers")
local models = require("keras.models")
local optimizers = require("keras.optimizers")

local saving = {}
local FORMAT = "keras-lua-model/1"
local OPTIMIZER_CLASSES = {SGD = true, Adam = true, Adagrad = true, RMSprop = true, Ftrl = true}

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

-- The model argument of the public functions (a table that is not a model, e.g. a layer,
-- would otherwise fail deep inside with "attempt to call a nil value").
local function check_model(fn, m)
  if not models.is_model(m) then
    fail("%s: expected a keras model (got %s)", fn, type(m) == "table" and "table" or type(m))
  end
end

-- ------------------------------------------------------------ layer configs
-- What each built-in layer needs to be rebuilt (used when a layer has no get_config).
-- A regularizer as Keras 2 writes it: {class_name = "L1L2", config = {l1 =, l2 =}}.
local REGULARIZED = {"kernel_regularizer", "bias_regularizer", "embeddings_regularizer"}
local function regularizer_configs(l, c)
  for _, k in ipairs(REGULARIZED) do
    local r = rawget(l, k)
    if r ~= nil then c[k] = {class_name = "L1L2", config = r:get_config()} end
  end
end

local function none() end
local config_of = {
  Dense = function(l, c)
    c.units, c.use_bias, c.sparse_weight = l.units, l.use_bias, l.sparse_weight
    c.activation = l.activation_name
    regularizer_configs(l, c)
  end,
  Embedding = function(l, c)
    c.input_dim, c.output_dim, c.input_length, c.sparse_grad, c.mask_zero =
      l.vocab, l.output_dim, l.input_length, l.sparse_grad, rawget(l, "mask_zero")
    c.sharded = rawget(l, "sharded") or nil
    regularizer_configs(l, c)
  end,
  Flatten = none, GlobalAveragePooling1D = none, GlobalMaxPooling1D = none,
  Add = none, Subtract = none, Multiply = none,
  Dot = function(l, c)
    c.axes, c.normalize = l.axes, l.normalize
    if type(c.axes) == "table" then c.axes = {c.axes[1], c.axes[2]} end -- the caller's to change
  end,
  Activation = function(l, c) c.activation = l.activation_name end,
  Dropout = function(l, c) c.rate, c.seed = l.rate, l.seed end,
  Concatenate = function(l, c) c.axis = l.axis end,
}

-- {class_name=, config=} of layer l; Lambda, custom activations and unknown classes raise.
function saving.layer_config(l, fn)
  fn = fn or "save_model"
  if not layers.is_layer(l) then
    fail("layer_config: expected a keras layer (got %s)", type(l))
  end
  local cls = l.class_name
  local c
  if type(l.get_config) == "function" then
    c = l:get_config()
  else
    local f = config_of[cls]
    if not f then
      fail("%s: layer '%s' (%s) cannot be saved with the architecture (use save_weights)", fn,
        l.name, tostring(cls))
    end
    c = {name = l.name, dtype = l.dtype, trainable = l.trainable}
    f(l, c)
  end
  if c.activation == "custom" then
    fail("%s: layer '%s' uses a custom activation function, which cannot be saved (use save_weights)", fn,
      l.name)
  end
  return {class_name = cls, config = c}
end

-- Rebuilds a layer from {class_name=, config=}.
function saving.layer_from_config(d, where)
  where = type(where) == "string" and where or "layer_from_config"
  if type(d) ~= "table" then
    fail("%s: a layer must be {class_name=, config=}. Received: %s", where, A.repr(d))
  end
  -- a layer class (what layers.define made), not another entry of keras.layers (Input,
  -- define, activations, ...)
  local cls = type(d.class_name) == "string" and rawget(layers, d.class_name)
  if type(cls) ~= "table" or rawget(cls, "class_name") ~= d.class_name or d.class_name == "InputLayer" then
    fail("%s: unknown layer class %s", where, A.repr(d.class_name))
  end
  local c = {}
  for k, v in pairs(type(d.config) == "table" and d.config or {}) do if v ~= json.null then c[k] = v end end
  for _, k in ipairs(REGULARIZED) do
    local r = c[k]
    if type(r) == "table" and r.class_name == "L1L2" and type(r.config) == "table" then
      c[k] = require("keras.regularizers").L1L2{l1 = r.config.l1, l2 = r.config.l2}
    end
  end
  if type(cls.from_config) == "function" then return cls.from_config(c) end
  return cls(c)
end

-- ------------------------------------------------------------ architecture
-- Keras 2's model JSON layout: {class_name = "Model"|"Sequential", config = {name =,
-- layers = {{class_name =, name =, config =, inbound_nodes = {node, ...}}, ...},
-- input_layers =, output_layers =}, keras_version =, backend =}. A node is the list of the
-- tensors one call of the layer took, each {layer name, node index, tensor index, {}}, with
-- Keras' own numbering (from 0); a layer called twice (shared) has two nodes.
local KERAS_VERSION = "2.2.4"

local function input_config(node, layer, fn)
  if type(node.shape) ~= "table" then
    fail("%s: the input of layer '%s' has no known shape", fn, tostring(layer.name))
  end
  local shape = {json.null}
  for i = 2, #node.shape do shape[i] = node.shape[i] < 0 and json.null or node.shape[i] end
  return {class_name = "InputLayer", name = layer.name, inbound_nodes = {},
    config = {name = layer.name, batch_input_shape = shape, sparse = node.stype == "csr",
      dtype = node.dtype}}
end

-- The calls of each layer that the model uses (reachable from its outputs), in call order,
-- and the index (from 0) of each call's output node among them.
local function model_nodes(m)
  local reach = {}
  local function walk(n)
    if reach[n] then return end
    reach[n] = true
    for _, p in ipairs(rawget(n, "parents") or {}) do walk(p) end
  end
  for _, n in ipairs(m.inputs) do walk(n) end
  for _, n in ipairs(m.outputs) do walk(n) end
  local nodes, index = {}, {}
  for _, l in ipairs(m._all_layers) do
    local list = {}
    for _, out in ipairs(l.inbound or {}) do
      if reach[out] then
        list[#list + 1] = out
        index[out] = #list - 1
      end
    end
    nodes[l] = list
  end
  return nodes, index
end

-- {layer name, node index, 0} of node n, a layer output inside the model (what names it).
local function node_ref(n, index, what, fn)
  local src = rawget(n, "layer")
  if not src or index[n] == nil then fail("%s: %s", fn, what) end
  return {src.name, index[n], 0}
end

function saving.architecture(m, fn)
  fn = fn or "save_model"
  check_model(fn, m)
  if not m.built then
    fail("%s: the model '%s' is not built yet (give it an Input or train it first)", fn, m.name)
  end
  local cfg = {name = m.name, layers = {}}
  local arch = {config = cfg, keras_version = KERAS_VERSION, backend = "keras-lua"}
  if rawget(m, "_seq") then
    arch.class_name = "Sequential"
    cfg.layers[1] = input_config(m._input, m._input.layer, fn)
    cfg.layers[1].name, cfg.layers[1].inbound_nodes = nil, nil
    local seen = {}
    for _, l in ipairs(m._seq) do
      if seen[l] then fail("%s: layer '%s' appears twice in the Sequential model '%s'", fn, l.name, m.name) end
      seen[l] = true
      cfg.layers[#cfg.layers + 1] = saving.layer_config(l, fn)
    end
    return arch
  end
  arch.class_name = "Model"
  local nodes, index = model_nodes(m)
  for _, l in ipairs(m._all_layers) do
    if l.class_name == "InputLayer" then
      cfg.layers[#cfg.layers + 1] = input_config(l.output, l, fn)
    else
      local d = saving.layer_config(l, fn)
      d.name, d.inbound_nodes = l.name, {}
      for k, out in ipairs(nodes[l]) do
        local ins = {}
        for i, n in ipairs(out.inputs or {}) do
          ins[i] = node_ref(n, index, string.format("input %d of layer '%s' is not a layer output " ..
            "(graphs with K ops between layers cannot be saved; use save_weights)", i, l.name), fn)
          ins[i][4] = json.object()
        end
        d.inbound_nodes[k] = ins
      end
      cfg.layers[#cfg.layers + 1] = d
    end
  end
  cfg.input_layers, cfg.output_layers = {}, {}
  for i, n in ipairs(m.inputs) do cfg.input_layers[i] = node_ref(n, index, "an input is not an Input", fn) end
  for i, n in ipairs(m.outputs) do
    cfg.output_layers[i] = node_ref(n, index, "the model output is not a layer output", fn)
  end
  return arch
end

-- The layout written before Keras 2's (keras-lua-model/1 files of the first releases):
-- {class_name=, name=, layers = {{class_name=, config=, inbound = {names}, multi=}}, inputs =
-- {names}, outputs = {names}}, every layer called once.
local function from_legacy(arch, where)
  local layers_, cfg = {}, {name = arch.name, layers = {}, input_layers = {}, output_layers = {}}
  for i, d in ipairs(arch.layers) do
    if type(d) ~= "table" then
      fail("%s: layer %d of the architecture is not an object. Received: %s", where, i, A.repr(d))
    end
    local c = {}
    for k, v in pairs(type(d.config) == "table" and d.config or {}) do c[k] = v end
    if d.class_name == "InputLayer" and type(c.shape) == "table" then
      c.batch_input_shape = {json.null, table.unpack(c.shape)}
      c.shape = nil
    end
    local ins = {}
    for j, src in ipairs(type(d.inbound) == "table" and d.inbound or {}) do ins[j] = {src, 0, 0} end
    layers_[i] = {class_name = d.class_name, name = c.name, config = c,
      inbound_nodes = d.class_name ~= "InputLayer" and arch.class_name == "Model" and {ins} or nil}
  end
  cfg.layers = layers_
  for i, n in ipairs(type(arch.inputs) == "table" and arch.inputs or {}) do cfg.input_layers[i] = {n, 0, 0} end
  for i, n in ipairs(type(arch.outputs) == "table" and arch.outputs or {}) do cfg.output_layers[i] = {n, 0, 0} end
  return {class_name = arch.class_name, config = cfg}
end

local function make_input(d, where)
  local c = type(d.config) == "table" and d.config or {}
  local b = c.batch_input_shape
  if type(b) ~= "table" or #b < 2 then
    fail("%s: input layer '%s' has no batch_input_shape", where, tostring(c.name))
  end
  local shape = {}
  for i = 2, #b do shape[i - 1] = b[i] end
  return layers.Input{shape = shape, sparse = c.sparse, dtype = c.dtype, name = c.name}
end

-- The tensor {name, node index, tensor index} refers to, once made (nil before).
local function made_tensor(outs, ref, where, lname)
  if type(ref) ~= "table" or type(ref[1]) ~= "string" or math.type(ref[2]) ~= "integer" then
    fail("%s: layer '%s': a bad inbound tensor (expected [layer name, node index, tensor index])",
      where, lname)
  end
  if not outs[ref[1]] then fail("%s: layer '%s' takes '%s', which is not in the model", where, lname, ref[1]) end
  return outs[ref[1]][ref[2] + 1]
end

local function functional_from_config(cfg, where)
  local made, outs, order = {}, {}, {}
  for _, k in ipairs({"input_layers", "output_layers"}) do
    if cfg[k] ~= nil and type(cfg[k]) ~= "table" then
      fail("%s: %s must be a list of [layer name, node index, tensor index]. Received: %s", where, k,
        A.repr(cfg[k]))
    end
  end
  for _, d in ipairs(cfg.layers) do
    local name = d.name or (type(d.config) == "table" and d.config.name)
    if type(name) ~= "string" then fail("%s: a layer without a name in the architecture", where) end
    if outs[name] then fail("%s: two layers are named '%s'", where, name) end
    if d.class_name == "InputLayer" then
      outs[name] = {make_input(d, where)}
    else
      if type(d.inbound_nodes) ~= "table" then fail("%s: layer '%s' has no inbound_nodes", where, name) end
      made[name] = saving.layer_from_config(d, where)
      outs[name] = {}
      order[#order + 1] = {name = name, nodes = d.inbound_nodes}
    end
  end
  -- calls in an order where every input exists (a shared layer's second call may take the
  -- output of a layer listed after it), each layer's calls in their own order
  local left = #order
  while left > 0 do
    local progress = false
    for _, o in ipairs(order) do
      local k = #outs[o.name] + 1
      local node = o.nodes[k]
      while node do
        if type(node) ~= "table" then fail("%s: layer '%s': node %d is not a list", where, o.name, k - 1) end
        local ins = {}
        for i, ref in ipairs(node) do ins[i] = made_tensor(outs, ref, where, o.name) end
        if #ins < #node then break end
        local l = made[o.name]
        outs[o.name][k] = l((#ins > 1 or l.multi_input) and ins or ins[1])
        progress = true
        k = k + 1
        node = o.nodes[k]
      end
    end
    left = 0
    for _, o in ipairs(order) do left = left + (#o.nodes - #outs[o.name]) end
    if left > 0 and not progress then
      for _, o in ipairs(order) do
        local node = o.nodes[#outs[o.name] + 1]
        for _, ref in ipairs(node or {}) do
          if not made_tensor(outs, ref, where, o.name) then
            fail("%s: layer '%s' takes node %s of '%s', which is never made", where, o.name,
              tostring(ref[2]), ref[1])
          end
        end
      end
    end
  end
  local ins, outs_ = {}, {}
  for i, ref in ipairs(cfg.input_layers or {}) do ins[i] = made_tensor(outs, ref, where, "(inputs)") end
  for i, ref in ipairs(cfg.output_layers or {}) do outs_[i] = made_tensor(outs, ref, where, "(outputs)") end
  if #ins == 0 or #outs_ == 0 then fail("%s: the architecture names no inputs or outputs", where) end
  return models.Model{inputs = ins, outputs = #outs_ == 1 and outs_[1] or outs_, name = cfg.name}
end

-- A model from Keras 2's {class_name =, config =} (or the legacy layout), with new weights.
function saving.model_from_architecture(arch, where)
  if type(arch) == "table" and arch.config == nil and type(arch.layers) == "table" then
    arch = from_legacy(arch, where)
  end
  local cfg = type(arch) == "table" and arch.config
  if type(cfg) ~= "table" or type(cfg.layers) ~= "table" or rawget(cfg.layers, 1) == nil then
    fail("%s: bad architecture (no layers)", where)
  end
  for i, d in ipairs(cfg.layers) do
    if type(d) ~= "table" then
      fail("%s: layer %d of the architecture is not an object. Received: %s", where, i, A.repr(d))
    end
  end
  if arch.class_name == "Sequential" then
    local m = models.Sequential{name = cfg.name}
    local first = 1
    if cfg.layers[1].class_name == "InputLayer" then
      m:add(make_input(cfg.layers[1], where))
      first = 2
    end
    for i = first, #cfg.layers do m:add(saving.layer_from_config(cfg.layers[i], where)) end
    return m
  elseif arch.class_name == "Model" then
    return functional_from_config(cfg, where)
  end
  fail("%s: unknown model class '%s'", where, tostring(arch.class_name))
end

-- ------------------------------------------------------------ weights
local function weight_records(m)
  local r = {}
  for _, l in ipairs(m:_weight_layers()) do
    for _, w in ipairs(l:weight_records()) do r[#r + 1] = w end
  end
  return r
end

-- The tensors and metadata of the weights: names "layer/short" (unique in the model).
-- A sharded Embedding's table (or an optimizer state of it), gathered on rank 0 (nil on the
-- other ranks, which write nothing); a tensor on a device (a model compiled for a GPU)
-- copied to the host; any other tensor as it is.
local function whole(t, like)
  like = like or t
  if not like._sharded then return models._on_host(t) end
  return require("keras.distributed")._module().shard_gather(t, like._shard_V, 0)
end

local function weight_entries(m, list, meta)
  local names = {}
  for i, w in ipairs(weight_records(m)) do
    list[#list + 1] = {w.name, whole(w.tensor)}
    names[i] = w.name
  end
  meta.weight_names = json.encode(names)
end

local function decode_meta(meta, key, path, fn)
  local ok, v = pcall(json.decode, meta[key])
  if not ok then fail("%s: %s: metadata '%s': %s", fn, path, key, v) end
  -- every entry keras-lua writes is a JSON object or list
  if type(v) ~= "table" then
    fail("%s: %s: metadata '%s' must be a JSON object or list. Received: %s", fn, path, key, A.repr(v))
  end
  return v
end

local function file_tensors(path, fn)
  local ok, list, meta = pcall(core.load_tensors, path)
  if not ok then
    -- the C message reads "load_model: path: ..."; keep it, but name the caller
    fail("%s", (tostring(list):gsub("^load_model:", fn .. ":")))
  end
  if meta.format ~= FORMAT then
    fail("%s: %s: not a keras-lua model file (format '%s')", fn, path, tostring(meta.format))
  end
  local by = {}
  for _, e in ipairs(list) do by[e[1]] = e[2] end
  return by, meta
end

local function set_weights_from(m, by, meta, path, fn)
  if meta.weight_names == nil then fail("%s: %s: the file holds no weights", fn, path) end
  local names = decode_meta(meta, "weight_names", path, fn)
  local recs = weight_records(m)
  if #names ~= #recs then
    fail("%s: %s: the file holds %d weight(s), the model has %d", fn, path, #names, #recs)
  end
  local vals = {}
  for i, n in ipairs(names) do
    if type(n) ~= "string" then
      fail("%s: %s: metadata 'weight_names' must list strings. Received: entry %d = %s", fn, path, i, A.repr(n))
    end
    vals[i] = by[n]
    if not vals[i] then fail("%s: %s: weight '%s' is listed but missing", fn, path, n) end
    local want = recs[i].tensor
    local wshape = want._sharded and {want._shard_V, want.shape[2]} or want.shape -- the whole table
    local same = #wshape == #vals[i].shape
    for d = 1, #wshape do same = same and wshape[d] == vals[i].shape[d] end
    if not same then
      fail("%s: %s: weight %d ('%s' in the file) has shape %s, the model's '%s' has %s", fn, path, i,
        n, json.encode(vals[i].shape), recs[i].name, json.encode(wshape))
    end
  end
  m:set_weights(vals)
  -- a plan may hold the replaced row_sparse tensors: rebuild plans on next use
  m._infer_plan = nil
end

-- ------------------------------------------------------------ optimizer state
local function optimizer_entries(m, list, meta)
  local p = rawget(m, "_train_plan")
  if not p then return end
  local trainable = {}
  for _, w in ipairs(weight_records(m)) do if w.trainable then trainable[#trainable + 1] = w end end
  local st = {step = p:step_count(), weights = {}}
  for k, w in ipairs(trainable) do
    local n = p:num_states(k)
    st.weights[k] = {name = w.name, n = n}
    for s = 1, n do list[#list + 1] = {"optimizer/" .. w.name .. "/" .. s, whole(p:state(k, s), w.tensor)} end
  end
  meta.optimizer_state = json.encode(st)
end

local function restore_optimizer(m, by, meta, path)
  local st = decode_meta(meta, "optimizer_state", path, "load_model")
  if type(st.weights) ~= "table" then
    fail("load_model: %s: metadata 'optimizer_state' has no list of weights", path)
  end
  for k, w in ipairs(st.weights) do
    if type(w) ~= "table" or type(w.name) ~= "string" or math.type(w.n) ~= "integer" then
      fail("load_model: %s: metadata 'optimizer_state': weight %d must be {name = string, n = integer}. " ..
        "Received: %s", path, k, A.repr(w))
    end
  end
  local p = m:_train()
  local trainable = {}
  for _, w in ipairs(weight_records(m)) do if w.trainable then trainable[#trainable + 1] = w end end
  for k, w in ipairs(st.weights) do
    local n = p:num_states(k)
    if n ~= w.n then
      fail("load_model: %s: optimizer state of weight %d ('%s'): the file holds %d tensors, the optimizer uses %d",
        path, k, w.name, w.n, n)
    end
    for s = 1, n do
      local src = by["optimizer/" .. w.name .. "/" .. s]
      if not src then fail("load_model: %s: missing optimizer state '%s'", path, "optimizer/" .. w.name .. "/" .. s) end
      local own = trainable[k] and trainable[k].tensor
      if own and own._sharded then -- this rank's rows of the whole table's state
        require("keras.distributed")._module().shard_take(src, p:state(k, s))
      else
        src:copyto(p:state(k, s))
      end
    end
  end
  p:set_step_count(st.step)
end

-- compile's metrics as the file keeps them: names, keras.metrics objects by their name (as
-- the log keys); metric functions (and MeanMetricWrapper) cannot be written: they are left
-- out and named in `dropped` (load_model warns; they used to be saved by their log key,
-- 'metric_1', which load_model then refused as an unknown metric).
local function saveable_metrics(m)
  local metrics_mod = require("keras.metrics")
  local dropped = {}
  local function entry(v, i)
    if type(v) == "string" then return v end
    if metrics_mod.is_metric(v) and rawget(v, "metric") then return v.name or v.metric end
    dropped[#dropped + 1] = type(v) == "function" and ("metric_" .. i) or
      (metrics_mod.is_metric(v) and v.name) or ("metric_" .. i)
    return nil
  end
  local function list(l)
    if type(l) ~= "table" or metrics_mod.is_metric(l) then return entry(l, 1) end
    local out = {}
    for i, v in ipairs(l) do out[#out + 1] = entry(v, i) end
    return out
  end
  if rawget(m, "_outputs_cfg") then -- several outputs: a list, per-output lists or a table by name
    local ms = m._outputs_cfg.metrics
    if type(ms) ~= "table" then return {}, dropped end
    if rawlen(ms) > 0 then
      local flat = true
      for _, v in ipairs(ms) do flat = flat and (type(v) ~= "table" or metrics_mod.is_metric(v)) end
      if flat then return list(ms), dropped end
      local out = {}
      for i, v in ipairs(ms) do out[i] = list(v) or {} end
      return out, dropped
    end
    local out = {}
    for k, v in pairs(ms) do out[k] = list(v) end
    return out, dropped
  end
  return list(rawget(m, "_metric_list") or {}), dropped
end

-- ------------------------------------------------------------ public
-- save_model(model, path): architecture, weights, compile config and optimizer state in one
-- atomic, checksummed file.
function saving.save_model(m, path)
  check_model("save_model", m)
  if type(path) ~= "string" then fail("save_model: path must be a string (got %s)", type(path)) end
  local meta = {format = FORMAT, architecture = json.encode(saving.architecture(m))}
  local list = {}
  weight_entries(m, list, meta)
  if m.compiled and m.loss_name ~= "custom" then
    local saved_metrics, dropped = saveable_metrics(m)
    local oc = m.optimizer:get_config()
    local cls = oc.name
    oc.name = nil
    meta.compile = json.encode({optimizer = {class_name = cls, config = oc}, loss = m.loss_name,
      metrics = saved_metrics, dropped_metrics = #dropped > 0 and dropped or nil,
      loss_weights = m:_loss_weights_config(),
      distributed = m._distributed and (m._distributed.deterministic and {deterministic = true} or true) or nil})
    optimizer_entries(m, list, meta)
  end
  -- where training stands, for a resume that reproduces the uninterrupted run: the epochs
  -- done and this process's random generator (the next shuffles' seeds come from it)
  meta.training = json.encode({epoch = rawget(m, "_epoch") or 0, rng_state = core.random_get_state()})
  -- a distributed model's ranks hold the same bits: rank 0 writes the file
  if require("keras.model_dist").writes(m) then core.save_tensors(path, list, meta) end
end

-- load_model(path[, {resume = false, device = keras.cpu()}]) -> model (compiled, with its
-- optimizer state, when it was saved so; with device = keras.gpu(n) its weights, states
-- and steps on that device, as compile{device =}). model.epoch: the epochs the saved model had trained (0 when unknown). With
-- resume = true the random generator is also set to its state at the save, so that
-- model:fit(x, y, {initial_epoch = model.epoch, epochs = E}) draws the shuffles the
-- uninterrupted run drew (and, distributed, at any number of ranks: rank 0's draws decide).
function saving.load_model(path, opts)
  if type(path) ~= "string" then fail("load_model: path must be a string (got %s)", type(path)) end
  opts = A.check_opts("load_model", opts, {resume = true, device = true})
  local by, meta = file_tensors(path, "load_model")
  if meta.architecture == nil then
    fail("load_model: %s: the file holds weights only (saved by save_weights): build the model and call load_weights", path)
  end
  local m = saving.model_from_architecture(decode_meta(meta, "architecture", path, "load_model"),
    "load_model: " .. path)
  set_weights_from(m, by, meta, path, "load_model")
  if meta.compile then
    local c = decode_meta(meta, "compile", path, "load_model")
    local oname = type(c.optimizer) == "table" and c.optimizer.class_name
    local ocls = OPTIMIZER_CLASSES[oname] and optimizers[oname]
    if not ocls then
      fail("load_model: %s: unknown optimizer %s", path, A.repr(type(c.optimizer) == "table" and oname or c.optimizer))
    end
    m:compile{optimizer = ocls(c.optimizer.config), loss = c.loss, metrics = c.metrics,
      loss_weights = c.loss_weights, distributed = c.distributed, device = opts.device}
    if type(c.dropped_metrics) == "table" and #c.dropped_metrics > 0 then
      local names = {}
      for i, n in ipairs(c.dropped_metrics) do names[i] = tostring(n) end
      require("keras.utils").warn(string.format("load_model: %s: the metric function(s) %s were not saved " ..
        "(compile the model again to use them)", path, table.concat(names, ", ")))
    end
    if meta.optimizer_state then restore_optimizer(m, by, meta, path) end
  elseif opts.device ~= nil then -- an uncompiled model: predicts there
    m:_set_device(opts.device, "load_model")
  end
  m.epoch = 0
  if meta.training then
    local t = decode_meta(meta, "training", path, "load_model")
    local e = t.epoch == nil and 0 or A.toint(t.epoch)
    if e == nil or e < 0 then
      fail("load_model: %s: metadata 'training': epoch must be an integer >= 0. Received: epoch=%s", path,
        A.repr(t.epoch))
    end
    if t.rng_state ~= nil and type(t.rng_state) ~= "string" then
      fail("load_model: %s: metadata 'training': rng_state must be a string. Received: rng_state=%s", path,
        A.repr(t.rng_state))
    end
    m.epoch, m._epoch = e, e
    if opts.resume and t.rng_state then
      local ok, err = pcall(core.random_set_state, t.rng_state)
      if not ok then fail("load_model: %s: metadata 'training': %s", path, tostring(err)) end
    end
  end
  return m
end

-- save_weights(model, path): the weights only (any model, Lambda layers included).
function saving.save_weights(m, path)
  if type(path) ~= "string" then fail("save_weights: path must be a string (got %s)", type(path)) end
  check_model("save_weights", m)
  local meta, list = {format = FORMAT}, {}
  weight_entries(m, list, meta)
  if require("keras.model_dist").writes(m) then core.save_tensors(path, list, meta) end
end

-- A safetensors file from elsewhere: each weight read from the tensor named as it is
-- ("<layer>/kernel"), shapes checked, values cast to the weight's dtype; tensors the model
-- does not use are left alone.
local function set_weights_by_name(m, list, info, path)
  local fn = "load_weights"
  local by, names, skipped = {}, {}, {}
  for _, e in ipairs(list) do
    by[e[1]] = e[2]
    names[#names + 1] = "'" .. e[1] .. "'"
  end
  for _, e in ipairs(info.skipped) do skipped[e[1]] = e[2] end
  local vals = {}
  for i, rec in ipairs(weight_records(m)) do
    local t, want = by[rec.name], rec.tensor
    if not t then
      if skipped[rec.name] then
        fail("%s: %s: tensor '%s' has dtype %s (keras-lua reads F32, F64, I64, F16 and BF16)", fn,
          path, rec.name, skipped[rec.name])
      end
      if #names > 8 then names = {table.concat(names, ", ", 1, 8) .. ", ..."} end
      fail("%s: %s: no tensor '%s' in the file (it holds %s)", fn, path, rec.name,
        #names > 0 and table.concat(names, ", ") or "no tensors")
    end
    local same = #want.shape == #t.shape
    for d = 1, #want.shape do same = same and want.shape[d] == t.shape[d] end
    if not same then
      fail("%s: %s: tensor '%s' has shape %s, the model's weight has shape %s", fn, path, rec.name,
        json.encode(t.shape), json.encode(want.shape))
    end
    if t.dtype ~= want.dtype then t = core.array(t, {dtype = want.dtype}) end
    vals[i] = t
  end
  m:set_weights(vals)
  m._infer_plan = nil
end

-- load_weights(model, path): a keras-lua file's weights in model order (as Keras), shapes
-- checked first; any other safetensors file by tensor name (see set_weights_by_name).
function saving.load_weights(m, path)
  check_model("load_weights", m)
  if type(path) ~= "string" then fail("load_weights: path must be a string (got %s)", type(path)) end
  local ok, list, meta, info = pcall(core.load_tensors, path, {foreign = true, fn = "load_weights"})
  if not ok then fail("%s", list) end
  if meta.format ~= FORMAT then return set_weights_by_name(m, list, info, path) end
  local by = {}
  for _, e in ipairs(list) do by[e[1]] = e[2] end
  set_weights_from(m, by, meta, path, "load_weights")
end

-- model:get_config(): the "config" part of Keras 2's model JSON (name, layers, and for a
-- functional model input_layers / output_layers); model:to_json(): the whole of it as text.
function saving.get_config(m)
  return saving.architecture(m, "get_config").config
end

function saving.to_json(m)
  return json.encode(saving.architecture(m, "to_json"))
end

-- keras.models.model_from_config({class_name =, config =}) / model_from_json(text): a new
-- model with freshly initialized weights (as Keras).
function saving.model_from_config(d)
  if type(d) ~= "table" then fail("model_from_config: expected a table {class_name=, config=} (got %s)", type(d)) end
  return saving.model_from_architecture(d, "model_from_config")
end

function saving.model_from_json(s)
  if type(s) ~= "string" then fail("model_from_json: expected a JSON string (got %s)", type(s)) end
  local ok, d = pcall(json.decode, s)
  if not ok then fail("model_from_json: %s", d) end
  return saving.model_from_architecture(d, "model_from_json")
end

-- ------------------------------------------------------------ wiring
local Model = models.Model_class
if Model then
  Model.save = Model.save or function(self, path) return saving.save_model(self, path) end
  Model.save_weights = Model.save_weights or function(self, path) return saving.save_weights(self, path) end
  Model.load_weights = Model.load_weights or function(self, path) return saving.load_weights(self, path) end
  Model.get_config = Model.get_config or function(self) return saving.get_config(self) end
  Model.to_json = Model.to_json or function(self) return saving.to_json(self) end
end
models.load_model = models.load_model or saving.load_model
models.save_model = models.save_model or saving.save_model
models.model_from_json = models.model_from_json or saving.model_from_json
models.model_from_config = models.model_from_config or saving.model_from_config
require("keras.callbacks_io") -- ModelCheckpoint with Keras filepath templates
require("keras.model_progress") -- evaluate / predict with verbose = 1 or 2 draw the bar

return saving
