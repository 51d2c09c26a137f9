-- keras/callbacks_lr.lua: the ReduceLROnPlateau callback (Keras 2's), installed into
-- keras.callbacks by require("keras.callbacks_lr").install(callbacks).
local A = require("keras.argcheck")

local M = {}

function M.install(callbacks)
  local Callback = assert(callbacks.Callback, "callbacks_lr.install: callbacks.Callback missing")
  local fail, repr = A.fail, A.repr
  local NAME = "ReduceLROnPlateau"

  local function number(name, v, def, ok, what)
    if v == nil then return def end
    if type(v) ~= "number" or v ~= v or not ok(v) then
      fail("%s: %s must be %s. Received: %s=%s", NAME, name, what, name, repr(v))
    end
    return v
  end

  -- ReduceLROnPlateau{monitor = "val_loss", factor = 0.1, patience = 10, verbose = 0,
  --   mode = "auto", min_delta = 1e-4, cooldown = 0, min_lr = 0}: at the end of an epoch
  -- whose monitored value did not improve on the best by more than min_delta for patience
  -- epochs, lr = max(lr * factor, min_lr) (when lr > min_lr), then cooldown epochs without
  -- counting; logs.lr holds the learning rate of the epoch. As Keras 2.
  local R = setmetatable({}, {__index = Callback})
  R.__index = R
  R._name = NAME
  callbacks[NAME] = R
  setmetatable(R, {__index = Callback, __call = function(cls, opts)
    opts = A.check_opts(NAME, opts, {monitor = true, factor = true, patience = true, verbose = true,
      mode = true, min_delta = true, epsilon = true, cooldown = true, min_lr = true})
    local self = setmetatable({}, cls)
    self.monitor = opts.monitor or "val_loss"
    if type(self.monitor) ~= "string" then
      fail("%s: monitor must be a string. Received: monitor=%s", NAME, repr(self.monitor))
    end
    self.factor = number("factor", opts.factor, 0.1, function(v) return v >= 0 and v < 1 end, "a number in [0, 1)")
    self.patience = A.int(NAME, "patience", opts.patience or 10, 0)
    self.cooldown = A.int(NAME, "cooldown", opts.cooldown or 0, 0)
    self.verbose = A.int(NAME, "verbose", opts.verbose or 0, 0)
    -- epsilon: Keras 2.0's name of min_delta
    self.min_delta = number("min_delta", opts.min_delta or opts.epsilon, 1e-4, function(v) return v >= 0 end,
      "a number >= 0")
    self.min_lr = number("min_lr", opts.min_lr, 0, function(v) return v >= 0 end, "a number >= 0")
    self.mode = opts.mode or "auto"
    if self.mode ~= "auto" and self.mode ~= "min" and self.mode ~= "max" then
      fail("%s: mode must be 'auto', 'min' or 'max'. Received: mode=%s", NAME, repr(self.mode))
    end
    self:_reset()
    return self
  end})

  function R:_reset()
    local min = self.mode == "min" or (self.mode == "auto" and callbacks._auto_mode(self.monitor) == "min")
    self._min = min
    self.best = min and math.huge or -math.huge
    self.cooldown_counter, self.wait = 0, 0
  end

  function R:_improved(cur)
    if self._min then return cur < self.best - self.min_delta end
    return cur > self.best + self.min_delta
  end

  function R:in_cooldown() return self.cooldown_counter > 0 end

  function R:on_train_begin() self:_reset() end

  local function optimizer(self)
    local m = rawget(self, "model")
    local o = type(m) == "table" and m.optimizer
    if type(o) ~= "table" or type(o.get_learning_rate) ~= "function" then
      fail("%s: on_epoch_end needs a compiled model (fit sets it; or call set_model(model) first)", NAME)
    end
    return o
  end

  function R:on_epoch_end(epoch, logs)
    logs = callbacks.hook_logs(self, "on_epoch_end", logs)
    local opt = optimizer(self)
    logs.lr = opt:get_learning_rate()
    local cur = logs[self.monitor]
    if cur == nil then
      local ks = {}
      for k in next, logs do ks[#ks + 1] = tostring(k) end
      table.sort(ks)
      require("keras.utils").warn(string.format("%s conditioned on metric '%s' which is not available. " ..
        "Available metrics are: %s", NAME, self.monitor, table.concat(ks, ",")))
      return
    end
    if type(cur) ~= "number" then
      fail("%s: on_epoch_end expects logs['%s'] to be a number. Received: %s", NAME, self.monitor, repr(cur))
    end
    if self:in_cooldown() then
      self.cooldown_counter = self.cooldown_counter - 1
      self.wait = 0
    end
    if self:_improved(cur) then
      self.best, self.wait = cur, 0
    elseif not self:in_cooldown() then
      self.wait = self.wait + 1
      if self.wait >= self.patience then
        local old = opt:get_learning_rate()
        if old > self.min_lr then
          local new = math.max(old * self.factor, self.min_lr)
          opt:set_learning_rate(new)
          if self.verbose > 0 then
            print(string.format("\nEpoch %05d: %s reducing learning rate to %s.", epoch, NAME, tostring(new)))
          end
          self.cooldown_counter, self.wait = self.cooldown, 0
        end
      end
    end
  end
end

return M
