-- keras/callbacks_io.lua: ModelCheckpoint (Keras 2): saves the model or its weights at the
-- end of epochs, to a filepath template like "ckpt-{epoch:02d}-{val_loss:.2f}.kl".
local callbacks = require("keras.callbacks")
local A = require("keras.argcheck")

local io_cb = {}
local Callback = callbacks.Callback

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

local function shortest(x)
  if math.type(x) == "integer" then return tostring(x) end
  for _, f in ipairs({"%.15g", "%.16g", "%.17g"}) do
    local s = string.format(f, x)
    if tonumber(s) == x then return s end
  end
  return tostring(x)
end

-- Python's str.format for the fields of a checkpoint path: {key} or {key:spec} with spec
-- [0][width][.precision](d|f|e|g|s), e.g. {epoch:02d}, {val_loss:.4f}. "{{" and "}}" are
-- literal braces. Unknown keys and bad specs raise naming the template.
function io_cb.format_path(template, vars)
  local out = template:gsub("{{", "\1"):gsub("}}", "\2"):gsub("{([^{}:]*):?([^{}]*)}", function(key, spec)
    local v = vars[key]
    if v == nil then
      local keys = {}
      for k in pairs(vars) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      fail("ModelCheckpoint: filepath '%s' uses '{%s}' but the logs have no such key (available: %s)",
        template, key, table.concat(keys, ", "))
    end
    if spec == "" then return type(v) == "number" and shortest(v) or tostring(v) end
    local flags, conv = spec:match("^([0-9]*%.?[0-9]*)([dfeEgGs]?)$")
    if not flags then fail("ModelCheckpoint: bad format spec '%s' in filepath '%s'", spec, template) end
    if conv == "" then conv = math.type(v) == "integer" and "d" or "g" end
    if conv == "d" then
      if math.type(v) ~= "integer" then
        fail("ModelCheckpoint: '{%s:%s}' needs an integer, %s is %s", key, spec, key, tostring(v))
      end
    elseif conv ~= "s" and type(v) ~= "number" then
      fail("ModelCheckpoint: '{%s:%s}' needs a number, %s is %s", key, spec, key, tostring(v))
    end
    return string.format("%" .. flags .. conv, v)
  end)
  return (out:gsub("\1", "{"):gsub("\2", "}"))
end

local ModelCheckpoint = {}
ModelCheckpoint.__index = ModelCheckpoint
ModelCheckpoint._name = "ModelCheckpoint"

local allowed = {filepath = true, monitor = true, save_best_only = true, save_weights_only = true,
  mode = true, verbose = true, period = true}

-- ModelCheckpoint{filepath=, monitor="val_loss", verbose=0, save_best_only=false,
--   save_weights_only=false, mode="auto"|"min"|"max", period=1}
setmetatable(ModelCheckpoint, {__index = Callback, __call = function(cls, opts)
  if type(opts) ~= "table" then fail("ModelCheckpoint: options must be a table (got %s)", type(opts)) end
  for k in pairs(opts) do
    if not allowed[k] then fail("ModelCheckpoint: unknown option '%s'", tostring(k)) end
  end
  if type(opts.filepath) ~= "string" or opts.filepath == "" then
    fail("ModelCheckpoint: filepath must be a non-empty string (got %s)", type(opts.filepath))
  end
  local monitor = opts.monitor or "val_loss"
  if type(monitor) ~= "string" then fail("ModelCheckpoint: monitor must be a string") end
  local mode = opts.mode or "auto"
  if mode ~= "auto" and mode ~= "min" and mode ~= "max" then
    fail("ModelCheckpoint: mode must be 'auto', 'min' or 'max'. Received: mode=%s", tostring(mode))
  end
  if mode == "auto" then
    mode = callbacks._auto_mode(monitor)
  end
  if opts.verbose ~= nil and type(opts.verbose) ~= "number" then
    fail("ModelCheckpoint: verbose must be a number. Received: verbose=%s", tostring(opts.verbose))
  end
  local period = A.toint(opts.period or 1)
  if period == nil or period < 1 then
    fail("ModelCheckpoint: period must be a positive integer. Received: period=%s", tostring(period))
  end
  return setmetatable({filepath = opts.filepath, monitor = monitor, mode = mode,
    save_best_only = opts.save_best_only == true, save_weights_only = opts.save_weights_only == true,
    verbose = opts.verbose or 0, period = period, epochs_since_last_save = 0,
    best = mode == "min" and math.huge or -math.huge, out = io.stdout, err = io.stderr}, cls)
end})

local function fmt5(x) return (string.format("%0.5f", x)) end

function ModelCheckpoint:_save(path)
  local m = self.model
  if type(m) ~= "table" or type(m.save) ~= "function" or type(m.save_weights) ~= "function" then
    fail("ModelCheckpoint: on_epoch_end needs a model (fit sets it; or call set_model(model) first)")
  end
  if self.save_weights_only then m:save_weights(path) else m:save(path) end
end

function ModelCheckpoint:on_epoch_end(epoch, logs)
  logs = callbacks.hook_logs(self, "on_epoch_end", logs)
  if A.toint(epoch) == nil then
    fail("ModelCheckpoint: on_epoch_end expects an integer epoch. Received: epoch=%s", tostring(epoch))
  end
  epoch = A.toint(epoch)
  self.epochs_since_last_save = self.epochs_since_last_save + 1
  if self.epochs_since_last_save < self.period then return end
  self.epochs_since_last_save = 0
  local vars = {epoch = epoch}
  for k, v in pairs(logs) do vars[k] = v end
  local path = io_cb.format_path(self.filepath, vars)
  if not self.save_best_only then
    if self.verbose > 0 then self.out:write(string.format("\nEpoch %05d: saving model to %s\n", epoch, path)) end
    return self:_save(path)
  end
  local cur = logs[self.monitor]
  if type(cur) ~= "number" then
    if not self.warned then
      self.err:write(string.format("ModelCheckpoint: can save best model only with %s available, skipping.\n",
        self.monitor))
      self.warned = true
    end
    return
  end
  local better = (self.mode == "min" and cur < self.best) or (self.mode == "max" and cur > self.best)
  if better then
    if self.verbose > 0 then
      self.out:write(string.format("\nEpoch %05d: %s improved from %s to %s, saving model to %s\n",
        epoch, self.monitor, fmt5(self.best), fmt5(cur), path))
    end
    self.best = cur
    self:_save(path)
  elseif self.verbose > 0 then
    self.out:write(string.format("\nEpoch %05d: %s did not improve from %s\n", epoch, self.monitor,
      fmt5(self.best)))
  end
end

io_cb.ModelCheckpoint = ModelCheckpoint
callbacks.ModelCheckpoint = ModelCheckpoint -- replaces the minimal one of callbacks.lua

return io_cb
