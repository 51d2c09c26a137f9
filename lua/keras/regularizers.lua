-- keras/regularizers.lua: keras.regularizers: l1(x), l2(x), l1_l2{l1=, l2=} (Keras 2's
-- penalties l1 * sum |w| + l2 * sum w^2), and the penalty nodes layers add to a model's loss.
local core = require("keras.core")
local K = require("keras.backend")
local A = require("keras.argcheck")

local regularizers = {}

local L1L2 = {}
L1L2.__index = L1L2
L1L2.class_name = "L1L2"
L1L2.__tostring = function(r) return string.format("<L1L2 l1=%.9g l2=%.9g>", r.l1, r.l2) end

local function coef(fn, name, v, def)
  if v == nil then return def end
  if type(v) ~= "number" or not (v >= 0) or v == math.huge then
    A.fail("%s: %s must be a finite number >= 0. Received: %s=%s", fn, name, name, A.repr(v))
  end
  return v + 0.0
end

local function new(l1, l2) return setmetatable({l1 = l1, l2 = l2}, L1L2) end

-- l1(x = 0.01), l2(x = 0.01) (also l1{l1 = x}, l2{l2 = x}), l1_l2{l1 = 0.01, l2 = 0.01}.
function regularizers.l1(x)
  if type(x) == "table" then x = A.check_opts("regularizers.l1", x, {l1 = true, l = true}).l1 or x.l end
  return new(coef("regularizers.l1", "l1", x, 0.01), 0.0)
end
function regularizers.l2(x)
  if type(x) == "table" then x = A.check_opts("regularizers.l2", x, {l2 = true, l = true}).l2 or x.l end
  return new(0.0, coef("regularizers.l2", "l2", x, 0.01))
end
function regularizers.l1_l2(o)
  o = A.check_opts("regularizers.l1_l2", o, {l1 = true, l2 = true})
  return new(coef("regularizers.l1_l2", "l1", o.l1, 0.01), coef("regularizers.l1_l2", "l2", o.l2, 0.01))
end
regularizers.L1L2 = function(o)
  o = A.check_opts("regularizers.L1L2", o, {l1 = true, l2 = true})
  return new(coef("regularizers.L1L2", "l1", o.l1, 0.0), coef("regularizers.L1L2", "l2", o.l2, 0.0))
end

function regularizers.is_regularizer(x) return getmetatable(x) == L1L2 end

-- get(x, fn, what): nil, a regularizer, or its name ("l1", "l2", "l1_l2": Keras' defaults).
function regularizers.get(x, fn, what)
  if x == nil or regularizers.is_regularizer(x) then return x end
  if x == "l1" or x == "l2" or x == "l1_l2" then return regularizers[x]() end
  A.fail("%s: %s must be keras.regularizers.l1(x), .l2(x), .l1_l2{l1=, l2=} or one of their names. " ..
    "Received: %s=%s", fn, what, what, A.repr(x))
end

function L1L2:get_config() return {l1 = self.l1, l2 = self.l2} end

-- reg:penalty(w[, rows]): l1 * sum |w| + l2 * sum w^2 as a 0-d tensor or graph node, over
-- every row of w, or with rows (a csr batch or ids, tensor or node) over the rows of w the
-- batch names, each once (the reg_terms op: O(batch), never O(rows of w)).
function L1L2:penalty(w, rows)
  local ins = {w, rows, n = rows == nil and 1 or 2}
  local terms = K._apply("reg_terms", ins, nil, "regularizer")
  local c = core.array({self.l1, self.l2}, {dtype = w.dtype == "float64" and "float64" or "float32"})
  return K.sum(terms * c)
end

-- reg(x): the penalty of a whole tensor, as Keras' regularizer call.
L1L2.__call = function(self, x) return self:penalty(x) end

return regularizers
