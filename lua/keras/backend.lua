-- keras/backend.lua: keras.backend (K): Keras backend ops on tensors, 1-based axes.
local core = require("keras.core")
local A = require("keras.argcheck")

local K = {}

local is_tensor = core.is_tensor

-- ------------------------------------------------------------ dispatch
-- Symbolic support hook: the graph module (written later) installs
-- K._symbolic = {is_node = function(x) ... end, apply = function(op, inputs, attrs, fname) ... end}
-- and every op below then builds a graph node when any input is a node. Eager tensors go
-- straight to the C registry.
K._symbolic = nil

-- The one place every op goes through: op is the registry op name (core.op), inputs a list,
-- attrs in Lua terms (axis 1-based or negative; normalised and range-checked in the binding),
-- fname the Keras name used in messages.
-- inputs.n (as table.pack sets it) counts trailing nils, so K.sum(nil) is reported.
local function apply(op, inputs, attrs, fname)
  fname = fname or op
  local n = inputs.n or #inputs
  local sym = K._symbolic
  for i = 1, n do
    local x = inputs[i]
    if sym and sym.is_node(x) then return sym.apply(op, inputs, attrs, fname) end
    if not is_tensor(x) then
      error(string.format("bad argument #%d to '%s' (keras.Tensor expected, got %s)", i, fname,
        type(x)), 0)
    end
  end
  return core.op(op, inputs, attrs, fname)
end
K._apply = apply

-- axis (nil, or an integer: 2.0 is 2) normalised to a Lua integer.
local function check_axis_arg(fname, axis)
  if axis == nil then return nil end
  local ia = A.toint(axis)
  if ia == nil then
    if type(axis) == "number" then
      error(string.format("%s: axis must be an integer (got %s)", fname, tostring(axis)), 0)
    end
    error(string.format("%s: axis must be an integer (got %s)", fname, type(axis)), 0)
  end
  return ia
end

local function check_bool_arg(fname, name, v)
  if v ~= nil and type(v) ~= "boolean" then
    error(string.format("%s: %s must be a boolean (got %s)", fname, name, type(v)), 0)
  end
end

local function check_tensor(fname, x, argn)
  if not is_tensor(x) and not (K._symbolic and K._symbolic.is_node(x)) then
    error(string.format("bad argument #%d to '%s' (keras.Tensor expected, got %s)",
      argn or 1, fname, type(x)), 0)
  end
end

-- ------------------------------------------------------------ ops

-- dot(a, b[, {transpose_a=, transpose_b=}]): storage-type inference as MXNet
-- (csr . dense -> dense, csr^T . dense -> row_sparse, ...).
function K.dot(a, b, opts)
  local attrs
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("dot: options must be a table (got " .. type(opts) .. ")", 0)
    end
    attrs = {transpose_a = opts.transpose_a, transpose_b = opts.transpose_b}
    for k in pairs(opts) do
      if k ~= "transpose_a" and k ~= "transpose_b" then
        error("dot: unknown option '" .. tostring(k) .. "'", 0)
      end
    end
  end
  return apply("dot", {a, b, n = 2}, attrs, "dot")
end

local function reduction(op)
  return function(x, axis, keepdims)
    axis = check_axis_arg(op, axis)
    check_bool_arg(op, "keepdims", keepdims)
    return apply(op, {x, n = 1}, {axis = axis, keepdims = keepdims or false}, op)
  end
end
-- sum(x[, axis[, keepdims]]): no axis gives a 0-d tensor; sparse inputs give dense results.
K.sum = reduction("sum")
K.mean = reduction("mean")

-- concatenate(list[, axis = -1])
function K.concatenate(list, axis)
  if type(list) ~= "table" or is_tensor(list) then
    error("concatenate: expected a list of tensors (got " .. type(list) .. ")", 0)
  end
  -- rawlen: a __len metamethod cannot make this loop run (nearly) forever
  local n = rawlen(list)
  if n == 0 then error("concatenate: expected at least one tensor", 0) end
  axis = check_axis_arg("concatenate", axis)
  local inputs = {n = n}
  for i = 1, n do inputs[i] = list[i] end
  return apply("concatenate", inputs, {axis = axis or -1}, "concatenate")
end

local function unary(op, kname)
  kname = kname or op
  return function(x) return apply(op, {x, n = 1}, nil, kname) end
end
K.transpose = unary("transpose")
K.square = unary("square")
K.sqrt = unary("sqrt")
K.exp = unary("exp")
K.log = unary("log")
K.relu = unary("relu")
K.sigmoid = unary("sigmoid")
K.tanh = unary("tanh")
K.abs = unary("abs")
K.negative = unary("negative")

-- softmax(x[, axis = -1]): over the last axis only.
function K.softmax(x, axis)
  axis = check_axis_arg("softmax", axis)
  if axis ~= nil and axis ~= -1 then
    check_tensor("softmax", x)
    local nd = K.ndim(x)
    if axis ~= nd then
      error(string.format("softmax: only the last axis is supported (got axis %d of a %d-d tensor)",
        axis, nd), 0)
    end
  end
  return apply("softmax", {x, n = 1}, nil, "softmax")
end

-- ------------------------------------------------------------ introspection

function K.is_sparse(x)
  check_tensor("is_sparse", x)
  return x.stype ~= "default"
end

-- to_dense(x): x itself when dense, else a dense copy.
function K.to_dense(x)
  check_tensor("to_dense", x)
  if x.stype == "default" then return x end
  return x:tostype("default")
end

function K.int_shape(x) check_tensor("int_shape", x); return x.shape end
function K.ndim(x) check_tensor("ndim", x); return x.ndim end
function K.dtype(x) check_tensor("dtype", x); return x.dtype end

-- eval(x): the value of a tensor (eager: x itself).
function K.eval(x)
  check_tensor("eval", x)
  return x
end

function K.floatx() return "float32" end
function K.epsilon() return 1e-7 end

-- ------------------------------------------------------------ values

local function to_tensor(fname, value, dtype, shape)
  if is_tensor(value) then
    return core.array(value, dtype and {dtype = dtype} or nil)
  elseif type(value) == "number" and shape ~= nil then
    return core.full(shape, value, {dtype = dtype})
  elseif type(value) == "number" or type(value) == "table" then
    return core.array(value, {dtype = dtype})
  end
  error(string.format("%s: value must be a number, a nested table or a tensor (got %s)",
    fname, type(value)), 0)
end

-- A table of options (nil gives {}), every key among allowed; fname names the caller.
local function check_opts(fname, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(fname .. ": options must be a table (got " .. type(opts) .. ")", 0)
  end
  for k in pairs(opts) do
    if not allowed[k] then error(fname .. ": unknown option '" .. tostring(k) .. "'", 0) end
  end
  return opts
end
K._check_opts = check_opts -- also serves keras.symbolic

-- constant(value, {dtype=, shape=, name=}): a new tensor (a number with shape is filled).
function K.constant(value, opts)
  opts = check_opts("constant", opts, {dtype = true, shape = true, name = true})
  local t = to_tensor("constant", value, opts.dtype, opts.shape)
  if opts.name then t._name = opts.name end
  return t
end

-- variable(value, {dtype=, name=, stype=}): eager: a copy of value (in stype if given).
function K.variable(value, opts)
  opts = check_opts("variable", opts, {dtype = true, name = true, stype = true})
  local t = to_tensor("variable", value, opts.dtype)
  if opts.stype ~= nil and type(opts.stype) ~= "string" then
    error("variable: stype must be a string (got " .. type(opts.stype) .. ")", 0)
  end
  if opts.stype and opts.stype ~= t.stype then t = t:tostype(opts.stype) end
  if opts.name then t._name = opts.name end
  return t
end

-- argmax, one_hot, minimum, maximum, clip, pow, get_value, set_value (backend_math.lua)
require("keras.backend_math").install(K)

return K
