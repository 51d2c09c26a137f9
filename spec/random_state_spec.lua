-- spec/random_state_spec.lua: the generator's state travels in model files, so a checkpoint
-- resumed with load_model(path, {resume = true}) shuffles as the uninterrupted run did.
local keras = require("keras")
local K, L = keras.backend, keras.layers

describe("random.get_state / set_state", function()
  it("set_state(get_state()) replays the stream, normals' spare included", function()
    keras.random.seed(3)
    keras.random.normal({1}) -- leaves a Box-Muller spare
    local s = keras.random.get_state()
    assert.matches("^%x+ %x+ %x+ %x+ 1 %x+$", s)
    local a = keras.random.normal({5}):totable()
    keras.random.set_state(s)
    assert.are.same(a, keras.random.normal({5}):totable())
  end)
  it("refuses what it did not make", function()
    for _, bad in ipairs({"", "1 2 3", "0 0 0 0 0 0", "a b c d 2 0", "1 2 3 4 0 0 extra"}) do
      assert.has_error(function() keras.random.set_state(bad) end,
        "random.set_state: not a state from random.get_state: '" .. bad .. "'")
    end
  end)
end)

describe("training position in model files", function()
  local X = keras.sparse.rand({40, 12}, "csr", 0.3, {seed = 1})
  local Y = K.dot(X, keras.ones({12, 1}))
  local function build()
    keras.random.seed(9)
    local m = keras.Sequential{L.Input{shape = {12}, sparse = true}, L.Dense{units = 1, sparse_weight = true}}
    m:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.05}, loss = "mse"}
    return m
  end
  local function w(m) return m:get_weights()[1]:totable() end

  it("a shuffled fit resumed from its epoch-2 checkpoint equals the uninterrupted one", function()
    local full = build()
    full:fit(X, Y, {batch_size = 8, epochs = 4, verbose = 0})
    local path = os.tmpname()
    local part = build()
    part:fit(X, Y, {batch_size = 8, epochs = 2, verbose = 0,
      callbacks = {keras.callbacks.ModelCheckpoint{filepath = path}}})
    keras.random.seed(4242) -- another process
    local m = keras.models.load_model(path, {resume = true})
    assert.are.equal(2, m.epoch)
    m:fit(X, Y, {batch_size = 8, epochs = 4, initial_epoch = m.epoch, verbose = 0})
    assert.are.same(w(full), w(m))
    -- without resume the generator is left alone: other shuffles, other weights
    keras.random.seed(4242)
    local m2 = keras.models.load_model(path)
    assert.are.equal(2, m2.epoch)
    m2:fit(X, Y, {batch_size = 8, epochs = 4, initial_epoch = m2.epoch, verbose = 0})
    assert.are_not.same(w(full), w(m2))
    os.remove(path)
  end)

  it("load_model's options are checked", function()
    local path = os.tmpname()
    build():save(path)
    assert.has_error(function() keras.models.load_model(path, {resum = true}) end,
      "load_model: unknown option 'resum'")
    assert.are.equal(0, keras.models.load_model(path).epoch)
    os.remove(path)
  end)
end)
