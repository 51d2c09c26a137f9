-- spec/lua_api_regressions_spec.lua: each finding of the Lua API fuzzer (spec/fuzz/lua_api_fuzz.lua)
-- fixed, as a case: the bad call raises a clean error naming the function and the problem.
local keras = require("keras")
local K = keras.backend

local function fails_with(sub, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.equal("string", type(err))
  assert(err:find(sub, 1, true), string.format("message %q lacks %q", err, sub))
  return err
end

describe("K.concatenate", function()
  it("ignores a lying __len (was a near-endless loop: lua_api_fuzz seed 9)", function()
    local list = setmetatable({keras.ones{2}, keras.ones{3}}, {__len = function() return 1e300 end})
    assert.same({5}, K.concatenate(list).shape)
    fails_with("bad argument #1 to 'concatenate' (keras.Tensor expected, got number)", K.concatenate,
      setmetatable({1, 2}, {__len = function() return math.maxinteger end}))
  end)
end)

describe("K.dot", function()
  it("refuses options that are not a table (was 'attempt to index a string value')", function()
    fails_with("dot: options must be a table (got string)", K.dot, keras.ones{2, 2}, keras.ones{2, 2},
      "transpose_a")
    fails_with("dot: options must be a table (got number)", K.dot, keras.ones{2, 2}, keras.ones{2, 2}, 1)
  end)
end)

describe("saving", function()
  it("refuses a non-model (was 'attempt to call a nil value (method _weight_layers)')", function()
    local layer = keras.layers.Dense{units = 1}
    fails_with("save_weights: expected a keras model (got table)", keras.saving.save_weights, layer, "x.klw")
    fails_with("save_model: expected a keras model (got number)", keras.saving.save_model, 1, "x.klm")
    fails_with("load_weights: expected a keras model (got nil)", keras.saving.load_weights, nil, "x.klw")
    fails_with("save_model: expected a keras model (got nil)", keras.saving.architecture, nil)
    fails_with("layer_config: expected a keras layer (got boolean)", keras.saving.layer_config, true)
  end)
end)

describe("optimizer get/set", function()
  it("name a non-string key (was a C 'bad argument' with a Lua position)", function()
    local o = keras.optimizers.SGD{}
    fails_with("get: the option name must be a string (got nil)", o.get, o)
    fails_with("set: the option name must be a string (got table)", o.set, o, {}, 1)
  end)
end)

describe("warn", function()
  it("prints any value (was 'bad argument #2 to write')", function()
    local ok = pcall(keras.data_utils.warn, keras.ones{1})
    assert.is_true(ok)
    assert.is_true((pcall(keras.utils.warn, nil)))
  end)
end)

describe("axis arguments", function()
  it("math.mininteger is out of range, not a signed overflow (UBSan in kl_lua_checkaxis)", function()
    local t = keras.ones{2, 3}
    fails_with("sum: axis -9223372036854775808 out of range for a 2-d tensor", K.sum, t, math.mininteger)
    fails_with("axis 9223372036854775807 out of range for a 2-d tensor", K.mean, t, math.maxinteger)
    fails_with("concatenate: axis -9223372036854775808 out of range", K.concatenate, {t, t}, math.mininteger)
    assert.same({2}, K.sum(t, -1).shape)
  end)
  it("row indices at math.mininteger in retain are out of range (UBSan in list_index_buffer)", function()
    local R = keras.array({{1, 2}, {3, 4}}):tostype("row_sparse")
    fails_with("retain: indices[1] = ", keras.sparse.retain, R, {math.maxinteger, math.mininteger})
  end)
end)

describe("K.variable", function()
  it("names a non-string stype (was a C 'bad argument' from tostype)", function()
    fails_with("variable: stype must be a string (got table)", K.variable, keras.ones{2, 2}, {stype = {}})
  end)
end)

-- ------------------------------------------------------------ strict-mode findings: each was a
-- Lua runtime error positioned inside keras/*.lua ("attempt to index a nil value"...)
local L = keras.layers

describe("layer:call and layer:build", function()
  it("refuse a non-node input by name and value (was layers.lua:351 'attempt to index')", function()
    local d = L.Dense{units = 2}
    fails_with("Dense: call expects a graph node (keras.layers.Input or a layer output). Received: inputs=nil",
      d.call, d, nil)
    fails_with("Received: inputs=5", d.call, d, 5)
    fails_with("Received: inputs=a keras.Tensor of shape (2, 3)", d.call, d, keras.ones{2, 3})
    local f = L.Flatten{}
    fails_with("Flatten: call expects a graph node", f.call, f, "x")
    local dr = L.Dropout{rate = 0.5}
    fails_with("Dropout: call expects a graph node", dr.call, dr, {})
  end)
  it("refuse calling an unbuilt layer directly (was layers.lua:159 'attempt to index a nil value')", function()
    local d = L.Dense{units = 2}
    local x = L.Input{shape = {3}}
    fails_with("Dense: layer '" .. d.name .. "' is not built: call it on an input node (layer(x)) or " ..
      "build(input_shape) first", d.call, d, x)
    local e = L.Embedding{input_dim = 5, output_dim = 2}
    fails_with("Embedding: layer '" .. e.name .. "' is not built", e.call, e, L.Input{shape = {3}})
  end)
  it("take a list only where the layer is multi-input", function()
    local x = L.Input{shape = {3}}
    local d = L.Dense{units = 2}
    d(x)
    fails_with("Dense: call expects one input node. Received: inputs={a graph node of shape (None, 3), a graph node of shape (None, 3)}",
      d.call, d, {x, x})
    local c = L.Concatenate{}
    fails_with("Concatenate: call expects a list of input nodes. Received: inputs=a graph node",
      c.call, c, x)
  end)
  it("build refuses a non-shape (was layers.lua:335, 373, 440, 450 'attempt to get length')", function()
    local d = L.Dense{units = 2}
    fails_with("Dense: build expects an input shape (integers, -1 for an unknown dimension). " ..
      "Received: input_shape=5", d.build, d, 5)
    fails_with("Received: input_shape=nil", d.build, d, nil)
    fails_with("Received: input_shape={2, '3'}", d.build, d, {2, "3"})
    local e = L.Embedding{input_dim = 5, output_dim = 2}
    fails_with("Embedding: build expects an input shape", e.build, e, coroutine.create(print))
    local g = L.GlobalAveragePooling1D{}
    fails_with("GlobalAveragePooling1D: build expects an input shape", g.build, g, nil)
    local c = L.Concatenate{}
    fails_with("Concatenate: build expects a list of input shapes (integers, -1 for an unknown " ..
      "dimension). Received: input_shape={-1, 3}", c.build, c, {-1, 3})
    fails_with("Concatenate: build expects a list of input shapes", c.build, c, 7)
  end)
  it("build once: then call works and a second build is refused", function()
    local d = L.Dense{units = 2}
    d:build({-1, 3})
    assert.is_true(d.built)
    assert.equal(2, #d.weights)
    fails_with("Dense: layer '" .. d.name .. "' is already built", d.build, d, {-1, 3})
    local y = d:call(L.Input{shape = {3}})
    assert.same({-1, 2}, y.shape)
    assert.same({-1, 2}, d(L.Input{shape = {3}}).shape)
    assert.equal(2, #d.weights)
  end)
  it("a cyclic or deep table in a message is cut short (was a stack overflow in repr)", function()
    local cyc = {1}
    cyc[2] = cyc
    fails_with("Received: input_shape={1, {1, {...}}}", L.Dense{units = 1}.build, L.Dense{units = 1}, cyc)
    local lying = setmetatable({1, 2}, {__len = function() return 2.5 end, __index = function() error("boom") end})
    fails_with("Dense: units must be a positive integer. Received: units={1, 2}", L.Dense, {units = lying})
  end)
end)

describe("layers.define", function()
  it("names its arguments (was layers.lua:126 'table index is nil')", function()
    fails_with("layers.define: name must be a non-empty string. Received: name=5", L.define, 5, {}, print)
    fails_with("layers.define: name must be a non-empty string. Received: name=nil", L.define)
    fails_with("layers.define: allowed must be a table of option names. Received: allowed='x'",
      L.define, "MyLayerA", "x", print)
    fails_with("layers.define: init must be a function(self, opts). Received: init=nil",
      L.define, "MyLayerA", {})
    fails_with("layers.define: the name 'Dense' is taken by keras.layers.Dense", L.define, "Dense", {}, print)
    fails_with("layers.define: the name 'Input' is taken", L.define, "Input", {}, print)
  end)
  it("a defined layer's call and build check their argument too", function()
    local My = L.define("StrictSpecDouble", {}, function() end)
    function My:call(x) return x * 2 end
    local m = My{}
    fails_with("StrictSpecDouble: call expects a graph node", m.call, m, 3)
    local x = L.Input{shape = {2}}
    assert.same({-1, 2}, m(x).shape)
  end)
end)

describe("Model:set_weights and Layer:set_weights", function()
  it("count a list by its own length, not a lying __len (was models.lua:16 'format' error)", function()
    local m = keras.Sequential{L.Input{shape = {2}}, L.Dense{units = 1}}
    local lying = setmetatable({keras.zeros{2, 1}}, {__len = function() return 2.5 end})
    fails_with("Model.set_weights: the model has 2 weight(s), got 1", m.set_weights, m, lying)
    fails_with("Model.set_weights: expected a list of tensors. Received: weights=7", m.set_weights, m, 7)
    local d = m:get_layer(1)
    fails_with("Dense: set_weights expected 2 weight(s), got 1", d.set_weights, d, lying)
  end)
end)

describe("keras.Sequential", function()
  it("refuses a non-list (was models.lua:108 'attempt to index a number value')", function()
    fails_with("Sequential: expects a list of layers (or {layers = {...}, name = ...}). Received: 5",
      keras.Sequential, 5)
    fails_with("Received: a function", keras.Sequential, print)
    fails_with("Received: a keras.Tensor of shape (2,)", keras.Sequential, keras.ones{2})
    fails_with("Sequential: expects a list of layers", keras.Sequential, L.Dense{units = 1})
    fails_with("Sequential: layers must be a list of layers. Received: layers='x'", keras.Sequential,
      {layers = "x"})
    fails_with("Sequential: name must be a string. Received: name=3", keras.Sequential, {name = 3})
  end)
end)

describe("Model:summary", function()
  it("refuses a print_fn that is not a function (was models.lua:569 'attempt to call')", function()
    local m = keras.Sequential{L.Input{shape = {2}}, L.Dense{units = 1}}
    fails_with("Model.summary: print_fn must be a function. Received: print_fn=a keras.Tensor of shape (1,)",
      m.summary, m, keras.ones{1})
    fails_with("Model.summary: print_fn must be a function. Received: print_fn='x'", m.summary, m, "x")
    fails_with("Model.summary: expects a keras model (model:summary()). Received: 3", m.summary, 3)
    local lines = {}
    m:summary(function(s) lines[#lines + 1] = s end)
    assert.truthy(lines[1]:find('Model: "', 1, true))
  end)
end)

describe("autograd", function()
  it("attach_grad and backward name a non-tensor (was autograd.lua:55, 70 'attempt to index')", function()
    fails_with("attach_grad: expects a keras.Tensor (t:attach_grad{...}). Received: t=nil",
      keras.autograd.attach_grad, nil)
    fails_with("attach_grad: expects a keras.Tensor (t:attach_grad{...}). Received: t={1, 2}",
      keras.autograd.attach_grad, {1, 2})
    fails_with("backward: expects a keras.Tensor (loss:backward()). Received: loss=nil",
      keras.autograd.backward, nil)
    fails_with("backward: expects a keras.Tensor (loss:backward()). Received: loss=a thread",
      keras.autograd.backward, coroutine.create(print))
    fails_with("attach_grad: gradients need a float tensor. Received: a tensor of dtype int64",
      keras.autograd.attach_grad, keras.array({1, 2}, {dtype = "int64"}))
  end)
end)

describe("callbacks", function()
  local cb = keras.callbacks
  it("Callback(opts) refuses a non-table (was callbacks.lua:39 'bad argument to for iterator')", function()
    fails_with("Callback: expects a table of hooks (on_epoch_end = function(self, epoch, logs) ...). " ..
      "Received: 5", cb.Callback, 5)
    fails_with("Received: a keras.Tensor of shape (2,)", cb.Callback, keras.ones{2})
    fails_with("Received: 'x'", cb.Callback, "x")
    fails_with("Callback: on_epoch_end must be a function. Received: on_epoch_end=3", cb.Callback,
      {on_epoch_end = 3})
    assert.is_true(cb.is_callback(cb.Callback{on_epoch_end = function() end}))
  end)
  it("ProgbarLogger(opts) checks its options (was callbacks.lua:307 'attempt to index')", function()
    fails_with("ProgbarLogger: options must be a table. Received: 3", cb.ProgbarLogger, 3)
    fails_with("ProgbarLogger: unknown option 'bogus'", cb.ProgbarLogger, {bogus = 1})
    fails_with("ProgbarLogger: verbose must be 1 or 2. Received: verbose=0", cb.ProgbarLogger, {verbose = 0})
    fails_with("ProgbarLogger: out must be an open file", cb.ProgbarLogger, {out = 1})
    local p = cb.ProgbarLogger{verbose = 2}
    fails_with("ProgbarLogger: on_epoch_begin needs params", p.on_epoch_begin, p, 1)
    fails_with("ProgbarLogger: on_batch_end needs params", p.on_batch_end, p, 1, {})
    fails_with("ProgbarLogger: set_params expects params.epochs to be an integer. Received: epochs=nil",
      p.set_params, p, {})
    p:set_params{epochs = 1, samples = 4, metrics = {"loss"}}
    fails_with("ProgbarLogger: on_batch_end before on_epoch_begin", p.on_batch_end, p, 1, {})
    fails_with("ProgbarLogger: on_epoch_end expects logs to be a table. Received: logs=5", p.on_epoch_end, p, 1, 5)
  end)
  it("on_epoch_begin / on_epoch_end name bad logs and a missing model (was callbacks.lua:91, 139, 182)", function()
    local h = cb.History()
    fails_with("History: on_epoch_end expects logs to be a table. Received: logs=a function",
      h.on_epoch_end, h, 1, print)
    h:on_epoch_end(1, {loss = 0.5})
    assert.same({0.5}, h.history.loss)
    local e = cb.EarlyStopping{monitor = "loss"}
    fails_with("EarlyStopping: on_epoch_end expects logs to be a table. Received: logs='x'",
      e.on_epoch_end, e, 1, "x")
    fails_with("EarlyStopping: on_epoch_end expects logs['loss'] to be a number. Received: 'x'",
      e.on_epoch_end, e, 1, {loss = "x"})
    fails_with("EarlyStopping: on_epoch_end needs a model (fit sets it; or call set_model(model) first)",
      e.on_epoch_end, e, 1, {loss = 1})
    local s = cb.LearningRateScheduler{schedule = function(_, lr) return lr end}
    fails_with("LearningRateScheduler: on_epoch_begin needs a model", s.on_epoch_begin, s, 1)
    s:set_model({})
    fails_with("LearningRateScheduler: on_epoch_begin needs a compiled model (the model has no optimizer)",
      s.on_epoch_begin, s, 1)
    fails_with("LearningRateScheduler: on_epoch_end expects logs to be a table. Received: logs=2",
      s.on_epoch_end, s, 1, 2)
    fails_with("Callback: set_model expects a keras model. Received: model=5", cb.Callback{}.set_model,
      cb.Callback{}, 5)
    fails_with("EarlyStopping: set_params: params must be a table. Received: params=nil", e.set_params, e, nil)
  end)
end)

describe("more layer methods", function()
  it("a list of inputs with a lying __len is measured raw (was layers.lua:263 'attempt to compare')", function()
    local x = L.Input{shape = {3}}
    local d = L.Dense{units = 1}
    d(x)
    local lying = setmetatable({x, x}, {__len = function() return "x" end})
    fails_with("Dense: call expects one input node. Received: inputs={a graph node", d.call, d, lying)
    local c = L.Concatenate{}
    assert.same({-1, 6}, c(lying).shape)
  end)
  it("check_input checks its shape and needs a built layer (was 'attempt to get length')", function()
    local d = L.Dense{units = 2}
    fails_with("Dense: layer '" .. d.name .. "' is not built: check_input compares with the shape it was built for",
      d.check_input, d, {-1, 3})
    d:build({-1, 3})
    fails_with("Dense: check_input expects an input shape (integers, -1 for an unknown dimension). " ..
      "Received: input_shape=nil", d.check_input, d, nil)
    fails_with("Dense: input 1 of layer '" .. d.name .. "' is incompatible with the layer: expected axis -1 " ..
      "of input shape to have value 3, but received input with shape (None, 4)", d.check_input, d, {-1, 4})
    local g = L.GlobalAveragePooling1D{}
    g:build({-1, 2, 3})
    fails_with("GlobalAveragePooling1D: check_input expects an input shape", g.check_input, g, 5)
  end)
  it("add_weight names a bad name, shape, initializer or option (was 'attempt to call a nil value')", function()
    local d = L.Dense{units = 2}
    local fn = "Dense: add_weight"
    fails_with(fn .. ": name must be a string. Received: name=1", d.add_weight, d, 1, {2}, "zeros")
    fails_with(fn .. ": shape must be a table of integers >= 0. Received: shape={2, -1}", d.add_weight, d, "w",
      {2, -1}, "zeros")
    fails_with(fn .. ": unknown initializer 'nil'", d.add_weight, d, "w", {2})
    fails_with(fn .. ": unknown option 'bogus'", d.add_weight, d, "w", {2}, "zeros", {bogus = 1})
    fails_with(fn .. ": stype must be 'default' or 'row_sparse'. Received: stype='csr'", d.add_weight, d, "w",
      {2}, "zeros", {stype = "csr"})
    fails_with(fn .. ": the initializer of 'w' must return a tensor of shape (2,). Received: 5", d.add_weight, d,
      "w", {2}, function() return 5 end)
    fails_with("add_weight: expects a layer (layer:add_weight(...)). Received: 5", d.add_weight, 5, "w", {2})
    local w = d:add_weight("w", {2, 3}, "ones")
    assert.same({{1, 1, 1}, {1, 1, 1}}, w:totable())
  end)
end)

describe("K.placeholder and graph nodes", function()
  it("ndim must be a small integer (was symbolic.lua:254 'bad for limit', and 1e300 a hang)", function()
    fails_with("placeholder: ndim must be an integer in [0, 8]. Received: ndim='x'", K.placeholder, {ndim = "x"})
    fails_with("placeholder: ndim must be an integer in [0, 8]. Received: ndim=1e+300", K.placeholder,
      {ndim = 1e300})
    assert.same({-1, -1}, K.placeholder{ndim = 2}.shape)
  end)
  it("a table given the node metatable is not a node (was symbolic.lua:54, 84 'attempt to index')", function()
    local x = K.placeholder{shape = {-1, 3}}
    local forged = setmetatable({}, getmetatable(x))
    fails_with("kind: expected a graph node (K.placeholder, keras.layers.Input or an op on them). Received: 5",
      x.kind, 5)
    fails_with("node: expected a graph node", function() return forged.shape end)
    assert.is_false(K.is_placeholder(forged))
    assert.equal("placeholder", x:kind())
  end)
end)

describe("ModelCheckpoint and CSVLogger hooks", function()
  it("name bad logs, a bad epoch and a missing model (was callbacks_io.lua:98, 89)", function()
    local mc = keras.callbacks.ModelCheckpoint{filepath = os.tmpname() .. "_{epoch}.klm"}
    fails_with("ModelCheckpoint: on_epoch_end expects logs to be a table. Received: logs=5", mc.on_epoch_end, mc, 1, 5)
    fails_with("ModelCheckpoint: on_epoch_end expects an integer epoch. Received: epoch=x", mc.on_epoch_end, mc, "x", {})
    fails_with("ModelCheckpoint: on_epoch_end needs a model (fit sets it; or call set_model(model) first)",
      mc.on_epoch_end, mc, 1, {})
    fails_with("ModelCheckpoint: verbose must be a number. Received: verbose=x", keras.callbacks.ModelCheckpoint,
      {filepath = "a", verbose = "x"})
    local path = os.tmpname()
    local csv = keras.callbacks.CSVLogger{filename = path}
    fails_with("CSVLogger: on_epoch_end expects logs to be a table. Received: logs='x'", csv.on_epoch_end, csv, 1, "x")
    csv:on_epoch_end(1, {loss = 0.5})
    csv:on_train_end()
    os.remove(path)
  end)
end)

describe("EarlyStopping with its monitor missing from the logs", function()
  it("warns through keras.utils.warn (was a raw io.stderr write) and keys of any type are listed", function()
    local got = {}
    local saved = keras.utils.warn
    keras.utils.warn = function(m) got[#got + 1] = m end
    local e = keras.callbacks.EarlyStopping{monitor = "val_loss"}
    local ok, err = pcall(e.on_epoch_end, e, 1, {loss = 1, [2] = 3})
    keras.utils.warn = saved
    assert(ok, err)
    assert.same({"EarlyStopping: monitor 'val_loss' is not available (available: 2, loss); skipping"}, got)
  end)
end)
