-- keras/optimizers.lua: keras.optimizers: SGD, Adam, Adagrad, RMSprop, Ftrl over the C
-- optimizers (lazy row_sparse updates), by object or by name.
local core = require("keras.core")

local optimizers = {}

local Optimizer = {}
Optimizer.__index = Optimizer
Optimizer.__tostring = function(o) return tostring(o._c) end
optimizers.Optimizer = Optimizer

local function make(kind, cls)
  optimizers[cls] = setmetatable({}, {__call = function(_, opts)
    if opts ~= nil and type(opts) ~= "table" then
      error(cls .. ": options must be a table (got " .. type(opts) .. ")", 0)
    end
    local o = setmetatable({name = cls, _plans = setmetatable({}, {__mode = "k"})}, Optimizer)
    o._c = core.optimizer_new(kind, opts)
    return o
  end})
end
make("sgd", "SGD")
make("adam", "Adam")
make("adagrad", "Adagrad")
make("rmsprop", "RMSprop")
make("ftrl", "Ftrl")

-- opt:create_state(weight) -> state table (dense zero tensors, also by name: s.momentum).
function Optimizer:create_state(w) return self._c:create_state(w) end
-- opt:update(weight, grad, state[, t]): one step in place (lazy on row_sparse gradients).
function Optimizer:update(w, g, state, t) return self._c:update(w, g, state, t) end
-- opt:get_config() -> {name=, learning_rate=, ...}
function Optimizer:get_config() return self._c:config() end
local function check_key(fn, key)
  if type(key) ~= "string" then
    error(string.format("%s: the option name must be a string (got %s)", fn, type(key)), 0)
  end
end
function Optimizer:get(key) check_key("get", key); return self._c:get(key) end
-- opt:set(key, value): validated; learning_rate also reaches the compiled models using opt.
function Optimizer:set(key, value)
  check_key("set", key)
  self._c:set(key, value)
  if key == "learning_rate" or key == "lr" then
    for p in pairs(self._plans) do p:set_learning_rate(self._c:get("learning_rate")) end
  end
end
function Optimizer:get_learning_rate() return self._c:get("learning_rate") end
function Optimizer:set_learning_rate(lr) self:set("learning_rate", lr) end
-- Internal: a compiled plan that copied this optimizer (models.lua).
function Optimizer:_bind(plan) self._plans[plan] = true end

function optimizers.is_optimizer(x) return getmetatable(x) == Optimizer end

local names = {sgd = "SGD", adam = "Adam", adagrad = "Adagrad", rmsprop = "RMSprop", ftrl = "Ftrl"}

-- get(x): an optimizer object from a name ("sgd", "adam", ...) or an optimizer object.
function optimizers.get(x)
  if optimizers.is_optimizer(x) then return x end
  if type(x) == "string" then
    local cls = names[x:lower()]
    if cls then return optimizers[cls]() end
    error("optimizers: unknown optimizer '" .. x .. "' (sgd, adam, adagrad, rmsprop, ftrl)", 0)
  end
  error("optimizers: expected an optimizer name or object (got " .. type(x) .. ")", 0)
end

return optimizers
