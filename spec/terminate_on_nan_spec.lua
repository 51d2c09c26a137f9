-- spec/terminate_on_nan_spec.lua: keras.callbacks.TerminateOnNaN (Keras 2's: "Batch N: Invalid
-- loss, terminating training", model.stop_training) and fit's one-time warning when the loss
-- becomes NaN or inf ("keras-lua: warning: loss became nan at epoch E, batch B ..."), for
-- in-memory fit (the C batch loop), an ArrayIterator and a plain Lua iterator.
local keras = require("keras")
local support = require("support")
local cb = keras.callbacks
local L = keras.layers

local WARN = "keras%-lua: warning: loss became (%S+) at epoch (%d+)(.-) %(the model has diverged; " ..
  "keras.callbacks.TerminateOnNaN{} stops training when this happens%)"

-- Runs f with io.stdout, io.stderr and print captured; returns stdout, stderr, printed lines.
local function capture(f)
  local out, err, printed = {}, {}, {}
  local function sink(t)
    local s = {}
    function s.write(self, ...)
      for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
      return self
    end
    function s.flush() end
    return s
  end
  local so, se, pr = io.stdout, io.stderr, _G.print
  io.stdout, io.stderr = sink(out), sink(err)
  _G.print = function(...)
    local p = {}
    for i = 1, select("#", ...) do p[i] = tostring((select(i, ...))) end
    printed[#printed + 1] = table.concat(p, "\t")
  end
  local ok, e = pcall(f)
  io.stdout, io.stderr, _G.print = so, se, pr
  assert(ok, e)
  return table.concat(out), table.concat(err), printed
end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

-- A Dense -> relu -> Dense(relu) model with SGD at learning_rate 1e30: it diverges within the
-- first epoch (today relu(NaN) = 0 then gives a finite loss again on NaN weights, so only
-- the first epoch's loss shows it).
local function diverging()
  keras.random.seed(1)
  local m = keras.Sequential{L.Input{shape = {4}}, L.Dense{units = 8, activation = "relu"},
    L.Dense{units = 1, activation = "relu"}}
  m:compile{optimizer = keras.optimizers.SGD{learning_rate = 1e30}, loss = "mse"}
  local x = keras.random.uniform({64, 4})
  local y = keras.random.uniform({64, 1})
  return m, x, y
end

-- A linear model whose data holds an inf in row 1: the first batch's loss is not finite.
local function inf_input()
  keras.random.seed(2)
  local m = keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 1}}
  m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.01}, loss = "mse"}
  local rows = {}
  for i = 1, 32 do rows[i] = {i / 32, 1 - i / 32, 0.5} end
  rows[1][2] = math.huge
  return m, keras.array(rows), keras.ones({32, 1})
end

-- Records the batches that ran and the loss each reported (after TerminateOnNaN in the list).
local function recorder()
  local r = {batches = {}}
  r.cb = cb.Callback{on_batch_end = function(_, b, logs) r.batches[#r.batches + 1] = {b, logs.loss} end}
  return r
end

-- The same data as an ArrayIterator, or as a plain Lua iterator (batches() yielding x, y).
local function array_iter(x, y, bs)
  return keras.data_utils.ArrayIterator{data = x, label = y, batch_size = bs}
end
local function lua_iter(x, y, bs)
  local n = x.shape[1]
  return {num_data = n, batches = function()
    local b = 0
    return function()
      if b >= n then return nil end
      local e = math.min(b + bs, n)
      local xb, yb = x:slice(b + 1, e), y:slice(b + 1, e)
      b = e
      return xb, yb
    end
  end}
end

local sources = {
  {"in-memory fit", function(x, y, bs) return x, y, {batch_size = bs, shuffle = false} end},
  {"an ArrayIterator", function(x, y, bs) return array_iter(x, y, bs), nil, {} end},
  {"a Lua iterator", function(x, y, bs) return lua_iter(x, y, bs), nil, {} end},
}

describe("TerminateOnNaN", function()
  it("is a Callback taking no options", function()
    local t = cb.TerminateOnNaN{}
    assert.is_true(cb.is_callback(t))
    assert.is_true(cb.is_callback(cb.TerminateOnNaN()))
    assert.has_error(function() cb.TerminateOnNaN{patience = 1} end)
  end)

  it("on_batch_end stops the model on NaN, inf and -inf losses only, printing Keras' line", function()
    for _, v in ipairs({0 / 0, math.huge, -math.huge}) do
      local m = {stop_training = false}
      local t = cb.TerminateOnNaN{}
      t:set_model(m)
      local _, _, printed = capture(function()
        t:on_batch_end(1, {loss = 0.5})
        t:on_batch_end(2, {})
        assert.is_false(m.stop_training)
        t:on_batch_end(3, {loss = v})
      end)
      assert.is_true(m.stop_training)
      assert.are.same({"Batch 3: Invalid loss, terminating training"}, printed)
    end
  end)

  for _, src in ipairs(sources) do
    local name, data = src[1], src[2]

    it("stops " .. name .. " after batch 1 when the data holds an inf", function()
      local m, x, y = inf_input()
      local r = recorder()
      local fx, fy, opts = data(x, y, 8)
      opts.epochs, opts.verbose, opts.callbacks = 3, 0, {cb.TerminateOnNaN{}, r.cb}
      local h
      local _, err, printed = capture(function() h = m:fit(fx, fy, opts) end)
      assert.are.same({"Batch 1: Invalid loss, terminating training"}, printed)
      assert.are.equal(1, #r.batches)            -- no batch after the bad one
      assert.are.equal(1, #h.history.loss)       -- no epoch after it
      assert.is_false(finite(h.history.loss[1]))
      assert.is_true(m.stop_training)
      -- verbose = 0: the warning went to stderr, once
      assert.are.equal(1, count(err, "keras%-lua: warning: loss became"), err)
      local _, epoch, rest = err:match(WARN)
      assert.are.same({"1", ", batch 1"}, {epoch, rest})
    end)

    it("stops " .. src[1] .. " at the first batch whose loss is not finite (learning_rate 1e30)", function()
      local m, x, y = diverging()
      local r = recorder()
      local fx, fy, opts = data(x, y, 8)
      opts.epochs, opts.verbose, opts.callbacks = 3, 0, {cb.TerminateOnNaN{}, r.cb}
      local h
      local _, _, printed = capture(function() h = m:fit(fx, fy, opts) end)
      local n = #r.batches
      assert.is_true(n >= 1 and n < 8, tostring(n))
      for i = 1, n - 1 do assert.is_true(finite(r.batches[i][2]), "batch " .. i) end
      assert.is_false(finite(r.batches[n][2]))
      assert.are.same({string.format("Batch %d: Invalid loss, terminating training", n)}, printed)
      assert.are.equal(1, #h.history.loss)
    end)

    it("without TerminateOnNaN, " .. name .. " warns once in the progress output and trains on", function()
      local m, x, y = diverging()
      local fx, fy, opts = data(x, y, 8)
      opts.epochs, opts.verbose = 3, 1
      local h
      local out, err, printed = capture(function() h = m:fit(fx, fy, opts) end)
      assert.are.equal(3, #h.history.loss)
      assert.is_false(finite(h.history.loss[1]))
      assert.are.equal("", err)
      assert.are.same({}, printed)
      assert.are.equal(1, count(out, "keras%-lua: warning: loss became"), out)
      local what, epoch, rest = out:match(WARN)
      assert.is_truthy(what == "nan" or what == "inf", out)
      assert.are.equal("1", epoch)
      assert.matches("^, batch %d+$", rest)
      -- the warning has a line of its own, before epoch 1's bar, which shows a non-finite
      -- epoch loss (nan once an inf has turned the weights to nan: relu(nan) is nan)
      local shown = ("\n" .. out):match("\nkeras%-lua: warning: [^\n]+\n%d+/64 %[=+%] %- [^\n]* %- loss: (%-?%a+)\nEpoch 2/3")
      assert.is_truthy(shown == "nan" or shown == "inf" or shown == "-inf", out)
    end)
  end

  it("with verbose = 0 and no batch callbacks (no batch reported to Lua) it warns on stderr, " ..
     "naming the epoch", function()
    local m, x, y = diverging()
    local h
    local out, err = capture(function() h = m:fit(x, y, {epochs = 2, batch_size = 8, verbose = 0}) end)
    assert.are.equal(2, #h.history.loss)
    assert.are.equal("", out)
    assert.are.equal(1, count(err, "keras%-lua: warning: loss became"), err)
    local _, epoch, rest = err:match(WARN)
    assert.are.same({"1", ""}, {epoch, rest})
    -- verbose = 2 reports batches to its logger: the batch is named
    m, x, y = diverging()
    out = capture(function() m:fit(x, y, {epochs = 1, batch_size = 8, verbose = 2}) end)
    assert.are.equal(1, count(out, "keras%-lua: warning: loss became"), out)
    assert.matches("^ %- 0s %- loss: %a+\n$", out:match("\n( %- [^\n]+\n)$"))
  end)

  it("a bar stopped mid-epoch ends where training did", function()
    local m, x, y = inf_input()
    local out = capture(function()
      m:fit(x, y, {epochs = 2, batch_size = 8, verbose = 1, shuffle = false,
        callbacks = {cb.TerminateOnNaN{}}})
    end)
    assert.matches("\n *8/32 %[=+>%.+%] %- ", out)
    assert.is_nil(out:find("Epoch 2/2", 1, true))
  end)

  it("prints to the real streams of a script: the warning, then Keras' line", function()
    local path = support.write_script([[
      local keras = require("keras")
      keras.random.seed(2)
      local m = keras.Sequential{keras.layers.Input{shape = {2}}, keras.layers.Dense{units = 1}}
      m:compile{optimizer = "sgd", loss = "mse"}
      local x = keras.array{{1, 2}, {3, math.huge}, {5, 6}, {7, 8}}
      local h = m:fit(x, keras.ones({4, 1}), {batch_size = 1, epochs = 2, verbose = 1, shuffle = false,
        callbacks = {keras.callbacks.TerminateOnNaN{}}})
      print("epochs " .. #h.history.loss)
    ]])
    local ok, _, out = support.run_lua(path)
    os.remove(path)
    assert.is_true(ok, out)
    assert.matches("Epoch 1/2\nkeras%-lua: warning: loss became %a+ at epoch 1, batch 2 %(the model has " ..
      "diverged; keras.callbacks.TerminateOnNaN{} stops training when this happens%)\n" ..
      "Batch 2: Invalid loss, terminating training\n2/4 %[", out)
    assert.matches("epochs 1\n$", out)
  end)
end)
