-- spec/callbacks_spec.lua: callback order, History, EarlyStopping, LearningRateScheduler,
-- LambdaCallback and the Keras 2 progress bar.
local keras = require("keras")
local cb = keras.callbacks
local L = keras.layers

local function toy(lr)
  keras.random.seed(1)
  local m = keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 1, kernel_initializer = "zeros"}}
  m:compile{optimizer = keras.optimizers.SGD{learning_rate = lr or 0.1}, loss = "mse"}
  local x = keras.random.normal({40, 3})
  local y = keras.backend.dot(x, keras.array{{1}, {-2}, {0.5}})
  return m, x, y
end

describe("callback order", function()
  it("calls train, epoch and batch hooks in Keras order, epochs from 1", function()
    local m, x, y = toy()
    local log = {}
    local c = cb.Callback{
      on_train_begin = function() log[#log + 1] = "train_begin" end,
      on_epoch_begin = function(_, e) log[#log + 1] = "epoch_begin " .. e end,
      on_batch_begin = function(_, b) log[#log + 1] = "batch_begin " .. b end,
      on_batch_end = function(_, b, logs) log[#log + 1] = "batch_end " .. b .. " " .. logs.size end,
      on_epoch_end = function(_, e, logs) log[#log + 1] = "epoch_end " .. e .. (logs.loss and " loss" or "") end,
      on_train_end = function() log[#log + 1] = "train_end" end,
    }
    m:fit(x, y, {batch_size = 16, epochs = 2, verbose = 0, shuffle = false, callbacks = {c}})
    assert.are.same({"train_begin",
      "epoch_begin 1", "batch_begin 1", "batch_end 1 16", "batch_begin 2", "batch_end 2 16",
      "batch_begin 3", "batch_end 3 8", "epoch_end 1 loss",
      "epoch_begin 2", "batch_begin 1", "batch_end 1 16", "batch_begin 2", "batch_end 2 16",
      "batch_begin 3", "batch_end 3 8", "epoch_end 2 loss", "train_end"}, log)
  end)
  it("LambdaCallback passes plain functions", function()
    local m, x, y = toy()
    local epochs = {}
    m:fit(x, y, {epochs = 3, verbose = 0, callbacks = {cb.LambdaCallback{
      on_epoch_end = function(e, logs) epochs[#epochs + 1] = {e, logs.loss} end}}})
    assert.are.equal(3, #epochs)
    assert.are.equal(3, epochs[3][1])
    assert.is_true(epochs[3][2] < epochs[1][2])
  end)
end)

describe("History", function()
  it("records loss, metrics and validation per epoch", function()
    local m, x, y = toy()
    m:compile{optimizer = "sgd", loss = "mse", metrics = {"mae"}}
    local h = m:fit(x, y, {epochs = 4, verbose = 0, validation_split = 0.25})
    assert.are.same({1, 2, 3, 4}, h.epoch)
    for _, k in ipairs({"loss", "mae", "val_loss", "val_mae"}) do assert.are.equal(4, #h.history[k]) end
  end)
end)

describe("EarlyStopping", function()
  it("stops when the monitored value stops improving by min_delta for patience epochs", function()
    local m, x, y = toy(0.0) -- no learning: loss constant
    local es = cb.EarlyStopping{monitor = "loss", patience = 2, min_delta = 0.01}
    local h = m:fit(x, y, {epochs = 20, verbose = 0, callbacks = {es}})
    assert.are.equal(3, #h.epoch) -- epoch 1 sets best, 2 and 3 wait, stop after 3
    assert.are.equal(3, es.stopped_epoch)
  end)
  it("restores the best weights", function()
    local m, x, y = toy(0.1)
    local best
    local es = cb.EarlyStopping{monitor = "val_loss", patience = 0, restore_best_weights = true}
    -- val_loss goes up after epoch 2 because the lr explodes
    local sched = cb.LearningRateScheduler{schedule = function(epoch, lr) return epoch >= 3 and 5 or 0.1 end}
    local snap = cb.LambdaCallback{on_epoch_end = function(e) if e == 2 then best = m:get_weights() end end}
    local h = m:fit(x, y, {epochs = 10, verbose = 0, validation_data = {x, y}, callbacks = {sched, snap, es}})
    assert.are.equal(3, #h.epoch)
    assert.are.same(best[1]:totable(), m:get_weights()[1]:totable())
  end)
  it("validates its options", function()
    assert.has_error(function() cb.EarlyStopping{patience = -1} end,
      "EarlyStopping: patience must be an integer >= 0. Received: patience=-1")
    assert.has_error(function() cb.EarlyStopping{monitr = "loss"} end, "EarlyStopping: unknown option 'monitr'")
  end)
  it("mode 'auto' maximizes accuracy, AUC, precision and recall (also in ModelCheckpoint, ReduceLROnPlateau)", function()
    local want = {val_loss = "min", loss = "min", val_mae = "min", val_accuracy = "max", acc = "max",
      val_auc = "max", auc = "max", val_precision = "max", out_recall = "max", val_auc_1 = "min"}
    for monitor, mode in pairs(want) do
      assert.are.equal(mode, cb.EarlyStopping{monitor = monitor}.mode, monitor)
      assert.are.equal(mode, cb.ModelCheckpoint{filepath = "unused.kl", monitor = monitor}.mode, monitor)
      assert.are.equal(mode == "min", cb.ReduceLROnPlateau{monitor = monitor}._min, monitor)
    end
    assert.are.equal("min", cb.EarlyStopping{monitor = "val_auc", mode = "min"}.mode)
  end)
end)

describe("LearningRateScheduler", function()
  it("sets the learning rate at each epoch start (epoch from 1)", function()
    local m, x, y = toy()
    local seen = {}
    local s = cb.LearningRateScheduler{schedule = function(epoch, lr)
      seen[#seen + 1] = epoch
      return 0.1 / epoch
    end}
    local h = m:fit(x, y, {epochs = 3, verbose = 0, callbacks = {s}})
    assert.are.same({1, 2, 3}, seen)
    assert.is_true(math.abs(m.optimizer:get_learning_rate() - 0.1 / 3) < 1e-12)
    assert.is_true(math.abs(h.history.lr[3] - 0.1 / 3) < 1e-12)
  end)
  it("a zero learning rate freezes the weights (the plan sees the change)", function()
    local m, x, y = toy()
    local w0 = m:get_weights()[1]:totable()
    m:fit(x, y, {epochs = 2, verbose = 0, callbacks = {cb.LearningRateScheduler{schedule = function() return 0 end}}})
    assert.are.same(w0, m:get_weights()[1]:totable())
  end)
end)

describe("progress bar", function()
  local function sink()
    local buf = {}
    return {write = function(self, ...) for _, s in ipairs({...}) do buf[#buf + 1] = s end end,
      flush = function() end, text = function() return table.concat(buf) end}
  end
  it("draws the Keras 2 bar", function()
    local pb = cb.Progbar.new(1000, {dynamic = true, out = sink(), clock = function() return 0 end})
    assert.are.equal(" 320/1000 [========>.....................]", pb:bar(320))
    assert.are.equal("1000/1000 [==============================]", pb:bar(1000))
    assert.are.equal("   0/1000 [..............................]", pb:bar(0))
  end)
  it("redraws with \\r on a terminal and ends the line at the end", function()
    local out = sink()
    local t = 0
    local pb = cb.Progbar.new(1000, {dynamic = true, out = out, clock = function() return t end})
    t = 1
    pb:update(320, {{"loss", 0.1234}})
    t = 3
    pb:update(1000, {{"loss", 0.1}})
    local s = out.text()
    assert.are.equal("\r 320/1000 [========>.....................] - ETA: 2s - loss: 0.1234", s:sub(1, 68))
    assert.matches("\r1000/1000 %[=+%] %- 3s 3ms/step %- loss: 0%.1000\n$", s)
  end)
  it("prints one line per epoch when not a terminal", function()
    local out = sink()
    local pb = cb.Progbar.new(100, {dynamic = false, out = out, clock = function() return 0 end})
    pb:update(30, {{"loss", 1}})
    pb:update(60, {{"loss", 1}})
    assert.are.equal("", out.text())
    pb:update(100, {{"loss", 0.5}})
    assert.are.equal("100/100 [==============================] - 0s 0s/step - loss: 0.5000\n", out.text())
  end)
  it("verbose=2 prints one summary line", function()
    local out = sink()
    local pb = cb.Progbar.new(100, {verbose = 2, out = out, clock = function() return 0 end})
    pb:update(50, {{"loss", 1}})
    pb:update(100, {{"loss", 0.00001}})
    assert.are.equal(" - 0s - loss: 1.0000e-05\n", out.text())
  end)
  it("fit with verbose=1 prints the epoch header and the bar", function()
    local m, x, y = toy()
    local lines = {}
    local old = io.stdout
    local out = sink()
    local ProgbarLogger = cb.ProgbarLogger
    local orig = ProgbarLogger.on_epoch_begin
    ProgbarLogger.on_epoch_begin = function(self, e) self.out = out; self.dynamic = false; return orig(self, e) end
    m:fit(x, y, {epochs = 2, verbose = 1, batch_size = 8})
    ProgbarLogger.on_epoch_begin = orig
    local s = out.text()
    assert.matches("^Epoch 1/2\n40/40 %[=+%] %- %d+s %d+[mu]?s/step %- loss: %d%.%d%d%d%d\nEpoch 2/2\n", s)
    local _, _ = old, lines
  end)
end)
