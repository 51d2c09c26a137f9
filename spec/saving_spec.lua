-- spec/saving_spec.lua: model:save / keras.models.load_model / save_weights / load_weights, resumed training, ModelCheckpoint, SIGKILL during saves.
local keras = require("keras")
local callbacks_io = require("keras.callbacks_io")
local json = require("keras.json")
local L = keras.layers

local tmp = os.tmpname()
os.remove(tmp)
local function path(name) return tmp .. "_" .. name end

local function weights_equal(a, b)
  local wa, wb = a:get_weights(), b:get_weights()
  assert.are.equal(#wa, #wb)
  for i = 1, #wa do
    assert.are.same(wa[i].shape, wb[i].shape)
    assert.are.equal(wa[i].stype, wb[i].stype)
    assert.are.same(wa[i]:totable(), wb[i]:totable())
  end
end

local function data(seed)
  keras.random.seed(seed)
  local x = keras.sparse.rand({48, 20}, "csr", 0.25, {seed = seed})
  local y = keras.random.uniform({48, 1})
  return x, y
end

-- A sparse model: CSR input, row_sparse kernel (lazy Adam), dense head.
local function sparse_model(seed)
  keras.random.seed(seed)
  local m = keras.Sequential{L.Input{shape = {20}, sparse = true},
    L.Dense{units = 5, sparse_weight = true, activation = "relu"}, L.Dense{units = 1, activation = "sigmoid"}}
  m:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.05}, loss = "binary_crossentropy",
    metrics = {"accuracy"}}
  return m
end

describe("model:save / keras.models.load_model", function()
  it("restores architecture, weights and compile config bit for bit", function()
    local x, y = data(1)
    local m = sparse_model(11)
    m:fit(x, y, {epochs = 2, batch_size = 16, verbose = 0, shuffle = false})
    local p = path("m.kl")
    m:save(p)
    local m2 = keras.models.load_model(p)
    weights_equal(m, m2)
    assert.are.same(m:predict(x):totable(), m2:predict(x):totable())
    assert.are.equal("binary_crossentropy", m2.loss_name)
    assert.are.same({"accuracy"}, m2.metric_names)
    assert.are.equal("Adam", m2.optimizer.name)
    assert.are.equal(0.05, m2.optimizer:get_learning_rate())
    assert.are.equal("row_sparse", m2.layers[1].weights[1].stype)
    local l1, e1 = m:evaluate(x, y)
    local l2, e2 = m2:evaluate(x, y)
    assert.are.equal(l1, l2)
    assert.are.equal(e1.accuracy, e2.accuracy)
    os.remove(p)
  end)

  it("continues training exactly as if never stopped (optimizer state and step count)", function()
    local x, y = data(2)
    local a = sparse_model(21)
    a:fit(x, y, {epochs = 4, batch_size = 8, verbose = 0, shuffle = false})
    local b = sparse_model(21)
    b:fit(x, y, {epochs = 2, batch_size = 8, verbose = 0, shuffle = false})
    local p = path("resume.kl")
    b:save(p)
    local c = keras.models.load_model(p)
    c:fit(x, y, {epochs = 2, batch_size = 8, verbose = 0, shuffle = false})
    weights_equal(a, c)
    -- without the optimizer state the result differs (the test can fail)
    local d = sparse_model(21)
    d:load_weights(p)
    d:fit(x, y, {epochs = 2, batch_size = 8, verbose = 0, shuffle = false})
    assert.are_not.same(a:get_weights()[3]:totable(), d:get_weights()[3]:totable())
    os.remove(p)
  end)

  it("resumes an Embedding model (row_sparse gradients, SGD momentum) exactly", function()
    local function build()
      keras.random.seed(8)
      local m = keras.Sequential{L.Embedding{input_dim = 10, output_dim = 4, input_length = 3, sparse_grad = true},
        L.GlobalAveragePooling1D{}, L.Activation{"tanh"}, L.Dense{units = 2, activation = "softmax"}}
      m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1, momentum = 0.9},
        loss = "sparse_categorical_crossentropy", metrics = {"accuracy"}}
      return m
    end
    local x = keras.array({{1, 2, 3}, {4, 0, 9}, {10, 1, 1}, {5, 5, 6}})
    local y = keras.array({1, 2, 1, 2})
    local o = {epochs = 3, verbose = 0, shuffle = false, batch_size = 2}
    local a = build()
    a:fit(x, y, {epochs = 6, verbose = 0, shuffle = false, batch_size = 2})
    local b = build()
    b:fit(x, y, o)
    local p = path("emb.kl")
    b:save(p)
    local c = keras.models.load_model(p)
    c:fit(x, y, o)
    weights_equal(a, c)
    os.remove(p)
  end)

  it("saves a functional model with two inputs", function()
    keras.random.seed(5)
    local xa, xb = L.Input{shape = {6}, name = "left"}, L.Input{shape = {3}, name = "right"}
    local h = L.Concatenate{}({L.Dense{units = 4, activation = "tanh"}(xa), xb})
    local out = L.Dense{units = 2, activation = "softmax"}(L.Dropout{rate = 0.25}(h))
    local m = keras.Model{inputs = {xa, xb}, outputs = out, name = "two"}
    m:compile{optimizer = "sgd", loss = "categorical_crossentropy"}
    local p = path("fn.kl")
    m:save(p)
    local m2 = keras.models.load_model(p)
    assert.are.equal("two", m2.name)
    assert.are.equal(#m.layers, #m2.layers)
    for i, l in ipairs(m.layers) do
      assert.are.equal(l.class_name, m2.layers[i].class_name)
      assert.are.equal(l.name, m2.layers[i].name)
    end
    local u, v = keras.random.normal({5, 6}), keras.random.normal({5, 3})
    assert.are.same(m:predict({u, v}):totable(), m2:predict({u, v}):totable())
    os.remove(p)
  end)

  it("stores the architecture as JSON in __metadata__", function()
    local m = sparse_model(3)
    local p = path("arch.kl")
    m:save(p)
    local _, meta = keras.core.load_tensors(p)
    local arch = json.decode(meta.architecture)
    assert.are.equal("Sequential", arch.class_name)
    assert.are.equal("InputLayer", arch.config.layers[1].class_name)
    assert.is_true(arch.config.layers[1].config.sparse)
    assert.are.same({json.null, 20}, arch.config.layers[1].config.batch_input_shape)
    assert.are.equal("Dense", arch.config.layers[2].class_name)
    assert.are.equal(5, arch.config.layers[2].config.units)
    assert.is_true(arch.config.layers[2].config.sparse_weight)
    assert.are.equal("binary_crossentropy", json.decode(meta.compile).loss)
    os.remove(p)
  end)

  it("refuses what it cannot save or load, by message", function()
    keras.random.seed(1)
    local m = keras.Sequential{L.Input{shape = {2}}, L.Lambda{function(t) return t end}, L.Dense{units = 1}}
    local ok, err = pcall(m.save, m, path("lambda.kl"))
    assert.is_false(ok)
    assert.matches("save_model: layer '.*' %(Lambda%) cannot be saved with the architecture %(use save_weights%)", err)
    local p = path("w.kl")
    m:save_weights(p)
    ok, err = pcall(keras.models.load_model, p)
    assert.are.equal("load_model: " .. p .. ": the file holds weights only (saved by save_weights): " ..
      "build the model and call load_weights", err)
    local other = keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 1}}
    ok, err = pcall(other.load_weights, other, p)
    assert.matches("load_weights: .*: weight 1 %('dense_%d+/kernel' in the file%) has shape %[2,1%], " ..
      "the model's 'dense_%d+/kernel' has %[3,1%]", err)
    local f = assert(io.open(p, "r+b"))
    f:seek("end", -1)
    f:write("\255")
    f:close()
    ok, err = pcall(m.load_weights, m, p)
    assert.matches("^load_weights: .*: crc mismatch for tensor 'dense_%d+/", err)
    ok, err = pcall(keras.models.load_model, path("nope.kl"))
    assert.matches("^load_model: .*nope.kl: cannot open", err)
    os.remove(p)
  end)
end)

describe("save_weights / load_weights", function()
  it("round-trips into a fresh model with other layer names (Keras order)", function()
    local x = data(4)
    local a = sparse_model(41)
    local b = sparse_model(42)
    assert.are_not.same(a:get_weights()[1]:totable(), b:get_weights()[1]:totable())
    local p = path("weights.kl")
    a:save_weights(p)
    b:load_weights(p)
    weights_equal(a, b)
    assert.are.same(a:predict(x):totable(), b:predict(x):totable())
    os.remove(p)
  end)
end)

describe("ModelCheckpoint", function()
  it("formats filepath templates as Python's str.format", function()
    local f = callbacks_io.format_path
    assert.are.equal("ckpt-03-0.12.kl", f("ckpt-{epoch:02d}-{val_loss:.2f}.kl", {epoch = 3, val_loss = 0.123}))
    assert.are.equal("e7_0.5_{x}", f("e{epoch}_{loss}_{{x}}", {epoch = 7, loss = 0.5}))
    assert.are.equal("1.500e+00", f("{loss:.3e}", {loss = 1.5}))
    local ok, err = pcall(f, "m-{val_acc}.kl", {epoch = 1, loss = 2})
    assert.are.equal("ModelCheckpoint: filepath 'm-{val_acc}.kl' uses '{val_acc}' but the logs have " ..
      "no such key (available: epoch, loss)", err)
    ok, err = pcall(f, "{loss:02d}", {loss = 0.5})
    assert.matches("needs an integer", err)
  end)

  it("saves every epoch, or only improvements of the monitored value", function()
    local x, y = data(6)
    local m = sparse_model(61)
    local every = keras.callbacks.ModelCheckpoint{filepath = path("ep{epoch:02d}.kl")}
    local best = keras.callbacks.ModelCheckpoint{filepath = path("best.kl"), monitor = "val_loss",
      save_best_only = true, save_weights_only = true}
    local losses = {}
    local spy = keras.callbacks.Callback{on_epoch_end = function(_, e, logs) losses[e] = logs.val_loss end}
    m:fit(x, y, {epochs = 3, batch_size = 16, verbose = 0, shuffle = false, validation_data = {x, y},
      callbacks = {every, best, spy}})
    for e = 1, 3 do
      local p = path(string.format("ep%02d.kl", e))
      assert.is_not_nil(io.open(p, "rb"))
      keras.models.load_model(p)
      os.remove(p)
    end
    local bestv = math.min(losses[1], losses[2], losses[3])
    assert.are.equal(bestv, best.best)
    local m2 = sparse_model(62)
    m2:load_weights(path("best.kl"))
    if bestv == losses[3] then weights_equal(m, m2) end
    assert.are.equal(bestv, (m2:evaluate(x, y, {batch_size = 16})))
    os.remove(path("best.kl"))
    local ok, err = pcall(keras.callbacks.ModelCheckpoint, {filepath = "x", mode = "up"})
    assert.are.equal("ModelCheckpoint: mode must be 'auto', 'min' or 'max'. Received: mode=up", err)
    assert.are.equal("max", keras.callbacks.ModelCheckpoint{filepath = "x", monitor = "val_accuracy"}.mode)
  end)
end)

describe("atomic saves", function()
  it("always leave a loadable file when the saving process is killed (SIGKILL, 20 times)", function()
    local p = path("killed.kl")
    local child = path("child.lua")
    local f = assert(io.open(child, "w"))
    f:write([[
      local keras = require("keras")
      require("keras.saving")
      local L = keras.layers
      keras.random.seed(1)
      local path = arg[1]
      local m = keras.models.load_model(path)
      local x, y = keras.random.normal({8, 200}), keras.random.normal({8, 1})
      while true do
        m:train_on_batch(x, y)
        m:save(path)
      end
    ]])
    f:close()
    do
      keras.random.seed(1)
      local m = keras.Sequential{L.Input{shape = {200}}, L.Dense{units = 300}, L.Dense{units = 1}}
      m:compile{optimizer = "adam", loss = "mse"}
      m:train_on_batch(keras.random.normal({8, 200}), keras.random.normal({8, 1}))
      m:save(p)
    end
    math.randomseed(12345)
    local lua = os.getenv("KL_LUA") or "lua5.4"
    local steps = {}
    for round = 1, 20 do
      local h = io.popen(lua .. " " .. child .. " " .. p .. " >/dev/null 2>&1 & echo $!")
      local pid = h:read("l")
      h:close()
      assert.matches("^%d+$", pid)
      os.execute(string.format("sleep %.3f", 0.15 + math.random() * 0.35))
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      -- wait until it is dead (gone, or a zombie not yet reaped)
      for _ = 1, 500 do
        local st = io.open("/proc/" .. pid .. "/stat", "r")
        local state = st and st:read("a"):match("^%d+ %b() (%a)")
        if st then st:close() end
        if not state or state == "Z" or state == "X" then break end
        os.execute("sleep 0.01")
      end
      local ok, m = pcall(keras.models.load_model, p)
      assert(ok, "round " .. round .. ": " .. tostring(m))
      assert.are.equal(2, #m.layers)
      local _, meta = keras.core.load_tensors(p)
      steps[#steps + 1] = json.decode(meta.optimizer_state).step
    end
    -- the children really saved (training steps grow), so kills landed among the saves
    local grew = 0
    for i = 2, #steps do if steps[i] > steps[i - 1] then grew = grew + 1 end end
    assert.is_true(steps[#steps] > 20 and grew >= 10, "steps: " .. table.concat(steps, ","))
    -- a killed save may leave its temp file; the target itself was never torn
    local dir, base = p:match("^(.*)/([^/]+)$")
    os.execute("rm -f " .. dir .. "/." .. base .. ".tmp-* " .. p .. " " .. child)
  end)
end)
