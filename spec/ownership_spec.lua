-- spec/ownership_spec.lua: object lifecycle (issue 13). Closing a handle releases only the
-- Lua handle's reference: C code that still uses the object (a running fit, a csr batch
-- view, a plan's graph) keeps it alive, and a closed handle used again raises "... is
-- closed". Models with more than 64 inputs work everywhere. Tensor memory drives the
-- collector (an eager loop stays bounded without collectgarbage()). int64 scalars read back
-- exactly. Each case here read freed memory, refused, or grew without bound before; under
-- `make test-asan` a use-after-free is a sanitizer report, not a silent pass.
local keras = require("keras")
local K = keras.backend
local L = keras.layers
local core = keras.core

local function sparse_model(n_in, opt)
  keras.random.seed(11)
  local m = keras.Sequential{L.Input{shape = {n_in}, sparse = true},
    L.Dense{units = 1, sparse_weight = true}}
  m:compile{optimizer = opt or keras.optimizers.SGD{learning_rate = 0.05}, loss = "mse"}
  return m
end

local function data(n, cols)
  local X = keras.sparse.rand({n, cols}, "csr", 0.2, {seed = 3})
  local y = K.dot(X, keras.range(1, cols):reshape({cols, 1})) / cols
  return X, y
end

-- A callback whose on_batch_end runs f once, at the given batch.
local function at_batch(b, f)
  local cb = keras.callbacks.LambdaCallback{on_batch_end = function(batch)
    if batch == b then f() end
  end}
  return cb
end

local function weights_of(m)
  local out = {}
  for i, w in ipairs(m:get_weights()) do out[i] = w:totable() end
  return out
end

describe("closing the training data inside fit", function()
  for _, shuffle in ipairs({false, true}) do
    for _, how in ipairs({"<close>", "core.close"}) do
      it(("fit finishes the epoch as if X were open (shuffle=%s, %s)"):format(tostring(shuffle), how), function()
        local X, y = data(200, 30)
        local ref = sparse_model(30)
        ref:fit(X, y, {batch_size = 16, epochs = 1, shuffle = shuffle, verbose = 0})
        local m = sparse_model(30)
        local X2, y2 = data(200, 30)
        m:fit(X2, y2, {batch_size = 16, epochs = 1, shuffle = shuffle, verbose = 0,
          callbacks = {at_batch(2, function()
            if how == "<close>" then
              do local _ <close> = X2 end
              do local _ <close> = y2 end
            else
              core.close(X2)
              core.close(y2)
            end
            collectgarbage()
            collectgarbage()
          end)}})
        -- the loop kept its own references: every batch trained on the data as it was
        assert.are.same(weights_of(ref), weights_of(m))
        assert.has_error(function() return X2:totable() end, "totable: tensor is closed")
        assert.has_error(function() return X2.shape end, "keras.Tensor: tensor is closed (reading field 'shape')")
      end)
    end
  end

  it("a later epoch reports the closed handle instead of reading freed memory", function()
    local X, y = data(100, 20)
    local m = sparse_model(20)
    local ok, err = pcall(function()
      m:fit(X, y, {batch_size = 10, epochs = 3, verbose = 0,
        callbacks = {at_batch(1, function() core.close(X); collectgarbage() end)}})
    end)
    assert.is_false(ok)
    assert.matches("tensor is closed", tostring(err), 1, true)
    -- the model is still usable with fresh data
    local X2, y2 = data(50, 20)
    assert.is_true(m:evaluate(X2, y2, {verbose = 0}) >= 0)
  end)

  it("evaluate and predict after the data's handle closed inside a callback", function()
    local X, y = data(64, 20)
    local m = sparse_model(20)
    local Xv = data(32, 20)
    m:fit(X, y, {batch_size = 8, epochs = 1, verbose = 0,
      callbacks = {at_batch(1, function() core.close(X); collectgarbage() end)}})
    local p = m:predict(Xv)
    assert.are.same({32, 1}, p.shape)
  end)
end)

describe("a graph closed under its plan", function()
  it("the plan keeps the graph alive and still computes", function()
    local g = core.graph_new()
    local x = g:placeholder{shape = {-1, 3}}
    local w = g:variable(keras.array({{1}, {2}, {3}}))
    local out = g:op("dot", {x, w})
    local p = core.plan_new(g, {feeds = {x}, outputs = {out}})
    do local _ <close> = g end
    assert.has_error(function() return g:size() end, "size: graph is closed")
    collectgarbage()
    collectgarbage()
    local r = p:forward({keras.array({{1, 1, 1}, {1, 0, 0}})})
    assert.are.same({{6}, {1}}, r[1]:totable())
    assert.are.equal("<Graph closed>", tostring(g))
  end)

  it("a model trains after its graph userdata was closed", function()
    local X, y = data(64, 20)
    local m = sparse_model(20)
    m:fit(X, y, {batch_size = 8, epochs = 1, verbose = 0})
    local before = m:predict(X):totable()
    local g = m.gs.g
    do local _ <close> = g end
    collectgarbage()
    collectgarbage()
    -- the compiled plans hold the graph: predict and fit keep working
    assert.are.same(before, m:predict(X):totable())
    m:fit(X, y, {batch_size = 8, epochs = 1, verbose = 0})
    assert.are.same({64, 1}, m:predict(X).shape)
    -- a new plan needs the graph's handle: a clean error, not freed memory
    local ok, err = pcall(function() m:compile{optimizer = "sgd", loss = "mse"}; m:fit(X, y, {verbose = 0}) end)
    assert.is_false(ok)
    assert.matches("graph is closed", tostring(err), 1, true)
    -- later models get a fresh default graph, as after K.clear_session()
    local m2 = sparse_model(20)
    assert.are_not.equal(g, m2.gs.g)
    m2:fit(X, y, {batch_size = 8, epochs = 1, verbose = 0})
  end)

  it("closing the plan inside its own fit loop ends cleanly", function()
    local X, y = data(64, 20)
    local m = sparse_model(20)
    local closed = false
    local ok, err = pcall(function()
      m:fit(X, y, {batch_size = 8, epochs = 2, verbose = 0,
        callbacks = {at_batch(2, function()
          if not closed then
            closed = true
            do local _ <close> = m._train_plan end
            collectgarbage()
          end
        end)}})
    end)
    -- the first epoch finished on the loop's own reference; the second finds it closed
    assert.is_false(ok)
    assert.matches("plan is closed", tostring(err), 1, true)
  end)
end)

describe("models with more than 64 inputs", function()
  local function ctr_model(fields, opt)
    keras.random.seed(3)
    local inputs, embs = {}, {}
    for i = 1, fields do
      inputs[i] = L.Input{shape = {4}, sparse = true, name = "f" .. i}
      embs[i] = L.Dense{units = 2, sparse_weight = true, name = "d" .. i}(inputs[i])
    end
    local top = L.Dense{units = 1}(L.Concatenate{}(embs))
    local m = keras.Model{inputs = inputs, outputs = top}
    m:compile{optimizer = opt or keras.optimizers.Adam{learning_rate = 0.01}, loss = "mse"}
    return m
  end

  it("fit, evaluate and predict a 100-field model (each field its own Input)", function()
    local fields, n = 100, 40
    local m = ctr_model(fields)
    local xs = {}
    for i = 1, fields do xs[i] = keras.sparse.rand({n, 4}, "csr", 0.5, {seed = i}) end
    local y = keras.random.uniform({n, 1}, {seed = 9})
    local h = m:fit(xs, y, {batch_size = 8, epochs = 2, verbose = 0})
    assert.are.equal(2, #h.history.loss)
    assert.is_true(h.history.loss[2] < h.history.loss[1])
    local l = m:evaluate(xs, y, {verbose = 0})
    assert.is_true(l == l and l >= 0)
    local p = m:predict(xs)
    assert.are.same({n, 1}, p.shape)
    -- train_on_batch and the plan's forward take the same 101 feeds
    local tl = m:train_on_batch(xs, y)
    assert.is_true(tl == tl)
  end)

  it("the 100-field model matches the same model trained batch by batch", function()
    local fields, n = 70, 24
    local xs = {}
    for i = 1, fields do xs[i] = keras.sparse.rand({n, 4}, "csr", 0.5, {seed = 100 + i}) end
    local y = keras.random.uniform({n, 1}, {seed = 19})
    local a = ctr_model(fields, keras.optimizers.SGD{learning_rate = 0.1})
    a:fit(xs, y, {batch_size = 8, epochs = 1, verbose = 0, shuffle = false})
    local b = ctr_model(fields, keras.optimizers.SGD{learning_rate = 0.1})
    for s = 1, n, 8 do
      local bx = {}
      for i = 1, fields do bx[i] = xs[i]:slice(s, s + 7) end
      b:train_on_batch(bx, y:slice(s, s + 7))
    end
    assert.are.same(weights_of(a), weights_of(b))
  end)

  it("K.concatenate / core.op take hundreds of tensors, exactly", function()
    local parts, ref = {}, {}
    for i = 1, 300 do
      parts[i] = keras.full({2, 1}, i)
      ref[#ref + 1] = i
    end
    local c = K.concatenate(parts, -1)
    assert.are.same({2, 300}, c.shape)
    assert.are.same(ref, c:totable()[1])
    local s = {}
    for i = 1, 130 do s[i] = keras.sparse.csr_matrix{data = {i}, indices = {1}, indptr = {1, 2}, shape = {1, 1}} end
    local cs = K.concatenate(s, 1)
    assert.are.equal("csr", cs.stype)
    assert.are.same({130, 1}, cs.shape)
    assert.are.equal(130, cs:get(130, 1))
  end)

  it("a list longer than the largest supported is an error naming the limit", function()
    local parts = {}
    for i = 1, 4097 do parts[i] = keras.zeros({1, 1}) end
    assert.has_error(function() core.op("concatenate", parts) end,
      "concatenate: expected 1 to 4096 inputs, got 4097")
  end)
end)

describe("tensor memory and the collector", function()
  local function vm_hwm_kb()
    for line in io.lines("/proc/self/status") do
      local v = line:match("^VmHWM:%s+(%d+)")
      if v then return tonumber(v) end
    end
  end

  it("300 eager x * 2 on a 4 MB tensor peak below 400 MB above the start, no collectgarbage()", function()
    local x = keras.ones({1024, 1024})      -- 4 MiB of float32
    local before = vm_hwm_kb()
    local runs0 = core.memory_info().collections
    for _ = 1, 300 do
      local y = x * 2
      local z = y + 1                         -- one more op an iteration
      assert(z ~= nil)
    end
    local grown_mb = (vm_hwm_kb() - before) / 1024
    assert.is_true(grown_mb < 400, ("peak grew by %.0f MB"):format(grown_mb))
    assert.is_true(core.memory_info().collections > runs0)
  end)

  it("the threshold knob: 0 turns automatic collections off, bytes set the floor", function()
    local old = keras.set_gc_threshold(0)
    local info = core.memory_info()
    assert.are.equal(0, info.floor)
    local runs0 = info.collections
    local x = keras.ones({256, 1024})
    for _ = 1, 20 do local _ = x * 2 end
    assert.are.equal(runs0, core.memory_info().collections)
    keras.set_gc_threshold(old)
    assert.are.equal(old, core.memory_info().floor)
    assert.has_error(function() keras.set_gc_threshold(-1) end,
      "set_gc_threshold: bytes = -1 must be >= 0 (0 turns it off)")
    assert.has_error(function() keras.set_gc_threshold(1.5) end,
      "set_gc_threshold: bytes = 1.5 is not an integer")
  end)

  it("memory_info counts the C heap: a tensor's bytes come and go with it", function()
    collectgarbage()
    local a = core.memory_info().live_bytes
    local t = keras.zeros({1000, 1000}, {dtype = "float64"})
    local b = core.memory_info().live_bytes
    assert.is_true(b - a >= 8000000)
    core.close(t)
    assert.is_true(core.memory_info().live_bytes <= a + 4096)
  end)
end)

describe("int64 scalars", function()
  it("get and item read int64 storage exactly, beyond 2^53", function()
    local t = keras.array({math.maxinteger, 9007199254740993, -3, math.mininteger}, {dtype = "int64"})
    assert.are.equal(math.maxinteger, t:get(1))
    assert.are.equal(9007199254740993, t:get(2))
    assert.are.equal(math.mininteger, t:get(4))
    assert.are.equal("integer", math.type(t:get(3)))
    assert.are.equal(9007199254740993, t:slice(2, 2):reshape({}):item())
    assert.are.equal(math.maxinteger, t:slice(1, 1):item())
    -- a csr int64 read back, stored and implicit entries
    local c = keras.sparse.csr_matrix{data = {9007199254740993}, indices = {2}, indptr = {1, 2, 2},
      shape = {2, 3}, dtype = "int64"}
    assert.are.equal(9007199254740993, c:get(1, 2))
    assert.are.equal(0, c:get(2, 3))
    assert.are.equal("integer", math.type(c:get(2, 3)))
  end)
end)

describe("optimizer state steps", function()
  it("opt:update reads state.t given as a float with an integral value (3.0)", function()
    local opt = keras.optimizers.Adam{learning_rate = 0.1}._c
    local w1, w2 = keras.ones({3, 2}), keras.ones({3, 2})
    local g = keras.full({3, 2}, 0.5)
    local s1, s2 = opt:create_state(w1), opt:create_state(w2)
    s1.t, s2.t = 3, 3.0
    opt:update(w1, g, s1)
    opt:update(w2, g, s2)
    assert.are.equal(4, s1.t)
    assert.are.equal(4, s2.t)
    assert.are.same(w1:totable(), w2:totable())
  end)
end)

