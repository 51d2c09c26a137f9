-- spec/lifecycle_spec.lua: closing and collecting objects at any point never reaches freed
-- memory (issue 13, API.md "Object lifecycle"). Each case runs in its own lua5.4 child, so a
-- crash fails that case alone; under tools/test-asan the child inherits the sanitizer
-- runtimes (LD_PRELOAD), so a use-after-free is a sanitizer report and fails it too.
-- A case passes when the child exits 0, prints "LIFECYCLE OK" last and no sanitizer report.
-- Rules asserted: closing X (or y) inside on_batch_end / on_epoch_end lets fit complete or
-- raise a clean error naming the closed tensor; a closed handle used again raises
-- "... tensor is closed"; a graph closed under its plan leaves the plan (and the model)
-- working; a view outlives its closed parent; no fixed limit of 64 inputs.
local support = require("support")

local PRELUDE = [[
local keras = require("keras")
local core, L = keras.core, keras.layers
-- fit/evaluate outcome: completed, or a clean string error that says a tensor is closed
local function clean(ok, err, what)
  if ok then return "completed" end
  assert(type(err) == "string" and err:find("closed", 1, true),
    (what or "call") .. " raised an unclean error: " .. tostring(err))
  return "error: " .. err
end
local function closed_msg(f)
  local ok, err = pcall(f)
  assert(not ok, "a closed tensor was used without an error")
  assert(type(err) == "string" and err:find("tensor is closed", 1, true),
    "wanted '... tensor is closed', got: " .. tostring(err))
  return err
end
local function dense_model(units)
  keras.random.seed(1)
  local m = keras.Sequential{L.Input{shape = {3}}, L.Dense{units = units or 1}}
  m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.05, momentum = 0.9}, loss = "mse"}
  return m
end
local function sparse_model()
  keras.random.seed(1)
  local x = L.Input{shape = {20}, sparse = true}
  local m = keras.Model{inputs = x, outputs = L.Dense{units = 1, sparse_weight = true}(x)}
  m:compile{optimizer = "adam", loss = "mse"}
  return m
end
local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end
local function trains_on(m, x, y)
  local h = m:fit(x, y, {batch_size = 4, epochs = 1, verbose = 0})
  assert(#h.history.loss == 1 and finite(h.history.loss[1]), "the model no longer trains")
end
]]

local function run_case(src)
  local path = support.write_script(PRELUDE .. src .. "\nprint('LIFECYCLE OK')\n")
  local ok, code, out = support.run_lua(path)
  os.remove(path)
  local report = out:find("ERROR: AddressSanitizer", 1, true) or out:find("runtime error:", 1, true)
    or out:find("ERROR: LeakSanitizer", 1, true)
  assert(ok and not report and out:find("LIFECYCLE OK\n$"),
    string.format("child exit %s:\n%s", tostring(code), out:sub(-4000)))
  return out
end

describe("lifecycle: training data closed during fit", function()
  it("closing dense X with <close> in on_batch_end: fit completes or raises a clean error", function()
    run_case([[
      local m = dense_model()
      local X, y = keras.random.uniform({64, 3}), keras.random.uniform({64, 1})
      local cb = keras.callbacks.Callback{on_batch_end = function(_, b)
        if b == 2 then do local _ <close> = X end; collectgarbage(); collectgarbage() end
      end}
      print(clean(pcall(m.fit, m, X, y, {batch_size = 8, epochs = 2, verbose = 0, callbacks = {cb}})))
      assert(core.is_closed(X))
      closed_msg(function() return X:totable() end)
      trains_on(m, keras.random.uniform({16, 3}), keras.random.uniform({16, 1}))
    ]])
  end)

  it("closing csr X and y with core.close in on_batch_end (shuffled): fit completes or raises cleanly", function()
    run_case([[
      local m = sparse_model()
      local X = keras.sparse.rand({64, 20}, "csr", 0.2, {seed = 3})
      local y = keras.random.uniform({64, 1})
      local cb = keras.callbacks.Callback{on_batch_end = function(_, b)
        if b == 1 then core.close(X); core.close(y); collectgarbage() end
      end}
      print(clean(pcall(m.fit, m, X, y, {batch_size = 8, epochs = 2, shuffle = true, verbose = 0,
        callbacks = {cb}})))
      closed_msg(function() return X:copy() end)
      closed_msg(function() return y:totable() end)
      trains_on(m, keras.sparse.rand({16, 20}, "csr", 0.2, {seed = 4}), keras.random.uniform({16, 1}))
    ]])
  end)

  it("closing the validation data in on_epoch_end: the next epoch completes or raises cleanly", function()
    run_case([[
      local m = dense_model()
      local X, y = keras.random.uniform({32, 3}), keras.random.uniform({32, 1})
      local Xv, yv = keras.random.uniform({8, 3}), keras.random.uniform({8, 1})
      local cb = keras.callbacks.Callback{on_epoch_end = function()
        core.close(Xv); core.close(yv); core.close(X); collectgarbage()
      end}
      print(clean(pcall(m.fit, m, X, y, {batch_size = 8, epochs = 3, verbose = 0,
        validation_data = {Xv, yv}, callbacks = {cb}})))
      trains_on(m, keras.random.uniform({16, 3}), keras.random.uniform({16, 1}))
    ]])
  end)

  it("closing an iterator's batch and the iterator itself in on_batch_end", function()
    run_case([[
      local m = dense_model()
      local X, y = keras.random.uniform({32, 3}), keras.random.uniform({32, 1})
      local last
      local it = {num_data = 32, batches = function()
        local b = 0
        return function()
          if b >= 32 then return nil end
          b = b + 8
          last = X:slice(b - 7, b)
          return last, y:slice(b - 7, b)
        end
      end}
      local cb = keras.callbacks.Callback{on_batch_end = function() core.close(last); collectgarbage() end}
      print(clean(pcall(m.fit, m, it, nil, {epochs = 2, verbose = 0, callbacks = {cb}})))
      local f = os.tmpname()
      keras.data_utils.dump_svmlight_file(keras.random.uniform({20, 3}), keras.random.uniform({20}), f)
      local li = keras.data_utils.LibSVMIter{path = f, n_features = 3, batch_size = 4}
      local cb2 = keras.callbacks.Callback{on_batch_end = function(_, b) if b == 2 then li:close() end end}
      print(clean(pcall(m.fit, m, li, nil, {epochs = 2, verbose = 0, callbacks = {cb2}})))
      os.remove(f)
      trains_on(m, X, y)
    ]])
  end)
end)

describe("lifecycle: closed handles", function()
  it("a closed tensor used again raises '... tensor is closed' (dense, csr, row_sparse)", function()
    run_case([[
      local ts = {keras.ones({3, 2}), keras.sparse.rand({4, 5}, "csr", 0.5, {seed = 1}),
        keras.sparse.rand({4, 5}, "row_sparse", 0.5, {seed = 1})}
      for i, t in ipairs(ts) do
        if i == 1 then do local _ <close> = t end else core.close(t) end
        collectgarbage()
        assert(core.is_closed(t))
        closed_msg(function() return t:totable() end)
        closed_msg(function() return t:copy() end)
        closed_msg(function() return t:tostype("default") end)
        local ok, err = pcall(function() return t + 1 end)
        assert(not ok and err:find("closed", 1, true), tostring(err))
        core.close(t)                 -- closing twice is a no-op
        getmetatable(t).__close(t)
      end
      -- fit / predict on a closed tensor: a clean error, the model unharmed
      local m = dense_model()
      local X, y = keras.random.uniform({8, 3}), keras.random.uniform({8, 1})
      core.close(X)
      local ok, err = pcall(m.fit, m, X, y, {verbose = 0})
      assert(not ok and err:find("closed", 1, true), tostring(err))
      ok, err = pcall(m.predict, m, X)
      assert(not ok and err:find("closed", 1, true), tostring(err))
      trains_on(m, keras.random.uniform({8, 3}), y)
    ]])
  end)

  it("a view (slice, reshape, a csr row slice) outlives its closed parent", function()
    run_case([[
      local d = keras.range(1, 12):reshape({4, 3})
      local dv = d:slice(2, 3)
      local r = d:reshape({3, 4})
      local c = keras.sparse.rand({6, 5}, "csr", 0.5, {seed = 2})
      local want = c:tostype("default"):slice(2, 4):totable()
      local cv = c:slice(2, 4)
      core.close(d); core.close(c)
      collectgarbage(); collectgarbage()
      assert(dv:totable()[1][1] == 4 and r:totable()[3][4] == 12)
      local got = cv:tostype("default"):totable()
      for i = 1, 3 do for j = 1, 5 do assert(got[i][j] == want[i][j]) end end
    ]])
  end)
end)

describe("lifecycle: graphs and plans", function()
  it("a model's graph closed under its plans: fit, evaluate and predict keep working", function()
    run_case([[
      local m = dense_model()
      local X, y = keras.random.uniform({16, 3}), keras.random.uniform({16, 1})
      m:fit(X, y, {batch_size = 4, verbose = 0})
      local p0 = m:predict(X):totable()
      local g = m.gs.g
      getmetatable(g).__close(g)
      collectgarbage(); collectgarbage()
      trains_on(m, X, y)
      local loss = m:evaluate(X, y)
      assert(finite(loss))
      local p1 = m:predict(X):totable()
      assert(#p1 == 16 and p1[1][1] ~= p0[1][1])
    ]])
  end)

  it("a raw plan outlives its closed graph; a closed graph's own methods raise cleanly", function()
    run_case([[
      local g = core.graph_new()
      local x = g:placeholder{shape = {-1, 3}, name = "x"}
      local y = g:placeholder{shape = {-1, 1}, name = "y"}
      local W = keras.random.normal({3, 1}, {seed = 1})
      local w = g:variable(W, true, "W")
      local d = g:op("dot", {x, w})
      local loss = g:op("mean_squared_error", {y, d})
      local p = core.plan_new(g, {feeds = {x, y}, outputs = {d}, loss = loss, weights = {w},
        optimizer = core.optimizer_new("sgd", {learning_rate = 0.1})})
      do local _ <close> = g end
      g = nil
      collectgarbage(); collectgarbage()
      local X, Y = keras.random.uniform({8, 3}), keras.random.uniform({8, 1})
      local out = p:forward({X, Y}, true)[1]
      assert(#out:totable() == 8)
      p:backward()
      local l1 = p:train_step({X, Y})
      local l2 = p:fit_epoch({X}, Y, {batch_size = 4})
      assert(finite(l1) and finite(l2))
      local g2 = core.graph_new()
      local x2 = g2:placeholder{shape = {-1, 3}}
      core.close(W)   -- a variable's tensor closed: the graph still holds it
      local ok, err = pcall(function()
        getmetatable(g2).__close(g2)
        return g2:op("relu", {x2})
      end)
      print(clean(ok, err, "op on a closed graph"))
    ]])
  end)

  it("a model's plan closed: the next fit raises cleanly or rebuilds it", function()
    run_case([[
      local m = dense_model()
      local X, y = keras.random.uniform({16, 3}), keras.random.uniform({16, 1})
      m:fit(X, y, {verbose = 0})
      local p = m._train_plan
      getmetatable(p).__close(p)
      collectgarbage()
      print(clean(pcall(m.fit, m, X, y, {verbose = 0})))
      print(clean(pcall(m.evaluate, m, X, y)))
      local cb = keras.callbacks.Callback{on_batch_end = function()
        local pl = m._train_plan
        if pl then getmetatable(pl).__close(pl) end
        local g = m.gs.g
        getmetatable(g).__close(g)
        collectgarbage()
      end}
      local m2 = dense_model()
      print(clean(pcall(m2.fit, m2, X, y, {batch_size = 4, epochs = 2, verbose = 0, callbacks = {cb}})))
    ]])
  end)
end)

describe("lifecycle: many inputs", function()
  it("a model with 70 inputs concatenated fits, evaluates and predicts (no 64-input limit)", function()
    run_case([[
      keras.random.seed(1)
      local ins, xs = {}, {}
      for i = 1, 70 do
        ins[i] = L.Input{shape = {1}}
        xs[i] = keras.random.uniform({12, 1})
      end
      local out = L.Dense{units = 1}(L.Concatenate{}(ins))
      local m = keras.Model{inputs = ins, outputs = out}
      m:compile{optimizer = "sgd", loss = "mse"}
      local y = keras.random.uniform({12, 1})
      local h = m:fit(xs, y, {batch_size = 4, epochs = 2, verbose = 0})
      assert(#h.history.loss == 2 and finite(h.history.loss[2]))
      assert(finite(m:evaluate(xs, y, {batch_size = 5})))
      assert(m:predict(xs, {batch_size = 5}).shape[1] == 12)
      assert(finite(m:train_on_batch(xs, y)))
    ]])
  end)

  it("a raw plan with 70 feeds: fit_epoch, evaluate and predict (no fixed 64-slot array)", function()
    run_case([[
      local g = core.graph_new()
      local feeds, sum = {}, nil
      for i = 1, 70 do
        feeds[i] = g:placeholder{shape = {-1, 1}}
        sum = sum and g:op("add", {sum, feeds[i]}) or feeds[i]
      end
      local y = g:placeholder{shape = {-1, 1}}
      local w = g:variable(keras.ones({1, 1}), true, "W")
      local d = g:op("dot", {sum, w})
      local loss = g:op("mean_squared_error", {y, d})
      feeds[71] = y
      local p = core.plan_new(g, {feeds = feeds, outputs = {d}, loss = loss, weights = {w},
        optimizer = core.optimizer_new("sgd", {learning_rate = 0.001})})
      local xs = {}
      for i = 1, 70 do xs[i] = keras.random.uniform({6, 1}) end
      local Y = keras.random.uniform({6, 1})
      assert(finite(p:fit_epoch(xs, Y, {batch_size = 4})))
      assert(finite(p:evaluate(xs, Y, {batch_size = 4})))
      local infer = core.plan_new(g, {feeds = {table.unpack(feeds, 1, 70)}, outputs = {d}})
      assert(infer:predict(xs, 4).shape[1] == 6)
    ]])
  end)
end)
