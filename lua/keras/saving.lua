-- keras/saving.lua: model files: save_model/load_model (architecture, weights, compile config,
-- optimizer state) and save_weights/load_weights, over core.save_tensors/load_tensors.
local core = require("keras.core")
local json = require("keras.json")
local layers = require("keras.layers")
local models = require("keras.models")
local optimizers = require("keras.optimizers")

local saving = {}
local FORMAT = "keras-lua-model/1"

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
local config_of = {
  Dense = function(l, c)
    c.units, c.use_bias, c.sparse_weight = l.units, l.use_bias, l.sparse_weight
    c.activation = l.activation_name
  end,
  Embedding = function(l, c)
    c.input_dim, c.output_dim, c.input_length, c.sparse_grad =
      l.vocab, l.output_dim, l.input_length, l.sparse_grad
  end,
  Flatten = function() end,
  GlobalAveragePooling1D = function() end,
  Activation = function(l, c) c.activation = l.activation_name end,
  Dropout = function(l, c) c.rate, c.seed = l.rate, l.seed end,
  Concatenate = function(l, c) c.axis = l.axis end,
}

-- {class_name=, config=} of layer l; Lambda, custom activations and unknown classes raise.
function saving.layer_config(l)
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
      fail("save_model: layer '%s' (%s) cannot be saved with the architecture (use save_weights)",
        l.name, tostring(cls))
    end
    c = {name = l.name, dtype = l.dtype, trainable = l.trainable}
    f(l, c)
  end
  if c.activation == "custom" then
    fail("save_model: layer '%s' uses a custom activation function, which cannot be saved (use save_weights)", l.name)
  end
  return {class_name = cls, config = c}
end

-- Rebuilds a layer from {class_name=, config=}.
function saving.layer_from_config(d, where)
  local cls = type(d) == "table" and layers[d.class_name]
  if not cls or d.class_name == "InputLayer" then
    fail("%s: unknown layer class '%s'", where, tostring(type(d) == "table" and d.class_name))
  end
  local c = {}
  for k, v in pairs(d.config or {}) do if v ~= json.null then c[k] = v end end
  if type(cls.from_config) == "function" then return cls.from_config(c) end
  return cls(c)
end

local function input_config(node, layer)
  local shape = {}
  if type(node.shape) ~= "table" then
    fail("save_model: the input of layer '%s' has no known shape", tostring(layer.name))
  end
  for i = 2, #node.shape do shape[i - 1] = node.shape[i] end
  return {class_name = "InputLayer", config = {name = layer.name, shape = shape,
    sparse = node.stype == "csr", dtype = node.dtype}}
end

-- ------------------------------------------------------------ architecture
local function check_single_call(l)
  if #(l.inbound or {}) > 1 then
    fail("save_model: layer '%s' is called on several inputs (shared layers cannot be saved yet)", l.name)
  end
end

function saving.architecture(m)
  check_model("save_model", m)
  if not m.built then
    fail("save_model: the model '%s' is not built yet (give it an Input or train it first)", m.name)
  end
  local arch = {name = m.name, layers = {}, format = FORMAT}
  local mt = getmetatable(m)
  if rawget(m, "_seq") then
    arch.class_name = "Sequential"
    arch.layers[1] = input_config(m._input, m._input.layer)
    for _, l in ipairs(m._seq) do
      check_single_call(l)
      arch.layers[#arch.layers + 1] = saving.layer_config(l)
    end
    return arch
  end
  arch.class_name = "Model"
  local in_model = {}
  for _, l in ipairs(m._all_layers) do in_model[l] = true end
  for _, l in ipairs(m._all_layers) do
    if l.class_name == "InputLayer" then
      arch.layers[#arch.layers + 1] = input_config(l.output, l)
    else
      check_single_call(l)
      local d = saving.layer_config(l)
      local out = l.inbound[1]
      local ins = out.inputs or {}
      d.inbound = {}
      for i, n in ipairs(ins) do
        local src = rawget(n, "layer")
        if not src or not in_model[src] or src.output ~= n and src.inbound[1] ~= n then
          fail("save_model: input %d of layer '%s' is not a layer output (graphs with K ops " ..
            "between layers cannot be saved; use save_weights)", i, l.name)
        end
        d.inbound[i] = src.name
      end
      d.multi = l.multi_input and true or false
      arch.layers[#arch.layers + 1] = d
    end
  end
  arch.inputs, arch.outputs = {}, {}
  for i, n in ipairs(m.inputs) do arch.inputs[i] = n.layer.name end
  for i, n in ipairs(m.outputs) do
    local src = rawget(n, "layer")
    if not src then fail("save_model: the model output is not a layer output") end
    arch.outputs[i] = src.name
  end
  local _ = mt
  return arch
end

function saving.model_from_architecture(arch, where)
  if type(arch) ~= "table" or type(arch.layers) ~= "table" or #arch.layers == 0 then
    fail("%s: bad architecture (no layers)", where)
  end
  local first = arch.layers[1]
  local function make_input(d)
    local c = d.config or {}
    return layers.Input{shape = c.shape, sparse = c.sparse, dtype = c.dtype, name = c.name}
  end
  if arch.class_name == "Sequential" then
    if first.class_name ~= "InputLayer" then fail("%s: a Sequential architecture starts with its input", where) end
    local m = models.Sequential{name = arch.name}
    m:add(make_input(first))
    for i = 2, #arch.layers do m:add(saving.layer_from_config(arch.layers[i], where)) end
    return m
  elseif arch.class_name == "Model" then
    local out = {}
    for _, d in ipairs(arch.layers) do
      local name = d.config and d.config.name
      if type(name) ~= "string" then fail("%s: a layer without a name in the architecture", where) end
      if d.class_name == "InputLayer" then
        out[name] = make_input(d)
      else
        local ins = {}
        for i, src in ipairs(d.inbound or {}) do
          ins[i] = out[src]
          if not ins[i] then fail("%s: layer '%s' takes '%s', which comes later or is missing", where, name, tostring(src)) end
        end
        local l = saving.layer_from_config(d, where)
        out[name] = l((d.multi or #ins > 1) and ins or ins[1])
      end
    end
    local ins, outs = {}, {}
    for i, n in ipairs(arch.inputs or {}) do ins[i] = out[n] end
    for i, n in ipairs(arch.outputs or {}) do outs[i] = out[n] end
    if #ins == 0 or #outs == 0 then fail("%s: the architecture names no inputs or outputs", where) end
    return models.Model{inputs = ins, outputs = outs, name = arch.name}
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
local function weight_entries(m, list, meta)
  local names = {}
  for i, w in ipairs(weight_records(m)) do
    list[#list + 1] = {w.name, w.tensor}
    names[i] = w.name
  end
  meta.weight_names = json.encode(names)
end

local function decode_meta(meta, key, path, fn)
  local ok, v = pcall(json.decode, meta[key])
  if not ok then fail("%s: %s: metadata '%s': %s", fn, path, key, v) end
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
    vals[i] = by[n]
    if not vals[i] then fail("%s: %s: weight '%s' is listed but missing", fn, path, n) end
    local want = recs[i].tensor
    local same = #want.shape == #vals[i].shape
    for d = 1, #want.shape do same = same and want.shape[d] == vals[i].shape[d] end
    if not same then
      fail("%s: %s: weight %d ('%s' in the file) has shape %s, the model's '%s' has %s", fn, path, i,
        n, json.encode(vals[i].shape), recs[i].name, json.encode(want.shape))
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
    for s = 1, n do list[#list + 1] = {"optimizer/" .. w.name .. "/" .. s, p:state(k, s)} end
  end
  meta.optimizer_state = json.encode(st)
end

local function restore_optimizer(m, by, meta, path)
  local st = decode_meta(meta, "optimizer_state", path, "load_model")
  local p = m:_train()
  for k, w in ipairs(st.weights) do
    local n = p:num_states(k)
    if n ~= w.n then
      fail("load_model: %s: optimizer state of weight %d ('%s'): the file holds %d tensors, the optimizer uses %d",
        path, k, w.name, w.n, n)
    end
    for s = 1, n do
      local src = by["optimizer/" .. w.name .. "/" .. s]
      if not src then fail("load_model: %s: missing optimizer state '%s'", path, "optimizer/" .. w.name .. "/" .. s) end
      src:copyto(p:state(k, s))
    end
  end
  p:set_step_count(st.step)
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
    local oc = m.optimizer:get_config()
    local cls = oc.name
    oc.name = nil
    meta.compile = json.encode({optimizer = {class_name = cls, config = oc}, loss = m.loss_name,
      metrics = m.metric_names or {}})
    optimizer_entries(m, list, meta)
  end
  core.save_tensors(path, list, meta)
end

-- load_model(path) -> model (compiled, with its optimizer state, when it was saved so).
function saving.load_model(path)
  if type(path) ~= "string" then fail("load_model: path must be a string (got %s)", type(path)) end
  local by, meta = file_tensors(path, "load_model")
  if meta.architecture == nil then
    fail("load_model: %s: the file holds weights only (saved by save_weights): build the model and call load_weights", path)
  end
  local m = saving.model_from_architecture(decode_meta(meta, "architecture", path, "load_model"),
    "load_model: " .. path)
  set_weights_from(m, by, meta, path, "load_model")
  if meta.compile then
    local c = decode_meta(meta, "compile", path, "load_model")
    local ocls = optimizers[c.optimizer.class_name]
    if not ocls then fail("load_model: %s: unknown optimizer '%s'", path, tostring(c.optimizer.class_name)) end
    m:compile{optimizer = ocls(c.optimizer.config), loss = c.loss, metrics = c.metrics}
    if meta.optimizer_state then restore_optimizer(m, by, meta, path) end
  end
  return m
end

-- save_weights(model, path): the weights only (any model, Lambda layers included).
function saving.save_weights(m, path)
  if type(path) ~= "string" then fail("save_weights: path must be a string (got %s)", type(path)) end
  check_model("save_weights", m)
  local meta, list = {format = FORMAT}, {}
  weight_entries(m, list, meta)
  core.save_tensors(path, list, meta)
end

-- load_weights(model, path): weights in model order (as Keras), shapes checked first.
function saving.load_weights(m, path)
  check_model("load_weights", m)
  if type(path) ~= "string" then fail("load_weights: path must be a string (got %s)", type(path)) end
  local by, meta = file_tensors(path, "load_weights")
  set_weights_from(m, by, meta, path, "load_weights")
end

-- ------------------------------------------------------------ wiring
local Model = models.Model_class
if Model then
  Model.save = Model.save or function(self, path) return saving.save_model(self, path) end
  Model.save_weights = Model.save_weights or function(self, path) return saving.save_weights(self, path) end
  Model.load_weights = Model.load_weights or function(self, path) return saving.load_weights(self, path) end
end
models.load_model = models.load_model or saving.load_model
models.save_model = models.save_model or saving.save_model
require("keras.callbacks_io") -- ModelCheckpoint with Keras filepath templates

return saving
