-- keras/init.lua: the keras module: tensor constructors, devices, and the submodules.
local core = require("keras.core")

local keras = {
  core = core,                -- the C module (internal; use the functions below)
  version = core.version,
  is_tensor = core.is_tensor,
}

-- ------------------------------------------------------------ tensors
keras.array = core.array        -- keras.array(nested_table_or_tensor, {dtype=})
keras.zeros = core.zeros        -- keras.zeros(shape, {dtype=})
keras.ones = core.ones
keras.full = core.full          -- keras.full(shape, value, {dtype=})
keras.range = core.range        -- keras.range(first, last[, step][, {dtype=}]), inclusive

-- Tensor memory and Lua's collector (lua/binding/l_mem.c): a full collection runs when the
-- C heap passes max(floor, 2 x what was live after the last one). The floor is 64 MiB, or
-- KERAS_LUA_GC_THRESHOLD bytes; set_gc_threshold(bytes) sets it (0: off) and returns the old.
keras.set_gc_threshold = core.set_gc_threshold
keras.memory_info = core.memory_info -- {live_bytes=, threshold=, floor=, collections=}

keras.random = {
  seed = core.random_seed,       -- keras.random.seed(n)
  normal = core.random_normal,   -- keras.random.normal(shape, {mean=0, stddev=1, dtype=, seed=})
  uniform = core.random_uniform, -- keras.random.uniform(shape, {low=0, high=1, dtype=, seed=})
  get_state = core.random_get_state, -- the generator's state as a string (model files keep it)
  set_state = core.random_set_state,
}

-- ------------------------------------------------------------ devices
-- A device descriptor: {device_type = "cpu"|"gpu", device_id = n}, printed "cpu(0)".
local Device = {}
Device.__index = Device
Device.__tostring = function(d) return d.device_type .. "(" .. d.device_id .. ")" end
Device.__eq = function(a, b) return a.device_type == b.device_type and a.device_id == b.device_id end

local function is_device(d) return getmetatable(d) == Device end
keras.is_device = is_device

function keras.cpu(n)
  n = n or 0
  if n ~= 0 then error("cpu: only cpu(0) exists (got cpu(" .. tostring(n) .. "))", 0) end
  return setmetatable({device_type = "cpu", device_id = 0}, Device)
end

-- The CUDA module (keras/cuda.so, gpu/l_cuda.c), when this build has one: loaded on the
-- first GPU request (num_gpus, gpu), never at require("keras"), so a CPU-only program does
-- not map the CUDA libraries. nil when absent; an error loading a present module is kept
-- and raised by keras.gpu.
local cuda_state -- nil: not looked for yet; false: absent; else the module
local cuda_load_err
local function cuda_module()
  if cuda_state == nil then
    cuda_state = false
    if package.searchpath("keras.cuda", package.cpath) then
      local ok, m = pcall(require, "keras.cuda")
      if ok then cuda_state = m else cuda_load_err = tostring(m) end
    end
  end
  return cuda_state or nil
end

-- Number of CUDA devices usable: 0 without the CUDA module or without a device.
function keras.num_gpus()
  local m = cuda_module()
  if not m then return 0 end
  return (m.device_count())
end

function keras.gpu(n)
  n = math.tointeger(n or 0) or n -- 0.0 is device 0
  if math.type(n) ~= "integer" or n < 0 then
    error("gpu: device id must be an integer >= 0 (got " .. tostring(n) .. ")", 0)
  end
  local m = cuda_module()
  if not m then
    if cuda_load_err then
      error("gpu: the CUDA module keras.cuda failed to load: " .. cuda_load_err, 0)
    end
    error("gpu: CUDA is not available (keras-lua was built without CUDA support, or no GPU " ..
          "is present; keras.num_gpus() == 0)", 0)
  end
  local count, reason = m.device_count()
  if count == 0 then error("gpu: " .. reason, 0) end -- "no CUDA device: <the runtime's reason>"
  if n >= count then
    error(string.format("gpu: device %d out of range (%d GPU(s) present)", n, count), 0)
  end
  return setmetatable({device_type = "gpu", device_id = n}, Device)
end

local default_device = keras.cpu()
function keras.set_default_device(d)
  if not is_device(d) then error("set_default_device: expected a device (keras.cpu() or keras.gpu(n))", 0) end
  default_device = d
end
function keras.default_device() return default_device end

-- t:to(device) is core's (lua/binding/l_tensor.c): t itself when it is there, else a copy
-- on that device (kl_tensor_to). Host fallbacks of ops run for a device (kl/device.h).
keras.device_fallback_count = core.device_fallback_count

-- Constructors take {device = d} (default: keras.default_device()): made on the host, then
-- copied there. The options table is not changed.
local function on_device(make, nopt)
  return function(...)
    local args = table.pack(...)
    local opts = args[nopt]
    local d = default_device
    if type(opts) == "table" and opts.device ~= nil then
      d = opts.device
      if not is_device(d) then
        error(string.format("device: expected a device (keras.cpu() or keras.gpu(n)), got %s",
                            tostring(d)), 2)
      end
      local o = {}
      for k, v in pairs(opts) do if k ~= "device" then o[k] = v end end
      args[nopt] = o
    end
    local t = make(table.unpack(args, 1, args.n))
    if d.device_type ~= "cpu" then t = t:to(d) end
    return t
  end
end
keras.array = on_device(core.array, 2)
keras.zeros = on_device(core.zeros, 2)
keras.ones = on_device(core.ones, 2)
keras.full = on_device(core.full, 3)
-- range(first, last[, step][, opts]): the options table is the last argument
keras.range = function(...)
  local n = select("#", ...)
  local last = n > 0 and select(n, ...) or nil
  if type(last) == "table" then return on_device(core.range, n)(...) end
  return on_device(core.range, n + 1)(...)
end

-- ------------------------------------------------------------ submodules
keras.sparse = require("keras.sparse")
keras.backend = require("keras.backend")

-- The Keras API, each module becoming keras.<name>. saving adds model:save / save_weights /
-- load_weights and keras.models.load_model, so it loads after models.
for _, name in ipairs{"autograd", "initializers", "regularizers", "layers", "optimizers",
                      "losses", "metrics", "callbacks", "models", "data_utils", "utils", "saving",
                      "distributed"} do
  keras[name] = require("keras." .. name)
end
-- Keras' top-level aliases for things defined in the submodules.
keras.Model = keras.models.Model
keras.Sequential = keras.models.Sequential

return keras
