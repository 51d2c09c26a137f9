-- spec/restore_best_weights_spec.lua: EarlyStopping{restore_best_weights=true} checked against
-- Keras 2's rules on a real model: stop once `patience` epochs in a row fail to improve, then
-- the weights are those at the end of the best epoch (snapshots taken as copies); no restore
-- when training ends without stopping.
local keras = require("keras")
local L, cb = keras.layers, keras.callbacks

-- A linear model whose val_loss improves while lr is small and explodes from epoch `blowup`.
local function run(patience, blowup, restore, epochs)
  keras.random.seed(1)
  local m = keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 1, kernel_initializer = "zeros"}}
  m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.05}, loss = "mse"}
  local x = keras.random.normal({40, 3})
  local y = keras.backend.dot(x, keras.array{{1}, {-2}, {0.5}})
  local snaps, vl = {}, {}
  local es = cb.EarlyStopping{monitor = "val_loss", patience = patience, restore_best_weights = restore}
  local sched = cb.LearningRateScheduler{schedule = function(e) return e >= blowup and 3 or 0.05 end}
  local snap = cb.LambdaCallback{on_epoch_end = function(e, logs)
    local w = {}
    for i, t in ipairs(m:get_weights()) do w[i] = t:totable() end
    snaps[e], vl[e] = w, logs.val_loss
  end}
  local h = m:fit(x, y, {epochs = epochs or 20, verbose = 0, shuffle = false,
    validation_data = {x, y}, callbacks = {sched, snap, es}})
  local now = {}
  for i, t in ipairs(m:get_weights()) do now[i] = t:totable() end
  return {h = h, es = es, snaps = snaps, vl = vl, now = now, model = m, x = x, y = y}
end

local function best_epoch(vl)
  local b = 1
  for e = 2, #vl do if vl[e] < vl[b] then b = e end end
  return b
end

describe("EarlyStopping restore_best_weights", function()
  for _, patience in ipairs({0, 1, 2, 3}) do
    it("patience=" .. patience .. ": stops after `patience` bad epochs in a row and restores the best", function()
      local r = run(patience, 4, true)
      local stop = 3 + math.max(patience, 1) -- epochs 1..3 improve; Keras: wait >= patience
      assert.are.equal(stop, #r.h.epoch)
      assert.are.equal(stop, r.es.stopped_epoch)
      assert.are.equal(3, best_epoch(r.vl))
      assert.are_not.same(r.snaps[3], r.snaps[stop])
      assert.are.same(r.snaps[3], r.now)
      -- the restored model evaluates to the best epoch's val_loss
      assert.is_true(math.abs(r.model:evaluate(r.x, r.y) - r.vl[3]) <= 1e-6 * (1 + r.vl[3]))
    end)
  end

  it("without restore_best_weights, the weights of the last epoch stay", function()
    local r = run(1, 4, false)
    assert.are.equal(4, #r.h.epoch)
    assert.are.same(r.snaps[4], r.now)
  end)

  it("training that ends without stopping keeps the last weights (as Keras 2)", function()
    local r = run(5, 4, true, 6)
    assert.are.equal(6, #r.h.epoch)
    assert.are.equal(0, r.es.stopped_epoch)
    assert.are.same(r.snaps[6], r.now)
  end)
end)
