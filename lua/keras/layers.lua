-- keras/layers.lua: keras.layers: Input, Dense, Embedding, Flatten, Activation, Dropout,
-- Concatenate, Lambda (the merges and poolings: layers_merge.lua), with the Keras
-- lifecycle (validate in the constructor, create weights on the first call, build graph ops
-- on every call).
local core = require("keras.core")
local K = require("keras.backend")
local S = require("keras.symbolic")
local initializers = require("keras.initializers")
local regularizers = require("keras.regularizers")
local A = require("keras.argcheck")

local layers = {}
local is_node = S.is_node
local builtin                -- names defined by this file (define refuses them)
local call_arg, build_arg   -- the checks of the public layer:call(inputs) / layer:build(shape)

-- ------------------------------------------------------------ helpers
local fail = A.fail

local repr = A.repr
A.describers[#A.describers + 1] = function(v)
  if is_node(v) then return "a graph node of shape " .. S.shape_str(v.shape) end
  local mt = getmetatable(v)
  if type(mt) == "table" and type(rawget(mt, "class_name")) == "string" and type(rawget(v, "name")) == "string" then
    return "<" .. mt.class_name .. " '" .. v.name .. "'>"
  end
end

local function pos_int(cls, name, v) return A.int(cls, name, v, 1) end

local function opt_bool(cls, name, v, def)
  if v == nil then return def end
  if type(v) ~= "boolean" then
    fail("%s: %s must be a boolean. Received: %s=%s", cls, name, name, repr(v))
  end
  return v
end

local function shape_list(cls, name, v)
  if type(v) == "number" and A.toint(v) then v = {v} end
  if type(v) ~= "table" or core.is_tensor(v) then
    fail("%s: %s must be a table of positive integers. Received: %s=%s", cls, name, name, repr(v))
  end
  local out = {}
  for i = 1, #v do
    out[i] = A.toint(v[i])
    if out[i] == nil or out[i] < 1 then
      fail("%s: %s must be a table of positive integers. Received: %s=%s", cls, name, name, repr(v))
    end
  end
  return out
end

local counters = {}
local function snake(cls)
  -- Keras' _to_snake_case: GlobalAveragePooling1D -> global_average_pooling1d
  local s = cls:gsub("(.)(%u[%l%d]+)", "%1_%2"):gsub("(%l)(%u)", "%1_%2"):lower()
  return s
end
local function unique_name(cls)
  local base = snake(cls)
  counters[base] = (counters[base] or 0) + 1
  return base .. "_" .. counters[base]
end
-- reset_names(): layer names start again at _1 (K.clear_session does this too).
function layers.reset_names() counters = {} end

local activations = {
  relu = K.relu, sigmoid = K.sigmoid, tanh = K.tanh, softmax = K.softmax, exp = K.exp,
  linear = function(x) return x end,
}
layers.activations = activations

local function get_activation(cls, a)
  if a == nil then return nil, "linear" end
  if type(a) == "function" then return a, "custom" end
  if type(a) == "string" and activations[a] then
    return (a ~= "linear") and activations[a] or nil, a
  end
  fail("%s: unknown activation %s (relu, sigmoid, tanh, softmax, exp, linear or a function)",
    cls, repr(a))
end

local function shape_str(s) return S.shape_str(s) end

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- ------------------------------------------------------------ Layer
local Layer = {}
Layer.__index = Layer
layers.Layer = Layer

local common = {name = true, input_shape = true, input_dim = true, dtype = true, trainable = true,
  weights = true}

-- Layer{weights = {...}} (Keras' initial weights): kept until the layer is built, then set
-- as by set_weights; a shape that does not fit names the weight and both shapes.
local function apply_initial_weights(self)
  local list = rawget(self, "_initial_weights")
  if not list then return end
  self._initial_weights = nil
  if rawlen(list) ~= #self._weights then
    fail("%s: weights has %d tensor(s) but layer '%s' has %d weight(s)", self.class_name, rawlen(list),
      self.name, #self._weights)
  end
  for i, w in ipairs(self._weights) do
    local v = rawget(list, i)
    local sh = core.is_tensor(v) and v.shape or nil
    if sh and not same_shape(sh, w.tensor.shape) then
      fail("%s: weights[%d] has shape %s, but weight '%s' of layer '%s' has shape %s", self.class_name, i,
        shape_str(sh), w.short, self.name, shape_str(w.tensor.shape))
    end
  end
  self:set_weights(list)
end

-- Defines a layer class: allowed option keys, init(self, opts) validating them (after the
-- common ones: name, input_shape, input_dim, dtype, trainable). Positional option [1] is
-- passed as opts[1] when allowed[1].
local function define(cls, allowed, init)
  if type(cls) ~= "string" or cls == "" then
    fail("layers.define: name must be a non-empty string. Received: name=%s", repr(cls))
  end
  if type(allowed) ~= "table" or core.is_tensor(allowed) then
    fail("layers.define: allowed must be a table of option names. Received: allowed=%s", repr(allowed))
  end
  if type(init) ~= "function" then
    fail("layers.define: init must be a function(self, opts). Received: init=%s", repr(init))
  end
  local c = {}
  c.__index = c
  c.__call = function(self, x) return self:_call(x) end
  c.__tostring = function(self) return "<" .. cls .. " '" .. self.name .. "'>" end
  c.class_name = cls
  -- call and build, once defined on the class, check their argument first
  setmetatable(c, {__index = Layer, __newindex = function(t, k, f)
    if k == "check_input" and type(f) == "function" then
      local impl = f
      f = function(self, shape, ...)
        build_arg(self, shape, "check_input")
        return impl(self, shape, ...)
      end
    elseif (k == "call" or k == "build") and type(f) == "function" then
      local check = k == "call" and call_arg or build_arg
      local impl = f
      f = function(self, x, ...)
        check(self, x)
        if k == "call" then return impl(self, x, ...) end
        impl(self, x, ...)
        self.built, self.input_shape = true, x
        apply_initial_weights(self)
      end
    end
    rawset(t, k, f)
  end, __call = function(_, opts)
    if opts == nil then opts = {} end
    if type(opts) ~= "table" then
      if allowed[1] then opts = {opts} else fail("%s: options must be a table (got %s)", cls, type(opts)) end
    end
    for k in pairs(opts) do
      if not (allowed[k] or common[k]) then fail("%s: unknown option %s", cls, repr(k)) end
    end
    local self = setmetatable({class_name = cls, built = false, _weights = {}, weights = {},
      inbound = {}}, c)
    if opts.name ~= nil and type(opts.name) ~= "string" then
      fail("%s: name must be a string. Received: name=%s", cls, repr(opts.name))
    end
    self.name = opts.name or unique_name(cls)
    self.dtype = opts.dtype or "float32"
    if self.dtype ~= "float32" and self.dtype ~= "float64" then
      fail("%s: dtype must be 'float32' or 'float64'. Received: dtype=%s", cls, repr(self.dtype))
    end
    self.trainable = opt_bool(cls, "trainable", opts.trainable, true)
    if opts.weights ~= nil then
      if type(opts.weights) ~= "table" or core.is_tensor(opts.weights) or getmetatable(opts.weights) ~= nil then
        fail("%s: weights must be a list of tensors (or nested tables). Received: weights=%s", cls,
          repr(opts.weights))
      end
      self._initial_weights = opts.weights
    end
    if opts.input_shape ~= nil then self.batch_input_shape = shape_list(cls, "input_shape", opts.input_shape) end
    if opts.input_dim ~= nil then self.batch_input_shape = {pos_int(cls, "input_dim", opts.input_dim)} end
    init(self, opts)
    return self
  end})
  if layers[cls] ~= nil and (builtin == nil or builtin[cls]) then
    fail("layers.define: the name '%s' is taken by keras.layers.%s", cls, cls)
  end
  layers[cls] = c
  return c
end
layers.define = define

function layers.is_layer(x)
  local mt = getmetatable(x)
  return type(mt) == "table" and mt.class_name ~= nil and getmetatable(mt) ~= nil and
    rawget(mt, "__call") ~= nil
end

-- A plain shape table: integers >= -1 at keys 1..n, nothing else, no metatable.
local function is_shape(s)
  if type(s) ~= "table" or getmetatable(s) ~= nil then return false end
  local n = 0
  for _, d in next, s do
    if A.toint(d) == nil or d < -1 then return false end
    n = n + 1
  end
  for i = 1, n do if rawget(s, i) == nil then return false end end
  return true
end


-- add_weight(name, shape, initializer, {stype=, grad_stype=, trainable=}) -> tensor. A
-- row_sparse weight stores all its rows (the optimizers' fast path).
function Layer:add_weight(name, shape, init, o)
  if not layers.is_layer(self) then fail("add_weight: expects a layer (layer:add_weight(...)). Received: %s", repr(self)) end
  local fn = self.class_name .. ": add_weight"
  if type(name) ~= "string" then fail("%s: name must be a string. Received: name=%s", fn, repr(name)) end
  local ok = is_shape(shape)
  for i = 1, ok and #shape or 0 do ok = shape[i] >= 0 end
  if not ok then fail("%s: shape must be a table of integers >= 0. Received: shape=%s", fn, repr(shape)) end
  local ishape = {}
  for i = 1, #shape do ishape[i] = A.toint(shape[i]) end -- {2^6, 3}: integers from here on
  shape = ishape
  init = initializers.get(init, fn)
  o = A.check_opts(fn, o, {stype = true, grad_stype = true, trainable = true})
  for _, k in ipairs({"stype", "grad_stype"}) do
    if o[k] ~= nil and o[k] ~= "default" and o[k] ~= "row_sparse" then
      fail("%s: %s must be 'default' or 'row_sparse'. Received: %s=%s", fn, k, k, repr(o[k]))
    end
  end
  local t = init(shape, self.dtype)
  if not core.is_tensor(t) or not same_shape(t.shape, shape) then
    fail("%s: the initializer of '%s' must return a tensor of shape %s. Received: %s", fn, name,
      shape_str(shape), repr(t))
  end
  if t.dtype ~= self.dtype then t = core.array(t, {dtype = self.dtype}) end
  if o.stype == "row_sparse" then
    t = core.row_sparse_array{data = t, indices = core.range(1, shape[1], 1, {dtype = "int64"}),
      shape = shape, dtype = self.dtype}
  end
  t._name = self.name .. "/" .. name
  local trainable = self.trainable and (o.trainable ~= false)
  if trainable then t._grad_stype = o.grad_stype or "default" end
  -- own_trainable: the weight's own flag; trainable: with the layer's, as the last compile saw
  -- it (layers.trainable_at: models.lua)
  local w = {name = t._name, short = name, tensor = t, trainable = trainable,
    own_trainable = o.trainable ~= false, grad_stype = o.grad_stype or "default", nodes = {}}
  self._weights[#self._weights + 1] = w
  self.weights[#self.weights + 1] = t
  return t
end

-- The variable node of weight tensor t in graph state gs (remembered for set_weights).
function Layer:_var(gs, t)
  local id = gs:var(t)
  for _, w in ipairs(self._weights) do
    if w.tensor == t then
      local known = false
      for _, n in ipairs(w.nodes) do if n.gs == gs then known = true end end
      if not known then w.nodes[#w.nodes + 1] = {gs = gs, id = id} end
    end
  end
  return S.new_node(gs, id, {})
end

-- The weight records {name, short, tensor, trainable, grad_stype} (models.lua).
function Layer:weight_records() return self._weights end

-- Whether weight record w trains when the layer's flag is layer_trainable (default: the
-- layer's flag now). Keras: layer.trainable = false set after build takes effect at the next
-- compile, which reads it through here.
function Layer:_weight_trainable(w, layer_trainable)
  if layer_trainable == nil then layer_trainable = self.trainable end
  return layer_trainable ~= false and w.own_trainable ~= false
end

-- A regularization penalty node of this layer (Keras' layer.losses): the model adds those of
-- its layers' calls to the loss. once_key: a penalty over a whole weight is added once per
-- graph (not once per call of a shared layer).
function Layer:_add_loss(node, gs, once_key)
  self._losses = self._losses or {}
  if once_key then
    local done = self._losses_once or setmetatable({}, {__mode = "k"})
    self._losses_once = done
    done[gs] = done[gs] or {}
    if done[gs][once_key] then return end
    done[gs][once_key] = true
  end
  self._losses[#self._losses + 1] = {node = node, out = nil}
end

-- The penalty nodes of the layers' calls whose outputs are among the nodes seen (a set of
-- nodes; nil: every call), each once.
function layers._loss_nodes(list, seen)
  local r, have = {}, {}
  for _, l in ipairs(list) do
    for _, rec in ipairs(rawget(l, "_losses") or {}) do
      if (seen == nil or (rec.out ~= nil and seen[rec.out])) and not have[rec.node] then
        have[rec.node] = true
        r[#r + 1] = rec.node
      end
    end
  end
  return r
end

local HOST = {device_type = "cpu", device_id = 0}

-- Copies on the host (Keras' numpy arrays), wherever the weights live.
function Layer:get_weights()
  local r = {}
  for i, w in ipairs(self._weights) do
    local t = w.tensor
    r[i] = t.device == "cpu(0)" and t:copy() or t:to(HOST)
  end
  return r
end

-- set_weights(list): values (tensors or nested tables) in the order of layer.weights.
function Layer:set_weights(list)
  if type(list) ~= "table" or core.is_tensor(list) then
    fail("%s: set_weights expects a list of tensors (got %s)", self.class_name, type(list))
  end
  if rawlen(list) ~= #self._weights then   -- rawlen: whatever the list's __len says
    fail("%s: set_weights expected %d weight(s), got %d (layer '%s')", self.class_name,
      #self._weights, rawlen(list), self.name)
  end
  local vals = {}
  for i, w in ipairs(self._weights) do
    local v = rawget(list, i)
    if not core.is_tensor(v) then v = core.array(v, {dtype = self.dtype}) end
    if not same_shape(v.shape, w.tensor.shape) then
      fail("%s: weight %d ('%s') has shape %s, got a value of shape %s", self.class_name, i,
        w.name, shape_str(w.tensor.shape), shape_str(v.shape))
    end
    vals[i] = v
  end
  for i, w in ipairs(self._weights) do
    local v, t = vals[i], w.tensor
    if t.stype == "row_sparse" then
      -- copyto would drop zero rows; a new all-rows tensor replaces the old in every graph
      local d = v.stype == "default" and v or v:tostype("default")
      local nt = core.row_sparse_array{data = core.array(d, {dtype = t.dtype}),
        indices = core.range(1, t.shape[1], 1, {dtype = "int64"}), shape = t.shape, dtype = t.dtype}
      nt._name, nt._grad_stype = t._name, t._grad_stype
      for _, n in ipairs(w.nodes) do
        n.gs.g:set_value(n.id, nt)
        n.gs.var_ids[nt] = n.id
      end
      w.tensor = nt
      self.weights[i] = nt
    else
      v:copyto(t)
    end
  end
end

function Layer:count_params()
  local n = 0
  for _, w in ipairs(self._weights) do
    local c = 1
    for _, d in ipairs(w.tensor.shape) do c = c * d end
    n = n + c
  end
  return n
end

-- Checks the input nodes and returns their shapes (a list when several inputs).
local function check_inputs(self, x)
  if is_node(x) then return x.shape end
  if type(x) == "table" and not core.is_tensor(x) and rawget(x, 1) ~= nil then   -- not #x: __len may lie
    local shapes = {}
    for i, n in ipairs(x) do
      if not is_node(n) then
        fail("%s: input %d must be a graph node (keras.layers.Input or a layer output), got %s",
          self.class_name, i, core.is_tensor(n) and "a tensor" or type(n))
      end
      shapes[i] = n.shape
    end
    return shapes
  end
  fail("%s: expected a graph node (keras.layers.Input or a layer output), got %s",
    self.class_name, core.is_tensor(x) and "a tensor" or type(x))
end

-- The argument of a public layer:call(inputs): a graph node, or a list of them for a
-- multi-input layer; the layer's weights must exist (build first).
function call_arg(self, x)
  if not (is_node(x) or (type(x) == "table" and not core.is_tensor(x) and rawget(x, 1) ~= nil)) then
    fail("%s: call expects a graph node (keras.layers.Input or a layer output)%s. Received: inputs=%s",
      self.class_name, self.multi_input and " list" or "", repr(x))
  end
  check_inputs(self, x)
  if self.multi_input and is_node(x) then
    fail("%s: call expects a list of input nodes. Received: inputs=%s", self.class_name, repr(x))
  elseif not self.multi_input and not self.any_input and not is_node(x) then
    fail("%s: call expects one input node. Received: inputs=%s", self.class_name, repr(x))
  end
  if self.build and not self.built then
    fail("%s: layer '%s' is not built: call it on an input node (layer(x)) or build(input_shape) first",
      self.class_name, self.name)
  end
end

-- The argument of a public layer:build(input_shape): a shape (a table of integers, -1 for
-- an unknown dimension), a list of them for a multi-input layer; once only.
function build_arg(self, shape, method)
  method = method or "build"
  local ok = is_shape(shape)
  if self.multi_input then
    ok = type(shape) == "table" and not core.is_tensor(shape) and rawget(shape, 1) ~= nil
    for i = 1, ok and rawlen(shape) or 0 do ok = ok and is_shape(rawget(shape, i)) end
  end
  if not ok then
    fail("%s: %s expects %s (integers, -1 for an unknown dimension). Received: input_shape=%s",
      self.class_name, method, self.multi_input and "a list of input shapes" or "an input shape", repr(shape))
  end
  if self.built and method == "build" then fail("%s: layer '%s' is already built", self.class_name, self.name) end
  if not self.built and method == "check_input" then
    fail("%s: layer '%s' is not built: check_input compares with the shape it was built for", self.class_name,
      self.name)
  end
end

function Layer:_call(x)
  local shapes = check_inputs(self, x)
  if self.multi_input and is_node(x) then
    fail("%s: expected a list of inputs", self.class_name)
  elseif not self.multi_input and not is_node(x) then
    fail("%s: expected one input node, got a list of %d", self.class_name, rawlen(x))
  end
  if not self.built then
    if self.build then self:build(shapes, x) end
    self.built = true
    self.input_shape = shapes
    apply_initial_weights(self)
  elseif self.check_input then
    self:check_input(shapes, x)
  end
  local ok, out = pcall(self.call, self, x)
  if not ok then -- an op's dtype mismatch says which layer met it
    if type(out) == "string" and out:find("dtype mismatch", 1, true) then
      fail("%s: layer '%s': %s", self.class_name, self.name, out)
    end
    error(out, 0)
  end
  if not is_node(out) then
    fail("%s: call must return a graph node (got %s)", self.class_name, type(out))
  end
  if out.layer ~= nil or rawequal(out, x) then
    -- a node already owned (identity): give the layer its own node
    out = K._apply("mul_scalar", {out}, {scalar = 1}, self.class_name)
  end
  out.layer = self
  out.inputs = is_node(x) and {x} or x
  out.parents = out.inputs
  self.inbound[#self.inbound + 1] = out
  self.output = out
  self.input = x
  self.output_shape = out.shape
  -- Keras' masks: a layer with compute_mask (Embedding{mask_zero}, and Dropout and Activation
  -- passing theirs on) marks its output with the ids whose 0s are padding
  local m = self.compute_mask and self:compute_mask(x) or nil
  if m ~= nil then rawset(out, "_keras_mask", m) end
  for _, rec in ipairs(rawget(self, "_losses") or {}) do
    if rec.out == nil then rec.out = out end
  end
  return out
end

-- Keras' incompatible-input message.
local function incompatible(self, axis, want, shape)
  fail("%s: input 1 of layer '%s' is incompatible with the layer: expected axis %d of input " ..
    "shape to have value %d, but received input with shape %s", self.class_name, self.name,
    axis, want, shape_str(shape))
end

-- ------------------------------------------------------------ Input
local InputLayer = define("InputLayer", {shape = true, sparse = true, batch_size = true}, function() end)

-- Input{shape=, sparse=false, dtype="float32", name=}: a placeholder node (batch dim unknown).
function layers.Input(opts)
  if type(opts) ~= "table" then fail("Input: options must be a table (got %s)", type(opts)) end
  for k in pairs(opts) do
    if not ({shape = true, sparse = true, dtype = true, name = true, batch_size = true})[k] then
      fail("Input: unknown option %s", repr(k))
    end
  end
  if opts.shape == nil then fail("Input: shape is required (without the batch dimension)") end
  local shape = shape_list("Input", "shape", opts.shape)
  local sparse = opt_bool("Input", "sparse", opts.sparse, false)
  local dtype = opts.dtype or "float32"
  if dtype ~= "float32" and dtype ~= "float64" and dtype ~= "int64" then
    fail("Input: dtype must be 'float32', 'float64' or 'int64'. Received: dtype=%s", repr(dtype))
  end
  if sparse and #shape ~= 1 then
    fail("Input: a sparse input must be 1-d per sample (CSR rows). Received: shape=%s", repr(shape))
  end
  local layer = InputLayer{name = opts.name or unique_name("input")}
  local full = {opts.batch_size or -1}
  for i, d in ipairs(shape) do full[i + 1] = d end
  local node = K.placeholder{shape = full, sparse = sparse, dtype = dtype, name = layer.name}
  node.layer = layer
  layer.output, layer.built, layer.sparse = node, true, sparse
  layer.output_shape = node.shape
  layer.inbound = {node}
  return node
end

-- ------------------------------------------------------------ Dense
local Dense = define("Dense", {units = true, activation = true, use_bias = true,
  sparse_weight = true, kernel_initializer = true, bias_initializer = true,
  kernel_regularizer = true, bias_regularizer = true}, function(self, o)
  self.kernel_regularizer = regularizers.get(o.kernel_regularizer, "Dense", "kernel_regularizer")
  self.bias_regularizer = regularizers.get(o.bias_regularizer, "Dense", "bias_regularizer")
  self.units = pos_int("Dense", "units", o.units)
  self.activation, self.activation_name = get_activation("Dense", o.activation)
  self.use_bias = opt_bool("Dense", "use_bias", o.use_bias, true)
  self.sparse_weight = opt_bool("Dense", "sparse_weight", o.sparse_weight, false)
  self.kernel_initializer = initializers.get(o.kernel_initializer or "glorot_uniform", "Dense")
  self.bias_initializer = initializers.get(o.bias_initializer or "zeros", "Dense")
end)

function Dense:build(shape)
  local d = shape[#shape]
  if #shape < 2 or d == nil or d < 1 then
    fail("Dense: input of layer '%s' needs a known last dimension, got shape %s", self.name, shape_str(shape))
  end
  self.input_dim = d
  local st = self.sparse_weight and "row_sparse" or "default"
  self.kernel = self:add_weight("kernel", {d, self.units}, self.kernel_initializer,
    {stype = st, grad_stype = st})
  if self.use_bias then self.bias = self:add_weight("bias", {self.units}, self.bias_initializer) end
end

function Dense:check_input(shape)
  if shape[#shape] ~= self.input_dim then incompatible(self, -1, self.input_dim, shape) end
end

-- A regularizer's penalty node for weight node w: over the rows the batch touches when the
-- weight's gradient is row_sparse and rows (csr input or ids) name them, else over all of w.
local function add_penalty(self, reg, w, rows, gs, key)
  if not reg then return end
  if rows then self:_add_loss(reg:penalty(w, rows), gs) else self:_add_loss(reg:penalty(w), gs, key) end
end

function Dense:call(x)
  local gs = x.gs
  local W = self:_var(gs, self._weights[1].tensor)
  local y = K.dot(x, W)
  -- sparse_weight on csr input: the kernel's gradient has the batch's columns as rows
  add_penalty(self, self.kernel_regularizer, W, (self.sparse_weight and x.stype == "csr") and x or nil, gs,
    "kernel")
  if self.use_bias then
    local b = self:_var(gs, self._weights[2].tensor)
    y = K._apply("bias_add", {y, b}, nil, "Dense")
    add_penalty(self, self.bias_regularizer, b, nil, gs, "bias")
  end
  if self.activation then y = self.activation(y) end
  return y
end

-- ------------------------------------------------------------ Embedding
local Embedding = define("Embedding", {input_dim = true, output_dim = true, input_length = true,
  sparse_grad = true, embeddings_initializer = true, embeddings_regularizer = true,
  mask_zero = true, sharded = true}, function(self, o)
  self.embeddings_regularizer = regularizers.get(o.embeddings_regularizer, "Embedding",
    "embeddings_regularizer")
  self.mask_zero = opt_bool("Embedding", "mask_zero", o.mask_zero, false)
  self.vocab = pos_int("Embedding", "input_dim", o.input_dim)
  self.batch_input_shape = nil -- input_dim here is the vocabulary size, not a shape
  if o.input_length ~= nil then
    self.input_length = pos_int("Embedding", "input_length", o.input_length)
    self.batch_input_shape = {self.input_length}
  end
  self.output_dim = pos_int("Embedding", "output_dim", o.output_dim)
  self.sparse_grad = opt_bool("Embedding", "sparse_grad", o.sparse_grad, false)
  self.embeddings_initializer = initializers.get(o.embeddings_initializer or "uniform", "Embedding")
  self.sharded = opt_bool("Embedding", "sharded", o.sharded, false)
  if self.sharded then
    -- rows split over the MPI ranks (distributed/sharded.c): row_sparse gradients, initial
    -- values a function of (seed, row) only, so a row starts the same at any number of ranks
    if not self.sparse_grad then fail("Embedding: sharded = true needs sparse_grad = true") end
    local iname = self.embeddings_initializer.name
    if iname ~= "Uniform" and iname ~= "Normal" and iname ~= "Zeros" then
      fail("Embedding: sharded = true takes the initializers uniform, normal and zeros (made " ..
        "row by row, the same at any number of ranks). Received: %s", iname)
    end
    if self.embeddings_regularizer then
      fail("Embedding: sharded = true does not take an embeddings_regularizer")
    end
  end
  -- pretrained vectors: checked now, the shape being known (set at build)
  local ws = rawget(self, "_initial_weights")
  local w1 = ws and rawget(ws, 1)
  if ws and (rawlen(ws) ~= 1 or w1 == nil) then
    fail("Embedding: weights must be a list of one (input_dim, output_dim) matrix. Received: weights=%s",
      repr(ws))
  end
  if w1 ~= nil then
    if not core.is_tensor(w1) then
      local ok, t = pcall(core.array, w1, {dtype = self.dtype})
      if not ok then fail("Embedding: weights[1] must be a tensor or a nested table of numbers (%s)", t) end
      w1 = t
      ws = {t}
      self._initial_weights = ws
    end
    if w1.ndim ~= 2 or w1.shape[1] ~= self.vocab or w1.shape[2] ~= self.output_dim then
      fail("Embedding: weights[1] has shape %s, but layer '%s' expects (input_dim, output_dim) = (%d, %d)",
        shape_str(w1.shape), self.name, self.vocab, self.output_dim)
    end
  end
end)

local function emb_check(self, shape)
  if #shape ~= 2 then
    fail("Embedding: layer '%s' expects ids of shape (batch, length), got %s", self.name, shape_str(shape))
  end
  if self.input_length and shape[2] ~= self.input_length then incompatible(self, 2, self.input_length, shape) end
end
Embedding.check_input = emb_check

-- A sharded table: this rank's rows r, r + n, ... (0-based, rank r of n; all of them in a
-- world of one), made by the counter-based generator from a seed that is rank 0's draw.
local function build_sharded(self)
  local D = require("keras.distributed")
  local rank, n = D.init()
  local seed = math.floor(core.random_uniform({1}, {dtype = "float64"}):get(1) * 2^52)
  if n > 1 then seed = D._broadcast_number(seed, 0) end
  local V = self.vocab
  local R = n > 1 and (V > rank and (V - rank + n - 1) // n or 0) or V
  local init = rawget(self, "_initial_weights")
  self._initial_weights = nil -- a full table: set below, as set_weights takes it
  local t = self:add_weight("embeddings", {R, self.output_dim}, "zeros", {grad_stype = "row_sparse"})
  local ini = self.embeddings_initializer
  if ini.name == "Uniform" then
    core.fill_rows_counter(t, seed, n > 1 and rank or 0, n > 1 and n or 1, "uniform", ini.minval, ini.maxval)
  elseif ini.name == "Normal" then
    core.fill_rows_counter(t, seed, n > 1 and rank or 0, n > 1 and n or 1, "normal", ini.mean, ini.stddev)
  end
  self.embeddings = t
  if n > 1 then
    self._shard = {V = V, rank = rank, n = n, rows = R}
    t._sharded, t._shard_V = true, V
  end
  if init then self:set_weights(init) end
end

function Embedding:build(shape)
  emb_check(self, shape)
  if self.sharded then return build_sharded(self) end
  self.embeddings = self:add_weight("embeddings", {self.vocab, self.output_dim},
    self.embeddings_initializer, {grad_stype = self.sparse_grad and "row_sparse" or "default"})
end

function Embedding:call(x)
  local W = self:_var(x.gs, self._weights[1].tensor)
  -- sparse_grad: the gradient's rows are the batch's ids, and so are the penalty's
  add_penalty(self, self.embeddings_regularizer, W, self.sparse_grad and x or nil, x.gs, "embeddings")
  local sh = rawget(self, "_shard")
  -- a shard's rows are not the ids' rows: the plan's node hook (sharded.c) checks the ids
  local y = K._apply("embedding", {x, W}, {ival = sh and 0 or self.vocab}, "Embedding")
  if sh then
    self._shard_nodes = self._shard_nodes or {}
    self._shard_nodes[#self._shard_nodes + 1] = {gs = x.gs, id = y.id}
  end
  return y
end

-- A sharded layer's weights as Keras sees them: the full (input_dim, output_dim) table.
local function shard_mpi()
  return require("keras.distributed")._module()
end

function Embedding:get_weights()
  local sh = rawget(self, "_shard")
  if not sh then return Layer.get_weights(self) end
  -- collective: every rank gathers the whole table
  return {shard_mpi().shard_gather(self._weights[1].tensor, sh.V, -1)}
end

function Embedding:set_weights(list)
  local sh = rawget(self, "_shard")
  if not sh then return Layer.set_weights(self, list) end
  if type(list) ~= "table" or core.is_tensor(list) or rawlen(list) ~= 1 then
    fail("Embedding: set_weights expects a list of one (input_dim, output_dim) table (layer '%s')", self.name)
  end
  local v = rawget(list, 1)
  if not core.is_tensor(v) then v = core.array(v, {dtype = self.dtype}) end
  if v.ndim ~= 2 or v.shape[1] ~= sh.V or v.shape[2] ~= self.output_dim then
    fail("Embedding: weight 1 ('%s') has shape (%d, %d), got a value of shape %s", self._weights[1].name,
      sh.V, self.output_dim, shape_str(v.shape))
  end
  if v.stype ~= "default" then v = v:tostype("default") end
  if v.dtype ~= self.dtype then v = v:astype(self.dtype) end
  -- every rank holds the table: each keeps its rows
  shard_mpi().shard_take(v, self._weights[1].tensor)
end

function Embedding:count_params()
  local sh = rawget(self, "_shard")
  if not sh then return Layer.count_params(self) end
  return sh.V * self.output_dim
end

-- mask_zero: the ids themselves are the mask (0 = padding), as Keras' not_equal(ids, 0).
function Embedding:compute_mask(x)
  if self.mask_zero then return x end
end

-- ------------------------------------------------------------ Flatten
local Flatten = define("Flatten", {}, function() end)
function Flatten:call(x)
  local s = x.shape
  if #s <= 2 then return x end
  local n = 1
  for i = 2, #s do
    if s[i] < 0 then fail("Flatten: layer '%s' needs known dimensions, got %s", self.name, shape_str(s)) end
    n = n * s[i]
  end
  if x.stype ~= "default" then fail("Flatten: layer '%s' needs a dense input", self.name) end
  return S.new_node(x.gs, x.gs.g:reshape(x.id, {-1, n}), {x})
end

-- ------------------------------------------------------------ Activation
local Activation = define("Activation", {[1] = true, activation = true}, function(self, o)
  local a = o.activation or o[1]
  if a == nil then fail("Activation: activation is required") end
  self.activation, self.activation_name = get_activation("Activation", a)
end)
function Activation:call(x)
  if self.activation then return self.activation(x) end
  return x
end
-- Layers that pass their input's mask on (Keras' supports_masking).
local function pass_mask(_, x) return type(x) == "table" and rawget(x, "_keras_mask") or nil end
Activation.compute_mask = pass_mask

-- ------------------------------------------------------------ Dropout
local Dropout = define("Dropout", {[1] = true, rate = true, seed = true}, function(self, o)
  local r = o.rate or o[1]
  if type(r) ~= "number" or r < 0 or r >= 1 then
    fail("Dropout: rate must be a number in [0, 1). Received: rate=%s", repr(r))
  end
  self.rate, self.seed = r, o.seed
end)
function Dropout:call(x)
  return S.new_node(x.gs, x.gs.g:dropout(x.id, self.rate, self.seed), {x})
end
Dropout.compute_mask = pass_mask

-- ------------------------------------------------------------ Concatenate
local Concatenate = define("Concatenate", {axis = true}, function(self, o)
  local a = A.toint(o.axis or -1)
  if a == nil or a == 0 then
    fail("Concatenate: axis must be a non-zero integer. Received: axis=%s", repr(o.axis))
  end
  self.axis = a
  self.multi_input = true
end)
function Concatenate:build(shapes)
  if rawlen(shapes) < 2 then
    fail("Concatenate: layer '%s' needs at least 2 inputs, got %d", self.name, rawlen(shapes))
  end
end
function Concatenate:call(x)
  if rawlen(x) < 2 then
    fail("Concatenate: layer '%s' needs at least 2 inputs, got %d", self.name, rawlen(x))
  end
  return K.concatenate(x, self.axis)
end

-- ------------------------------------------------------------ Lambda
local Lambda = define("Lambda", {[1] = true, fn = true, output_shape = true}, function(self, o)
  local f = o.fn or o[1]
  if type(f) ~= "function" then fail("Lambda: fn must be a function. Received: fn=%s", repr(f)) end
  self.fn = f
end)
Lambda.any_input = true
function Lambda:_call(x)
  if type(x) == "table" and not is_node(x) then self.multi_input = true end
  return Layer._call(self, x)
end
function Lambda:call(x) return self.fn(x) end

-- Add, Subtract, Multiply, Dot, GlobalAveragePooling1D, GlobalMaxPooling1D
require("keras.layers_merge")(layers, {opt_bool = opt_bool})

builtin = {}
for k in pairs(layers) do builtin[k] = true end

return layers
