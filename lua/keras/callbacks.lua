-- keras/callbacks.lua: keras.callbacks: Callback, History, EarlyStopping,
-- LearningRateScheduler, LambdaCallback, TerminateOnNaN, CSVLogger, ModelCheckpoint, the
-- Keras 2 progress bar and fit's warning when the loss stops being finite.
local callbacks = {}
local core = require("keras.core")
local A = require("keras.argcheck")
local fail, repr = A.fail, A.repr

-- ------------------------------------------------------------ classes
-- class(name, allowed, init): a callable class; instances get Callback's no-op hooks.
local Callback = {}
Callback.__index = Callback
callbacks.Callback = Callback

local hooks = {"on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
  "on_batch_begin", "on_batch_end"}
for _, h in ipairs(hooks) do Callback[h] = function() end end
-- The class name of a callback (for messages).
local function cname(self)
  local mt = getmetatable(self)
  return type(mt) == "table" and rawget(mt, "_name") or "Callback"
end
function Callback:set_model(m)
  if type(m) ~= "table" then
    fail("%s: set_model expects a keras model. Received: model=%s", cname(self), repr(m))
  end
  self.model = m
end
function Callback:set_params(p)
  A.plain_table(cname(self) .. ": set_params", "params", p)
  self.params = p
end

-- The logs argument of a hook: nil (an empty table) or a table.
local function hook_logs(self, hook, logs)
  if logs == nil then return {} end
  if type(logs) ~= "table" or getmetatable(logs) ~= nil then
    fail("%s: %s expects logs to be a table. Received: logs=%s", cname(self), hook, repr(logs))
  end
  return logs
end
callbacks.hook_logs = hook_logs

-- The model a hook acts on (set by fit through set_model), with an optimizer when asked.
local function hook_model(self, hook, need_optimizer)
  local m = rawget(self, "model")
  if type(m) ~= "table" then
    fail("%s: %s needs a model (fit sets it; or call set_model(model) first)", cname(self), hook)
  end
  if need_optimizer and (type(m.optimizer) ~= "table" or type(m.optimizer.get_learning_rate) ~= "function") then
    fail("%s: %s needs a compiled model (the model has no optimizer)", cname(self), hook)
  end
  return m
end

local check_opts = A.check_opts

-- mode = "auto" of EarlyStopping, ModelCheckpoint and ReduceLROnPlateau: "max" for a monitor
-- that grows as the model improves (Keras 2: one holding "acc" or starting with "fmeasure";
-- as tf.keras, one ending in "auc", and, as Keras 3's metric directions, "precision" and
-- "recall"), else "min".
function callbacks._auto_mode(monitor)
  if monitor:find("acc", 1, true) or monitor:find("^fmeasure") or monitor:find("auc$")
    or monitor:find("precision$") or monitor:find("recall$") then
    return "max"
  end
  return "min"
end

local function class(name, parent)
  local cls = setmetatable({}, {__index = parent or Callback})
  cls.__index = cls
  cls._name = name
  callbacks[name] = cls
  return cls
end

-- Callback{on_epoch_end = function(self, epoch, logs) ... end, ...} (or Callback() and set
-- the hooks): a user callback; subclasses via setmetatable(obj, {__index = Callback}).
setmetatable(Callback, {__call = function(_, t)
  t = t or {}
  if type(t) ~= "table" or getmetatable(t) ~= nil then
    fail("Callback: expects a table of hooks (on_epoch_end = function(self, epoch, logs) ...). " ..
      "Received: %s", repr(t))
  end
  for k, v in next, t do
    if type(k) ~= "string" or (Callback[k] == nil and type(v) == "function") then
      fail("Callback: unknown hook %s", repr(k))
    end
    if type(Callback[k]) == "function" and type(v) ~= "function" then
      fail("Callback: %s must be a function. Received: %s=%s", k, k, repr(v))
    end
  end
  return setmetatable(t, Callback)
end})

function callbacks.is_callback(x)
  local mt = getmetatable(x)
  while mt do
    if mt == Callback then return true end
    local up = getmetatable(mt)
    mt = up and up.__index
  end
  return false
end

-- ------------------------------------------------------------ CallbackList (internal)
local CallbackList = {}
CallbackList.__index = CallbackList
callbacks.CallbackList = CallbackList

function CallbackList.new(list)
  return setmetatable({list = list or {}}, CallbackList)
end
function CallbackList:set_model(m) for _, c in ipairs(self.list) do c:set_model(m) end end
function CallbackList:set_params(p) for _, c in ipairs(self.list) do c:set_params(p) end end
for _, h in ipairs(hooks) do
  CallbackList[h] = function(self, ...)
    for _, c in ipairs(self.list) do c[h](c, ...) end
  end
end
-- Whether any callback overrides a batch hook (then fit reports every batch to Lua); a
-- passive one (fit's own LossWatch) takes batches when they come but asks for none.
function CallbackList:wants_batches()
  for _, c in ipairs(self.list) do
    local mt = getmetatable(c)
    local passive = type(mt) == "table" and rawget(mt, "_passive")
    if not passive and (c.on_batch_begin ~= Callback.on_batch_begin or
        c.on_batch_end ~= Callback.on_batch_end) then
      return true
    end
  end
  return false
end

-- ------------------------------------------------------------ History
-- History: h.history.loss[epoch], h.history.val_loss, one list per metric; h.epoch = {1..}.
local History = class("History")
setmetatable(History, {__index = Callback, __call = function(cls)
  return setmetatable({history = {}, epoch = {}}, cls)
end})
function History:on_train_begin() self.epoch = {}; self.history = {} end
function History:on_epoch_end(epoch, logs)
  logs = hook_logs(self, "on_epoch_end", logs)
  self.epoch[#self.epoch + 1] = epoch
  for k, v in next, logs do
    local h = self.history[k]
    if not h then h = {}; self.history[k] = h end
    h[#h + 1] = v
  end
end

-- ------------------------------------------------------------ EarlyStopping
-- EarlyStopping{monitor="val_loss", min_delta=0, patience=0, mode="auto",
--   restore_best_weights=false, baseline=, verbose=0}
local EarlyStopping = class("EarlyStopping")
setmetatable(EarlyStopping, {__index = Callback, __call = function(cls, opts)
  opts = check_opts("EarlyStopping", opts, {monitor = true, min_delta = true, patience = true,
    mode = true, restore_best_weights = true, baseline = true, verbose = true})
  local self = setmetatable({}, cls)
  self.monitor = opts.monitor or "val_loss"
  if type(self.monitor) ~= "string" then
    error("EarlyStopping: monitor must be a string. Received: monitor=" .. tostring(self.monitor), 0)
  end
  self.min_delta = opts.min_delta or 0
  if type(self.min_delta) == "number" then self.min_delta = math.abs(self.min_delta) end
  self.patience = A.toint(opts.patience or 0)
  if self.patience == nil or self.patience < 0 then
    error("EarlyStopping: patience must be an integer >= 0. Received: patience=" ..
      tostring(opts.patience), 0)
  end
  self.mode = opts.mode or "auto"
  if self.mode ~= "auto" and self.mode ~= "min" and self.mode ~= "max" then
    error("EarlyStopping: mode must be 'auto', 'min' or 'max'. Received: mode=" .. tostring(self.mode), 0)
  end
  if self.mode == "auto" then
    self.mode = callbacks._auto_mode(self.monitor)
  end
  self.restore_best_weights = opts.restore_best_weights or false
  self.baseline = opts.baseline
  self.verbose = opts.verbose or 0
  if type(self.verbose) ~= "number" then
    fail("EarlyStopping: verbose must be a number. Received: verbose=%s", repr(self.verbose))
  end
  if type(self.min_delta) ~= "number" then
    fail("EarlyStopping: min_delta must be a number. Received: min_delta=%s", repr(opts.min_delta))
  end
  if self.baseline ~= nil and type(self.baseline) ~= "number" then
    fail("EarlyStopping: baseline must be a number. Received: baseline=%s", repr(self.baseline))
  end
  self:on_train_begin()
  return self
end})

function EarlyStopping:_better(a, b)
  if self.mode == "min" then return a < b - self.min_delta end
  return a > b + self.min_delta
end
function EarlyStopping:on_train_begin()
  self.wait, self.stopped_epoch, self.best_weights = 0, 0, nil
  self.best = self.baseline or (self.mode == "min" and math.huge or -math.huge)
end
function EarlyStopping:on_epoch_end(epoch, logs)
  logs = hook_logs(self, "on_epoch_end", logs)
  local cur = logs[self.monitor]
  if cur == nil then
    require("keras.utils").warn(string.format("EarlyStopping: monitor '%s' is not available (available: %s); " ..
      "skipping", self.monitor, (function()
        local ks = {}
        for k in next, logs do ks[#ks + 1] = tostring(k) end
        table.sort(ks)
        return table.concat(ks, ", ")
      end)()))
    return
  end
  if type(cur) ~= "number" then
    fail("EarlyStopping: on_epoch_end expects logs['%s'] to be a number. Received: %s", self.monitor, repr(cur))
  end
  local model = hook_model(self, "on_epoch_end")
  if self:_better(cur, self.best) then
    self.best, self.wait = cur, 0
    if self.restore_best_weights then self.best_weights = model:get_weights() end
  else
    self.wait = self.wait + 1
    if self.wait >= self.patience then
      self.stopped_epoch = epoch
      model.stop_training = true
      if self.restore_best_weights and self.best_weights then
        model:set_weights(self.best_weights)
      end
    end
  end
end
function EarlyStopping:on_train_end()
  if self.stopped_epoch > 0 and self.verbose > 0 then
    print(string.format("Epoch %d: early stopping", self.stopped_epoch))
  end
end

-- ------------------------------------------------------------ LearningRateScheduler
-- LearningRateScheduler{schedule = function(epoch, lr) return new_lr end, verbose=0}
local LearningRateScheduler = class("LearningRateScheduler")
setmetatable(LearningRateScheduler, {__index = Callback, __call = function(cls, opts)
  if type(opts) == "function" then opts = {schedule = opts} end
  opts = check_opts("LearningRateScheduler", opts, {schedule = true, verbose = true})
  if type(opts.schedule) ~= "function" then
    error("LearningRateScheduler: schedule must be a function(epoch, lr)", 0)
  end
  if opts.verbose ~= nil and type(opts.verbose) ~= "number" then
    fail("LearningRateScheduler: verbose must be a number. Received: verbose=%s", repr(opts.verbose))
  end
  return setmetatable({schedule = opts.schedule, verbose = opts.verbose or 0}, cls)
end})
function LearningRateScheduler:on_epoch_begin(epoch)
  local opt = hook_model(self, "on_epoch_begin", true).optimizer
  local lr = self.schedule(epoch, opt:get_learning_rate())
  if type(lr) ~= "number" then
    error("LearningRateScheduler: schedule must return a number (got " .. type(lr) .. ")", 0)
  end
  opt:set_learning_rate(lr)
  if self.verbose > 0 then
    print(string.format("Epoch %d: LearningRateScheduler setting learning rate to %s.", epoch, lr))
  end
end
function LearningRateScheduler:on_epoch_end(epoch, logs)
  if logs ~= nil then
    hook_logs(self, "on_epoch_end", logs)
    logs.lr = hook_model(self, "on_epoch_end", true).optimizer:get_learning_rate()
  end
end

-- ------------------------------------------------------------ LambdaCallback
-- LambdaCallback{on_epoch_begin=, on_epoch_end=, on_batch_begin=, on_batch_end=,
--   on_train_begin=, on_train_end=}: plain functions (without self), as Keras.
local LambdaCallback = class("LambdaCallback")
setmetatable(LambdaCallback, {__index = Callback, __call = function(cls, opts)
  local allowed = {}
  for _, h in ipairs(hooks) do allowed[h] = true end
  opts = check_opts("LambdaCallback", opts, allowed)
  local self = setmetatable({}, cls)
  for k, f in pairs(opts) do
    if type(f) ~= "function" then error("LambdaCallback: " .. k .. " must be a function", 0) end
    self[k] = function(_, ...) return f(...) end
  end
  return self
end})

-- ------------------------------------------------------------ TerminateOnNaN
local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end
-- "nan", "inf" or "-inf" (string.format("%g") says "-nan" on glibc for some NaNs).
local function nonfinite_str(v)
  if v ~= v then return "nan" end
  return v > 0 and "inf" or "-inf"
end

-- TerminateOnNaN{}: as Keras 2: at the end of a batch whose loss (logs.loss, the epoch's
-- running mean) is NaN or +-inf, prints "Batch N: Invalid loss, terminating training"
-- (N numbered from 1) and sets model.stop_training, so fit ends after that batch.
local TerminateOnNaN = class("TerminateOnNaN")
setmetatable(TerminateOnNaN, {__index = Callback, __call = function(cls, opts)
  check_opts("TerminateOnNaN", opts, {})
  return setmetatable({}, cls)
end})
function TerminateOnNaN:on_batch_end(batch, logs)
  logs = hook_logs(self, "on_batch_end", logs)
  local loss = logs.loss
  if type(loss) == "number" and not finite(loss) then
    print(string.format("Batch %s: Invalid loss, terminating training", tostring(batch)))
    hook_model(self, "on_batch_end").stop_training = true
  end
end

-- ------------------------------------------------------------ LossWatch (internal)
-- LossWatch.new(progbar_logger_or_nil): added by fit. The first time in a training run that
-- the loss (of a batch, when batches are reported, else of an epoch) is NaN or +-inf, writes
-- one line: "keras-lua: warning: loss became nan at epoch E, batch B (the model has
-- diverged; keras.callbacks.TerminateOnNaN{} stops training when this happens)". It goes to
-- the progress output (the ProgbarLogger's stream, on a line of its own) when there is one,
-- else to stderr. Passive: fit does not report batches to Lua because of it.
local LossWatch = {}
LossWatch.__index = LossWatch
LossWatch._passive = true
setmetatable(LossWatch, {__index = Callback})
callbacks._LossWatch = LossWatch
function LossWatch.new(progbar)
  return setmetatable({progbar = progbar, warned = false, epoch = 0}, LossWatch)
end
function LossWatch:set_model() end
function LossWatch:set_params() end
function LossWatch:on_train_begin() self.warned = false end
function LossWatch:on_epoch_begin(epoch) self.epoch = epoch end
function LossWatch:_check(batch, logs)
  local loss = type(logs) == "table" and logs.loss
  if self.warned or type(loss) ~= "number" or finite(loss) then return end
  self.warned = true
  local where = batch and string.format("epoch %s, batch %s", tostring(self.epoch), tostring(batch))
    or string.format("epoch %s", tostring(self.epoch))
  local msg = string.format("keras-lua: warning: loss became %s at %s (the model has diverged; " ..
    "keras.callbacks.TerminateOnNaN{} stops training when this happens)\n", nonfinite_str(loss), where)
  local pb = self.progbar
  local out = pb and (pb.out or io.stdout) or io.stderr
  if pb and pb.bar and pb.bar.dynamic and pb.bar.total_width > 0 then
    msg = "\n" .. msg -- the bar is mid-line: the warning gets its own line, the bar goes on below
    pb.bar.total_width = 0
  end
  out:write(msg)
  out:flush()
end
function LossWatch:on_batch_end(batch, logs) self:_check(batch, logs) end
function LossWatch:on_epoch_end(_, logs) self:_check(nil, logs) end

-- ------------------------------------------------------------ progress bar
-- Progbar: Keras 2's generic_utils.Progbar. target: number of samples; verbose 1: a bar
-- redrawn with \r when dynamic (a terminal), else drawn once when complete; verbose 2:
-- one summary line when complete.
local Progbar = {}
Progbar.__index = Progbar
callbacks.Progbar = Progbar

local tty_cache
-- Whether stdout is a terminal (KERAS_LUA_PROGRESS=tty|plain overrides).
function callbacks.stdout_is_tty()
  local env = os.getenv("KERAS_LUA_PROGRESS")
  if env == "tty" then return true elseif env == "plain" then return false end
  if tty_cache == nil then tty_cache = core.stdout_isatty() end
  return tty_cache
end

-- Progbar.new(target, {verbose=1, width=30, dynamic=, out=io.stdout, clock=core.now})
function Progbar.new(target, opts)
  opts = opts or {}
  local self = setmetatable({target = target, verbose = opts.verbose or 1, width = opts.width or 30,
    out = opts.out or io.stdout, clock = opts.clock or core.now, total_width = 0}, Progbar)
  if opts.dynamic ~= nil then self.dynamic = opts.dynamic else self.dynamic = callbacks.stdout_is_tty() end
  self.start = self.clock()
  return self
end

local function fmt_value(v)
  if not finite(v) then return " " .. nonfinite_str(v) end
  if math.abs(v) > 1e-3 then return string.format(" %.4f", v) end
  return string.format(" %.4e", v)
end

local function eta_str(eta)
  if eta > 3600 then
    return string.format("%d:%02d:%02d", eta // 3600, (eta % 3600) // 60, eta % 60)
  elseif eta > 60 then
    return string.format("%d:%02d", eta // 60, eta % 60)
  end
  return string.format("%ds", math.floor(eta))
end

-- The bar text for current samples: " 320/1000 [=========>....................]".
function Progbar:bar(current)
  if not self.target then return string.format("%7d/Unknown", current) end
  local numdigits = math.floor(math.log(self.target, 10) + 1e-9) + 1
  local s = string.format("%" .. numdigits .. "d/%d [", current, self.target)
  local prog = current / self.target
  local pw = math.floor(self.width * prog)
  if pw > 0 then
    s = s .. string.rep("=", pw - 1) .. (current < self.target and ">" or "=")
  end
  return s .. string.rep(".", self.width - pw) .. "]"
end

-- update(current, values[, finalize]): values a list of {name, value} (running averages);
-- finalize: the last update even though current < target (training stopped mid-epoch).
function Progbar:update(current, values, finalize)
  local now = self.clock()
  local done = finalize == true or (self.target ~= nil and current >= self.target)
  local info
  local eta_tpu = current > 0 and (now - self.start) / current or 0
  -- the time per step (batch) when the steps are known, as Keras prints it; else per unit
  local units = self.steps or current
  local tpu = units > 0 and (now - self.start) / units or 0
  if not done and not self.target then
    info = ""
  elseif not done then
    info = " - ETA: " .. eta_str(eta_tpu * (self.target - current))
  else
    info = string.format(" - %.0fs", now - self.start)
    if self.verbose ~= 2 then -- Keras 2: no per-step time on the one-line-per-epoch form
      if tpu >= 1 or tpu == 0 then info = info .. string.format(" %.0fs/step", tpu)
      elseif tpu >= 1e-3 then info = info .. string.format(" %.0fms/step", tpu * 1e3)
      else info = info .. string.format(" %.0fus/step", tpu * 1e6) end
    end
  end
  for _, kv in ipairs(values or {}) do info = info .. " - " .. kv[1] .. ":" .. fmt_value(kv[2]) end
  if self.verbose == 1 then
    if not self.dynamic and not done then return end
    local bar = self:bar(current)
    local line = bar .. info
    if self.dynamic then
      local pad = self.total_width > #line and string.rep(" ", self.total_width - #line) or ""
      self.out:write("\r", line, pad)
      self.total_width = #line
    else
      self.out:write(line)
    end
    if done then self.out:write("\n") end
    self.out:flush()
  elseif self.verbose == 2 and done then
    self.out:write(info, "\n")
    self.out:flush()
  end
end

-- ProgbarLogger{verbose=1|2}: what fit adds for verbose > 0 ("Epoch 1/10" then the bar).
local ProgbarLogger = class("ProgbarLogger")
setmetatable(ProgbarLogger, {__index = Callback, __call = function(cls, opts)
  opts = check_opts("ProgbarLogger", opts, {verbose = true, out = true, dynamic = true})
  local v = opts.verbose or 1
  if v ~= 1 and v ~= 2 then fail("ProgbarLogger: verbose must be 1 or 2. Received: verbose=%s", repr(v)) end
  local out = opts.out
  if out ~= nil and not (io.type(out) == "file" or (type(out) == "table" and type(out.write) == "function"
      and type(out.flush) == "function")) then
    fail("ProgbarLogger: out must be an open file (or have write and flush). Received: out=%s", repr(out))
  end
  if opts.dynamic ~= nil and type(opts.dynamic) ~= "boolean" then
    fail("ProgbarLogger: dynamic must be a boolean. Received: dynamic=%s", repr(opts.dynamic))
  end
  return setmetatable({verbose = v, out = out, dynamic = opts.dynamic}, cls)
end})
-- params as fit sets them: epochs, samples (nil: unknown) and metrics (the names shown).
function ProgbarLogger:set_params(p)
  A.plain_table("ProgbarLogger: set_params", "params", p)
  if A.toint(p.epochs) == nil then
    fail("ProgbarLogger: set_params expects params.epochs to be an integer. Received: epochs=%s", repr(p.epochs))
  end
  if p.samples ~= nil and (A.toint(p.samples) == nil or p.samples < 0) then
    fail("ProgbarLogger: set_params expects params.samples to be an integer >= 0 or nil. Received: samples=%s",
      repr(p.samples))
  end
  if type(p.metrics) ~= "table" then
    fail("ProgbarLogger: set_params expects params.metrics to be a list of names. Received: metrics=%s",
      repr(p.metrics))
  end
  self.params = p
end
local function progbar_state(self, hook, need_bar)
  if type(rawget(self, "params")) ~= "table" then
    fail("ProgbarLogger: %s needs params (fit sets them; or call set_params first)", hook)
  end
  if need_bar and not self.bar then fail("ProgbarLogger: %s before on_epoch_begin", hook) end
end
function ProgbarLogger:on_epoch_begin(epoch)
  progbar_state(self, "on_epoch_begin")
  if A.toint(epoch) == nil then
    fail("ProgbarLogger: on_epoch_begin expects an integer epoch. Received: epoch=%s", repr(epoch))
  end
  epoch = A.toint(epoch)
  local out = self.out or io.stdout
  out:write(string.format("Epoch %d/%d\n", epoch, self.params.epochs))
  out:flush()
  self.bar = Progbar.new(self.params.samples, {verbose = self.verbose, out = out, dynamic = self.dynamic})
  self.seen, self.steps = 0, 0
end
-- The names shown: loss then the metrics, in compile order.
function ProgbarLogger:_values(logs)
  local vals = {}
  for _, k in ipairs(self.params.metrics) do
    if type(logs[k]) == "number" then vals[#vals + 1] = {tostring(k), logs[k]} end
  end
  return vals
end
function ProgbarLogger:on_batch_end(batch, logs)
  logs = hook_logs(self, "on_batch_end", logs)
  progbar_state(self, "on_batch_end", true)
  local seen, size = logs.seen, logs.size
  seen, size = A.toint(seen) or seen, A.toint(size) or size
  if (seen ~= nil and math.type(seen) ~= "integer") or (size ~= nil and math.type(size) ~= "integer") then
    fail("ProgbarLogger: on_batch_end expects integer logs.seen / logs.size. Received: seen=%s, size=%s",
      repr(seen), repr(size))
  end
  self.seen = seen or (self.seen + (size or 0))
  self.steps = (self.steps or 0) + 1
  if not self.params.samples or self.seen < self.params.samples then
    self.bar:update(self.seen, self:_values(logs))
  end
end
function ProgbarLogger:on_epoch_end(epoch, logs)
  logs = hook_logs(self, "on_epoch_end", logs)
  progbar_state(self, "on_epoch_end", true)
  if not self.params.samples then self.bar.target = self.seen end -- now known
  -- the steps of the epoch: the batches seen, or (batches not reported) from the batch size
  local bs = A.toint(self.params.batch_size)
  self.bar.steps = (self.steps or 0) > 0 and self.steps or
    (bs and bs > 0 and (self.bar.target + bs - 1) // bs) or nil
  local m = rawget(self, "model")
  if type(m) == "table" and m.stop_training == true and self.seen > 0 and self.seen < self.bar.target then
    -- stopped mid-epoch (TerminateOnNaN, a callback): the bar ends where training did, as Keras
    self.bar:update(self.seen, self:_values(logs), true)
    return
  end
  self.bar:update(self.bar.target, self:_values(logs))
end

-- CSVLogger lives in csv_logger.lua; ModelCheckpoint in callbacks_io.lua, which needs model
-- files and is loaded with keras.saving.
require("keras.csv_logger").install(callbacks)
require("keras.callbacks_lr").install(callbacks) -- ReduceLROnPlateau

return callbacks
