-- keras/initializers.lua: weight initializers (Normal, Uniform, GlorotUniform, Zeros, Ones),
-- by object or by name, drawn from this lua_State's RNG, which keras.random.seed sets.
local core = require("keras.core")

local initializers = {}

local function check_opts(cls, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(cls .. ": options must be a table (got " .. type(opts) .. ")", 0)
  end
  for k in pairs(opts) do
    if not allowed[k] then error(cls .. ": unknown option '" .. tostring(k) .. "'", 0) end
  end
  return opts
end

local function check_number(cls, name, v)
  if type(v) ~= "number" or v ~= v then
    error(string.format("%s: %s must be a number. Received: %s=%s", cls, name, name, tostring(v)), 0)
  end
end

-- An initializer is a callable object: init(shape, dtype) -> new dense tensor.
local Initializer = {}
Initializer.__index = Initializer
Initializer.__call = function(self, shape, dtype) return self:generate(shape, dtype or "float32") end
Initializer.__tostring = function(self) return "<initializer " .. self.name .. ">" end

local function class(name, allowed, ctor, gen)
  local cls = setmetatable({}, {__call = function(_, opts)
    opts = check_opts(name, opts, allowed)
    local o = setmetatable({name = name}, Initializer)
    ctor(o, opts)
    o.generate = gen
    return o
  end})
  initializers[name] = cls
  return cls
end

-- Normal{mean=0, stddev=0.05} (Keras' RandomNormal).
class("Normal", {mean = true, stddev = true, seed = true}, function(o, opts)
  o.mean, o.stddev, o.seed = opts.mean or 0, opts.stddev or 0.05, opts.seed
  check_number("Normal", "mean", o.mean)
  check_number("Normal", "stddev", o.stddev)
  if o.stddev < 0 then
    error("Normal: stddev must be >= 0. Received: stddev=" .. tostring(o.stddev), 0)
  end
end, function(o, shape, dtype)
  return core.random_normal(shape, {mean = o.mean, stddev = o.stddev, dtype = dtype, seed = o.seed})
end)
initializers.RandomNormal = initializers.Normal

-- Uniform{minval=-0.05, maxval=0.05} (Keras' RandomUniform).
class("Uniform", {minval = true, maxval = true, seed = true}, function(o, opts)
  o.minval, o.maxval, o.seed = opts.minval or -0.05, opts.maxval or 0.05, opts.seed
  check_number("Uniform", "minval", o.minval)
  check_number("Uniform", "maxval", o.maxval)
  if o.maxval < o.minval then
    error(string.format("Uniform: maxval must be >= minval. Received: minval=%s, maxval=%s",
      tostring(o.minval), tostring(o.maxval)), 0)
  end
end, function(o, shape, dtype)
  return core.random_uniform(shape, {low = o.minval, high = o.maxval, dtype = dtype, seed = o.seed})
end)
initializers.RandomUniform = initializers.Uniform

-- Keras' fan computation: 2-d (fan_in, fan_out); 1-d both the size; else receptive fields.
local function fans(shape)
  if #shape == 0 then return 1, 1 end
  if #shape == 1 then return shape[1], shape[1] end
  if #shape == 2 then return shape[1], shape[2] end
  local rf = 1
  for i = 1, #shape - 2 do rf = rf * shape[i] end
  return shape[#shape - 1] * rf, shape[#shape] * rf
end
initializers._fans = fans

-- GlorotUniform{}: uniform in [-l, l], l = sqrt(6 / (fan_in + fan_out)).
class("GlorotUniform", {seed = true}, function(o, opts) o.seed = opts.seed end,
  function(o, shape, dtype)
    local fi, fo = fans(shape)
    local l = math.sqrt(6 / math.max(1, fi + fo))
    return core.random_uniform(shape, {low = -l, high = l, dtype = dtype, seed = o.seed})
  end)

class("Zeros", {}, function() end, function(_, shape, dtype) return core.zeros(shape, {dtype = dtype}) end)
class("Ones", {}, function() end, function(_, shape, dtype) return core.ones(shape, {dtype = dtype}) end)

-- Constant{value=0}
class("Constant", {value = true}, function(o, opts)
  o.value = opts.value or 0
  check_number("Constant", "value", o.value)
end, function(o, shape, dtype) return core.full(shape, o.value, {dtype = dtype}) end)

local by_name = {
  normal = "Normal", random_normal = "Normal", uniform = "Uniform", random_uniform = "Uniform",
  glorot_uniform = "GlorotUniform", zeros = "Zeros", zero = "Zeros", ones = "Ones", one = "Ones",
  constant = "Constant",
}

function initializers.is_initializer(x) return getmetatable(x) == Initializer end

-- get(x): an initializer object from a name ("normal", "glorot_uniform", "zeros", ...), an
-- initializer object, or a function(shape, dtype) -> tensor. what names the caller in errors.
function initializers.get(x, what)
  what = what or "initializers"
  if initializers.is_initializer(x) then return x end
  if type(x) == "function" then
    local o = setmetatable({name = "custom"}, Initializer)
    o.generate = function(_, shape, dtype) return x(shape, dtype) end
    return o
  end
  if type(x) == "string" then
    local cls = by_name[x:lower()] or (initializers[x] and x)
    if cls and getmetatable(initializers[cls]) then return initializers[cls]() end
  end
  error(string.format("%s: unknown initializer '%s' (normal, uniform, glorot_uniform, zeros, ones)",
    what, tostring(x)), 0)
end

return initializers
