-- keras/symbolic.lua: graph nodes behind keras.backend: K.placeholder, node arithmetic,
-- K.func, K.gradients, K.eval, and the recording of eager ops for keras.autograd.
local core = require("keras.core")
local K = require("keras.backend")

local S = {}
local is_tensor = core.is_tensor

-- ------------------------------------------------------------ graph state
-- A graph plus the variable node of each tensor used in it (weak: the graph itself keeps
-- the C tensor alive; the Lua userdata is only the key).
local GraphState = {}
GraphState.__index = GraphState

function S.new_graph()
  return setmetatable({g = core.graph_new(), var_ids = setmetatable({}, {__mode = "k"})},
    GraphState)
end

-- The variable node holding tensor t (created on first use).
function GraphState:var(t, name)
  local id = self.var_ids[t]
  if not id then
    id = self.g:variable(t, true, name or t._name)
    self.var_ids[t] = id
  end
  return id
end

local default_gs
-- The graph that K.placeholder and keras.layers.Input add to (Keras' default graph).
-- A default graph whose handle was closed (its models keep working on their plans'
-- references) is replaced by a fresh one, as after K.clear_session().
function S.default_graph()
  if not default_gs or default_gs.g:is_closed() then default_gs = S.new_graph() end
  return default_gs
end
-- K.clear_session(): later placeholders go to a fresh graph.
function S.clear_session() default_gs = nil end

-- ------------------------------------------------------------ nodes
local Node = {}
local node_methods = {}
S.Node = Node

-- A node: Node's metatable and a graph state (a table merely given Node's metatable is not).
local function is_node(x) return getmetatable(x) == Node and type(rawget(x, "gs")) == "table" end
S.is_node = is_node

local GradNode = {}
S.GradNode = GradNode
local function is_grad(x) return getmetatable(x) == GradNode and type(rawget(x, "gs")) == "table" end

local function not_a_node(fname, n)
  error(string.format("%s: expected a graph node (K.placeholder, keras.layers.Input or an op on " ..
    "them). Received: %s", fname, require("keras.argcheck").repr(n)), 0)
end

local function meta(n)
  if not is_node(n) then not_a_node("node", n) end
  local m = rawget(n, "_meta")
  if not m then
    m = n.gs.g:meta(n.id)
    rawset(n, "_meta", m)
  end
  return m
end
S.meta = meta

Node.__index = function(n, k)
  if k == "shape" or k == "stype" or k == "dtype" or k == "ndim" then return meta(n)[k] end
  return node_methods[k]
end

-- A node of graph state gs; parents: the input nodes (for walking the Keras topology).
function S.new_node(gs, id, parents)
  return setmetatable({gs = gs, id = id, parents = parents or {}}, Node)
end

local function shape_str(shape)
  local p = {}
  for i, d in ipairs(shape) do p[i] = d < 0 and "None" or tostring(d) end
  if #p == 1 then return "(" .. p[1] .. ",)" end
  return "(" .. table.concat(p, ", ") .. ")"
end
S.shape_str = shape_str

Node.__tostring = function(n)
  local m = meta(n)
  return string.format("<Node %d %s %s %s>", n.id, shape_str(m.shape), m.dtype, m.stype)
end

function node_methods.kind(n)
  if not is_node(n) then not_a_node("kind", n) end
  return n.gs.g:kind(n.id)
end

-- ------------------------------------------------------------ recording (autograd)
-- While recording, every eager op also appends a node to the recording's graph: results
-- carry _ag_rec/_ag_id; tensors that were not produced by a recorded op become leaves
-- (variable nodes holding the same C tensor).
local recording = nil
function S.recording() return recording end

function S.begin_record()
  local prev = recording
  recording = {gs = S.new_graph(), leaves = {}, leaf_list = {}}
  return prev
end
function S.end_record(prev) recording = prev end

local function rec_id(rec, x)
  if x._ag_rec == rec then return x._ag_id end
  local id = rec.leaves[x]
  if not id then
    id = rec.gs.g:variable(x, true, nil)
    rec.leaves[x] = id
    rec.leaf_list[#rec.leaf_list + 1] = x
  end
  return id
end

-- Attrs in graph terms: the eager op's "ival" (embedding's input_dim) is "input_dim" there.
local function graph_attrs(attrs)
  if attrs == nil or attrs.ival == nil then return attrs end
  local a = {}
  for k, v in pairs(attrs) do a[k] = v end
  a.input_dim, a.ival = a.ival, nil
  return a
end

local function record_eager(op, inputs, attrs, fname)
  local rec = recording
  local value = core.op(op, inputs, attrs, fname)
  local ids = {}
  for i = 1, #inputs do ids[i] = rec_id(rec, inputs[i]) end
  local id = rec.gs.g:op(op, ids, graph_attrs(attrs))
  value._ag_rec = rec
  value._ag_id = id
  return value
end

-- ------------------------------------------------------------ the symbolic dispatch
-- K._symbolic.apply: called by backend.lua when an input is a node (or, while recording,
-- a tensor). Builds a graph node, or runs and records an eager op.
function S.apply(op, inputs, attrs, fname)
  local gs
  for i = 1, #inputs do
    local x = inputs[i]
    if is_grad(x) then
      error(fname .. ": a gradient from K.gradients can only be evaluated (K.func, K.eval), " ..
        "not used in further ops", 0)
    elseif is_node(x) then
      if gs and x.gs ~= gs then error(fname .. ": inputs belong to different graphs", 0) end
      gs = x.gs
    end
  end
  if not gs then
    if recording then return record_eager(op, inputs, attrs, fname) end
    return core.op(op, inputs, attrs, fname)
  end
  local ids, parents = {}, {}
  for i = 1, #inputs do
    local x = inputs[i]
    if is_node(x) then
      ids[i] = x.id
      parents[#parents + 1] = x
    elseif is_tensor(x) then
      ids[i] = gs:var(x)
    else
      error(string.format("bad argument #%d to '%s' (keras.Tensor or node expected, got %s)",
        i, fname, type(x)), 0)
    end
  end
  return S.new_node(gs, gs.g:op(op, ids, graph_attrs(attrs)), parents)
end

-- Nodes, and while recording every tensor, go through S.apply.
local function routes(x)
  return is_node(x) or is_grad(x) or (recording ~= nil and is_tensor(x))
end

K._symbolic = {is_node = routes, apply = S.apply}

-- ------------------------------------------------------------ arithmetic
local scalar_ops = {
  add = {"add_scalar", "add_scalar"}, subtract = {"add_scalar", "rsub_scalar"},
  multiply = {"mul_scalar", "mul_scalar"}, divide = {"div_scalar", "rdiv_scalar"},
}

-- a <op> b for nodes, tensors and numbers (numbers become the scalar ops).
function S.binop(op, a, b)
  if type(b) == "number" then
    local v = b
    if op == "subtract" then v = -b end
    return K._apply(scalar_ops[op][1], {a}, {scalar = v}, op)
  elseif type(a) == "number" then
    return K._apply(scalar_ops[op][2], {b}, {scalar = a}, op)
  end
  return K._apply(op, {a, b}, nil, op)
end

Node.__add = function(a, b) return S.binop("add", a, b) end
Node.__sub = function(a, b) return S.binop("subtract", a, b) end
Node.__mul = function(a, b) return S.binop("multiply", a, b) end
Node.__div = function(a, b) return S.binop("divide", a, b) end
Node.__unm = function(a) return K._apply("negative", {a}, nil, "negative") end

-- Tensor operators: a node operand, or recording, takes the symbolic path; plain eager
-- arithmetic keeps the C metamethods.
do
  -- The C module may be opened again (busted reloads packages): the metatable is then
  -- shared and its metamethods reset to C functions. Each wrapper remembers the C function
  -- it wraps, so a reload wraps the originals again, never a stale wrapper.
  local mt = core.tensor_mt
  local wrapped = rawget(mt, "_keras_wrapped")
  if not wrapped then
    wrapped = setmetatable({}, {__mode = "k"})
    mt._keras_wrapped = wrapped
  end
  local function wrap(mm, op)
    local orig = wrapped[mt[mm]] or mt[mm]
    local f = function(a, b)
      if recording or is_node(a) or is_node(b) or is_grad(a) or is_grad(b) then
        return S.binop(op, a, b)
      end
      return orig(a, b)
    end
    wrapped[f] = orig
    mt[mm] = f
  end
  wrap("__add", "add")
  wrap("__sub", "subtract")
  wrap("__mul", "multiply")
  wrap("__div", "divide")
  local unm = wrapped[mt.__unm] or mt.__unm
  local f = function(a)
    if recording then return K._apply("negative", {a}, nil, "negative") end
    return unm(a)
  end
  wrapped[f] = unm
  mt.__unm = f
end

-- ------------------------------------------------------------ K additions
local check_opts = K._check_opts
S.check_opts = check_opts

-- K.placeholder{shape=, sparse=false, dtype="float32", name=}: shape includes the batch dim
-- (-1 unknown); sparse=true holds CSR.
function K.placeholder(opts)
  opts = check_opts("placeholder", opts, {shape = true, sparse = true, dtype = true, name = true,
    ndim = true})
  local shape = opts.shape
  if shape == nil and opts.ndim then
    local ndim = type(opts.ndim) == "number" and math.tointeger(opts.ndim)
    if not ndim or ndim < 0 or ndim > 8 then
      error("placeholder: ndim must be an integer in [0, 8]. Received: ndim=" ..
        require("keras.argcheck").repr(opts.ndim), 0)
    end
    shape = {}
    for i = 1, ndim do shape[i] = -1 end
  end
  if type(shape) ~= "table" then
    error("placeholder: shape must be a table of integers (got " .. type(shape) .. ")", 0)
  end
  local gs = S.default_graph()
  local id = gs.g:placeholder{shape = shape, stype = opts.sparse and "csr" or "default",
    dtype = opts.dtype or "float32", name = opts.name}
  local n = S.new_node(gs, id, {})
  n.name = opts.name
  return n
end

function K.is_placeholder(x) return is_node(x) and x:kind() == "placeholder" end
function K.is_keras_tensor(x) return is_node(x) end
K.clear_session = S.clear_session

-- Runs nodes of graph state gs: feeds (placeholder nodes) get args; outs may hold nodes and
-- gradient nodes (all of one loss). Returns fresh tensors (copies of the plan's buffers).
local function build_plan(gs, feeds, outs)
  local feed_ids, out_ids, grads = {}, {}, {}
  for i, f in ipairs(feeds) do
    if not is_node(f) or f.gs ~= gs then
      error("func: inputs must be placeholders of the outputs' graph", 0)
    end
    feed_ids[i] = f.id
  end
  local loss_id
  local weights, stypes = {}, {}
  for i, o in ipairs(outs) do
    if is_grad(o) then
      if loss_id and loss_id ~= o.loss_id then
        error("func: gradients of different losses in one function", 0)
      end
      loss_id = o.loss_id
      weights[#weights + 1] = o.var_id
      stypes[#stypes + 1] = o.grad_stype
      grads[i] = #weights
    else
      out_ids[#out_ids + 1] = o.id
    end
  end
  local p = core.plan_new(gs.g, {feeds = feed_ids, outputs = out_ids, loss = loss_id,
    weights = #weights > 0 and weights or nil, grad_stypes = #weights > 0 and stypes or nil})
  return p, grads, loss_id ~= nil
end

local function run_plan(p, grads, has_loss, outs, args)
  local values = p:forward(args, false)
  local gvals = has_loss and p:backward() or {}
  local res, k = {}, 0
  for i = 1, #outs do
    if grads[i] then
      res[i] = gvals[grads[i]]:copy()
    else
      k = k + 1
      res[i] = values[k]:copy()
    end
  end
  return res
end

local function graph_of(list, fname)
  local gs
  for _, o in ipairs(list) do
    if not (is_node(o) or is_grad(o)) then
      error(fname .. ": outputs must be graph nodes (placeholders, layer outputs, K ops on " ..
        "them, or K.gradients results)", 0)
    end
    if gs and o.gs ~= gs then error(fname .. ": outputs belong to different graphs", 0) end
    gs = o.gs
  end
  return gs
end

-- K.func(inputs, outputs): Keras' K.function. Returns a Lua function of input tensors
-- (in the order of inputs, or one list) giving the output tensor(s).
function K.func(inputs, outputs)
  if is_node(inputs) then inputs = {inputs} end
  if type(inputs) ~= "table" then error("func: inputs must be a list of placeholders", 0) end
  local single = is_node(outputs) or is_grad(outputs)
  local outs = single and {outputs} or outputs
  if type(outs) ~= "table" or #outs == 0 then
    error("func: outputs must be a node or a list of nodes", 0)
  end
  local gs = graph_of(outs, "func")
  local p, grads, has_loss = build_plan(gs, inputs, outs)
  return function(...)
    local args = {...}
    if #args == 1 and type(args[1]) == "table" and not is_tensor(args[1]) then args = args[1] end
    if #args ~= #inputs then
      error(string.format("func: expected %d input tensor(s), got %d", #inputs, #args), 0)
    end
    for i = 1, #args do
      if not is_tensor(args[i]) then
        error(string.format("func: input %d must be a tensor (got %s)", i, type(args[i])), 0)
      end
    end
    local res = run_plan(p, grads, has_loss, outs, args)
    if single then return res[1] end
    return res
  end
end

-- K.to_dense(x): a dense node is returned as is, a sparse node (a CSR placeholder, a
-- row_sparse variable) becomes a cast node; tensors keep the eager behaviour.
local eager_to_dense = K.to_dense
function K.to_dense(x)
  if is_node(x) then
    if x.stype == "default" then return x end
    return S.new_node(x.gs, x.gs.g:cast(x.id, "default"), {x})
  end
  if is_grad(x) then
    error("to_dense: a gradient from K.gradients can only be evaluated (K.func, K.eval)", 0)
  end
  if recording and is_tensor(x) and x.stype ~= "default" then
    -- recorded as a node, so the gradient flows back through the cast
    local rec = recording
    local value = x:tostype("default")
    value._ag_rec = rec
    value._ag_id = rec.gs.g:cast(rec_id(rec, x), "default")
    return value
  end
  return eager_to_dense(x)
end

-- K.eval(x): the value of a node that needs no placeholder (a tensor is returned as is).
local eager_eval = K.eval
function K.eval(x)
  if is_node(x) or is_grad(x) then
    local p, grads, has_loss = build_plan(x.gs, {}, {x})
    return run_plan(p, grads, has_loss, {x}, {})[1]
  end
  return eager_eval(x)
end

-- K.gradients(loss, variables): gradient nodes of loss (summed when not 0-d) with respect
-- to each variable (a tensor used in the graph, e.g. K.variable or a layer weight), to be
-- evaluated with K.func or K.eval. A row_sparse variable gets a row_sparse gradient.
function K.gradients(loss, variables)
  if not is_node(loss) then error("gradients: loss must be a graph node", 0) end
  if is_tensor(variables) or is_node(variables) then variables = {variables} end
  if type(variables) ~= "table" then error("gradients: variables must be a list", 0) end
  local gs = loss.gs
  local lid = loss.id
  local m = meta(loss)
  if m.ndim ~= 0 then lid = gs.g:op("sum", {lid}, {}) end
  local res = {}
  for i, v in ipairs(variables) do
    local vid, st
    if is_tensor(v) then
      vid = gs:var(v)
      st = v._grad_stype or (v.stype == "row_sparse" and "row_sparse" or "default")
    elseif is_node(v) and v:kind() == "variable" then
      vid = v.id
      st = v.stype == "row_sparse" and "row_sparse" or "default"
    elseif is_node(v) and v:kind() == "placeholder" then
      -- the gradient with respect to an input (dense, shaped like the fed tensor)
      if v.gs ~= gs then error(string.format("gradients: variables[%d] is not in the loss's graph", i), 0) end
      if v.dtype == "int64" then
        error(string.format("gradients: variables[%d] is an int64 placeholder; only float inputs have gradients", i), 0)
      end
      vid, st = v.id, "default"
    else
      error(string.format("gradients: variables[%d] must be a tensor, a variable node or a placeholder", i), 0)
    end
    res[i] = setmetatable({gs = gs, loss_id = lid, var_id = vid, grad_stype = st}, GradNode)
  end
  return res
end

GradNode.__index = function(n, k)
  if type(rawget(n, "gs")) ~= "table" then return nil end
  if k == "shape" or k == "dtype" or k == "ndim" then return n.gs.g:meta(n.var_id)[k] end
  if k == "stype" then return n.grad_stype end
end
GradNode.__tostring = function(n) return "<Gradient of node " .. tostring(rawget(n, "var_id")) .. ">" end

return S
