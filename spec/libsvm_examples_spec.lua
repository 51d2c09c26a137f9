-- spec/libsvm_examples_spec.lua: runs examples/make_libsvm_data.lua (as a module and as a
-- script) and examples/libsvm_classifier.lua with quick sizes; model:fit/evaluate/predict
-- over a LibSVMIter.
local keras = require("keras")
local support = require("support")
local du = keras.data_utils

local tmpdir = support.mktemp_dir()
teardown(function() os.execute("rm -rf '" .. tmpdir .. "'") end)

local slurp = support.slurp

local function gunzip(p)
  local f = io.popen("gzip -dc '" .. p .. "'")
  local s = f:read("a")
  f:close()
  return s
end

-- Runs an example file with KERAS_LUA_EXAMPLE_QUICK=1 and print silenced; returns its result.
local function run_example(path, out)
  local old_getenv, old_print = os.getenv, _G.print
  os.getenv = function(k) -- luacheck: ignore
    if k == "KERAS_LUA_EXAMPLE_QUICK" then return "1" end
    if k == "KERAS_LUA_EXAMPLE_OUT" then return out end
    return old_getenv(k)
  end
  _G.print = function() end
  local ok, res = pcall(dofile, path)
  os.getenv, _G.print = old_getenv, old_print -- luacheck: ignore
  assert(ok, res)
  return res
end

describe("examples/make_libsvm_data.lua", function()
  local maker = dofile("examples/make_libsvm_data.lua")

  it("writes a loadable, deterministic binary data set (plain and .gz)", function()
    local r = maker.make{path = tmpdir .. "/a.svm", rows = 300, features = 50, seed = 4}
    assert.are.same({rows = 300, features = 50}, {rows = r.rows, features = r.features})
    assert.is_true(r.positives > 60 and r.positives < 240, tostring(r.positives))
    local X, y = du.load_svmlight_file(tmpdir .. "/a.svm", {n_features = 50})
    assert.are.same({300, 50}, X.shape)
    local pos = 0
    for _, v in ipairs(y:totable()) do
      assert.is_true(v == 0 or v == 1)
      pos = pos + v
    end
    assert.are.equal(r.positives, pos)
    for i = 1, 300 do
      local nnz = X.indptr:totable()[i + 1] - X.indptr:totable()[i]
      assert.is_true(nnz >= 5 and nnz <= 20)
    end
    maker.make{path = tmpdir .. "/b.svm.gz", rows = 300, features = 50, seed = 4}
    assert.are.equal(slurp(tmpdir .. "/a.svm"), gunzip(tmpdir .. "/b.svm.gz"))
    maker.make{path = tmpdir .. "/c.svm", rows = 300, features = 50, seed = 4, part = 1}
    assert.are_not.equal(slurp(tmpdir .. "/a.svm"), slurp(tmpdir .. "/c.svm"))
  end)

  it("runs as a script with arguments, and rejects bad ones", function()
    local ok, code, out = support.run_lua("examples/make_libsvm_data.lua " .. tmpdir .. "/s.svm 40 10 2")
    assert.is_true(ok, out)
    assert.matches("wrote .*s%.svm: 40 rows, 10 features, %d+ positive", out)
    local X = du.load_svmlight_file(tmpdir .. "/s.svm", {n_features = 10})
    assert.are.same({40, 10}, X.shape)
    ok, code, out = support.run_lua("examples/make_libsvm_data.lua " .. tmpdir .. "/t.svm x")
    assert.is_falsy(ok)
    assert.are.equal(2, code)
    assert.matches("argument 2 must be a positive integer, got 'x'", out)
  end)
end)

describe("examples/libsvm_classifier.lua", function()
  it("trains from a streamed .gz file, logs a CSV row per epoch and draws the plot", function()
    local out = tmpdir .. "/ex"
    local r = run_example("examples/libsvm_classifier.lua", out)
    assert.are.equal(6, r.epochs)
    assert.is_true(r.last_loss < r.first_loss, r.first_loss .. " -> " .. r.last_loss)
    assert.is_true(r.val_accuracy > 0.75, tostring(r.val_accuracy))
    local csv = slurp(r.csv)
    local lines = {}
    for l in csv:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal(7, #lines)
    -- "epoch" then the log keys sorted; loss and the validation metrics among them
    local head = {}
    for k in lines[1]:gmatch("[^,]+") do head[#head + 1] = k end
    assert.are.equal("epoch", table.remove(head, 1))
    local sorted = {table.unpack(head)}
    table.sort(sorted)
    assert.are.same(sorted, head)
    local set = {}
    for _, k in ipairs(head) do set[k] = true end
    assert.is_true(set.loss and set.val_loss and set.val_accuracy, lines[1])
    for i = 2, 7 do assert.matches("^" .. (i - 1) .. ",", lines[i]) end
    local plot = slurp(r.plot)
    if r.plot:match("%.png$") then
      assert.are.equal("\137PNG", plot:sub(1, 4))
    else
      assert.truthy(plot:find("<svg", 1, true))
    end
    if r.checkpoint then assert.truthy(io.open(r.checkpoint)) end
  end)
end)

describe("models with a LibSVMIter", function()
  local path = tmpdir .. "/m.svm"
  local function model_for(features)
    keras.random.seed(5)
    local m = keras.Sequential{
      keras.layers.Input{shape = {features}, sparse = true},
      keras.layers.Dense{units = 1, activation = "sigmoid"},
    }
    m:compile{optimizer = "adam", loss = "binary_crossentropy", metrics = {"accuracy"}}
    return m
  end

  it("fit(iter) trains (loss goes down) and gives the same weights as the same batches in memory", function()
    dofile("examples/make_libsvm_data.lua").make{path = path, rows = 256, features = 30, seed = 9}
    local it = du.LibSVMIter{path = path, n_features = 30, batch_size = 32}
    local m = model_for(30)
    local h = m:fit(it, nil, {epochs = 4, verbose = 0})
    assert.are.equal(4, #h.history.loss)
    assert.is_true(h.history.loss[4] < h.history.loss[1])
    -- the same batches in memory, in file order (shuffle=false)
    local X, y = du.load_svmlight_file(path, {n_features = 30})
    local m2 = model_for(30)
    local h2 = m2:fit(X, y, {epochs = 4, verbose = 0, batch_size = 32, shuffle = false})
    support.assert_near(h.history.loss, h2.history.loss, 1e-5)
    support.assert_near(m:get_weights()[1]:totable(), m2:get_weights()[1]:totable(), 1e-5)
  end)

  it("evaluate(iter) and predict(iter) match the in-memory data", function()
    dofile("examples/make_libsvm_data.lua").make{path = path, rows = 100, features = 30, seed = 9}
    local it = du.LibSVMIter{path = path, n_features = 30, batch_size = 16}
    local X, y = du.load_svmlight_file(path, {n_features = 30})
    local m = model_for(30)
    local loss, mt = m:evaluate(it)   -- an error here fails the spec
    assert.is_number(loss)
    assert.is_number(mt.accuracy)
    local loss2, mt2 = m:evaluate(X, y, {batch_size = 16})
    support.assert_near(loss, loss2, 1e-5)
    support.assert_near(mt.accuracy, mt2.accuracy, 1e-6)
    local p = m:predict(it)
    support.assert_near(p:totable(), m:predict(X):totable(), 1e-6)
  end)
end)
