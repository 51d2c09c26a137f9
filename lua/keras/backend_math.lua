-- keras/backend_math.lua: the K functions that turn predictions into decisions (argmax,
-- one_hot, to_categorical), bound values (minimum, maximum, clip, pow), and read or write a
-- variable (get_value, set_value). Eager on tensors, symbolic on graph nodes (K._apply).
local core = require("keras.core")
local A = require("keras.argcheck")

local M = {}

local fail, repr = A.fail, A.repr

-- An integer argument (2.0 is 2) in [lo, ...); nil when absent and optional.
local function int_arg(fname, what, v, optional, lo)
  if v == nil and optional then return nil end
  return A.int(fname, what, v, lo)
end

local function num_arg(fname, what, v)
  if type(v) ~= "number" then
    fail("%s: %s must be a number. Received: %s=%s", fname, what, what, repr(v))
  end
  return v
end

-- Installs the functions into K (keras.backend); K._apply is the eager / symbolic dispatch.
function M.install(K)
  local apply = K._apply

  -- argmax(x[, axis = -1]): int64 indices, 1-based (the API's labels); the first largest
  -- value wins, NaN counting as the largest (numpy). Sparse x: the dense fallback (its
  -- implicit zeros are values). No gradient.
  function K.argmax(x, axis)
    axis = int_arg("argmax", "axis", axis, true)
    return apply("argmax", {x, n = 1}, axis and {axis = axis} or nil, "argmax")
  end

  -- one_hot(ids, num_classes): ids (any shape; float or int64, dense) holding 1..C, or 0 for
  -- a zero row (padding, as Embedding's id 0) -> (..., C) float32. Other ids are an error.
  function K.one_hot(ids, num_classes)
    local c = int_arg("one_hot", "num_classes", num_classes, false, 1)
    return apply("one_hot", {ids, n = 1}, {ival = c}, "one_hot")
  end

  -- minimum / maximum(a, b): elementwise, numpy broadcasting; a number operand is a bound
  -- (x vs number keeps x's csr / row_sparse stype when the bound maps 0 to 0).
  local function minmax(op)
    return function(a, b)
      if type(a) == "number" and type(b) ~= "number" then a, b = b, a end
      if type(b) == "number" then return apply(op .. "_scalar", {a, n = 1}, {scalar = b}, op) end
      return apply(op, {a, b, n = 2}, nil, op)
    end
  end
  K.minimum = minmax("minimum")
  K.maximum = minmax("maximum")

  -- clip(x, min_value, max_value): maximum(x, min) then minimum(., max), as Keras 2 (a
  -- max_value below min_value becomes min_value; nil means unbounded). The gradient passes
  -- where min <= x <= max. Keeps a sparse x's stype when min <= 0 <= max.
  function K.clip(x, min_value, max_value)
    if min_value ~= nil then num_arg("clip", "min_value", min_value) end
    if max_value ~= nil then num_arg("clip", "max_value", max_value) end
    if min_value ~= min_value or max_value ~= max_value then
      fail("clip: the bounds must not be NaN. Received: min_value=%s, max_value=%s",
        tostring(min_value), tostring(max_value))
    end
    if min_value and max_value and max_value < min_value then max_value = min_value end
    local r = x
    if min_value then r = apply("maximum_scalar", {r, n = 1}, {scalar = min_value}, "clip") end
    if max_value then r = apply("minimum_scalar", {r, n = 1}, {scalar = max_value}, "clip") end
    if r == x then r = apply("mul_scalar", {x, n = 1}, {scalar = 1}, "clip") end -- a copy
    return r
  end

  -- pow(x, a): x ^ a for a number a (Keras' pow takes a Python number); float x. Keeps a
  -- sparse x's stype when a > 0.
  function K.pow(x, a)
    if type(a) ~= "number" then
      fail("pow: the exponent must be a number. Received: a=%s", core.is_tensor(a) and "a tensor" or repr(a))
    end
    return apply("pow_scalar", {x, n = 1}, {scalar = a}, "pow")
  end

  -- get_value(x): a tensor's value as a new tensor (a copy, same stype), a Lua number for a
  -- 0-d tensor (numpy's scalar), the evaluated value of a graph node (K.eval).
  function K.get_value(x)
    if core.is_tensor(x) then
      if x.ndim == 0 then return x:item() end
      return x:copy()
    end
    if K._symbolic and K._symbolic.is_node(x) then return K.eval(x) end
    fail("get_value: expected a tensor or a graph node. Received: %s", type(x))
  end

  -- set_value(x, value): writes value (a number, which fills x, a nested table or a tensor of
  -- x's shape) into the tensor x in place; x keeps its stype and dtype.
  function K.set_value(x, value)
    if not core.is_tensor(x) then
      fail("set_value: x must be a tensor (a variable or a layer weight). Received: %s", type(x))
    end
    local v
    if type(value) == "number" then
      v = core.full(x.shape, value, {dtype = x.dtype})
    elseif core.is_tensor(value) or type(value) == "table" then
      v = core.array(value, {dtype = x.dtype})
    else
      fail("set_value: value must be a number, a nested table or a tensor. Received: %s", type(value))
    end
    local a, b = v.shape, x.shape
    local same = #a == #b
    for i = 1, #a do same = same and a[i] == b[i] end
    if not same then
      fail("set_value: value has shape (%s), the variable has shape (%s)", table.concat(a, ", "),
        table.concat(b, ", "))
    end
    v:copyto(x)
  end

  core.tensor_methods.argmax = function(t, axis) return K.argmax(t, axis) end
end

-- to_categorical(y, num_classes): class labels 1..C (a tensor or a Lua list; shape (n) or
-- (n, 1)) -> (n, C) float32 one-hot rows. num_classes defaults to the largest label. A label
-- outside 1..C, or not an integer, is an error naming it and its row.
function M.to_categorical(y, num_classes)
  local t
  if core.is_tensor(y) then
    t = y
  elseif type(y) == "table" then
    t = core.array(y, {dtype = "float64"})
  else
    fail("to_categorical: y must be a tensor or a list of labels. Received: %s", type(y))
  end
  if t.stype ~= "default" then t = t:tostype("default") end
  if t.ndim == 2 and t.shape[2] == 1 then t = t:reshape({t.shape[1]}) end
  if t.ndim ~= 1 then
    fail("to_categorical: y must have shape (n) or (n, 1), got (%s)", table.concat(t.shape, ", "))
  end
  local labels = t:totable()
  local c = int_arg("to_categorical", "num_classes", num_classes, true, 1)
  if c == nil then
    c = 0
    for _, v in ipairs(labels) do if v == v and v > c then c = v end end
    c = math.tointeger(c) or math.floor(c)
  end
  if c < 1 then fail("to_categorical: num_classes must be >= 1. Received: num_classes=%d", c) end
  for i, v in ipairs(labels) do
    if math.tointeger(v) == nil then
      fail("to_categorical: label %s is not an integer at row %d", tostring(v), i)
    end
    if v < 1 or v > c then
      fail("to_categorical: label %s out of range [1, %d] at row %d", tostring(math.tointeger(v)), c, i)
    end
  end
  return core.op("one_hot", {t}, {ival = c}, "to_categorical")
end

return M
