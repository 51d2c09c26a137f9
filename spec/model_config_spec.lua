-- spec/model_config_spec.lua: model:get_config(), model:to_json(), keras.models.model_from_json
-- (Keras 2's model JSON layout) and models that share a layer (two-tower: one Dense or
-- Embedding applied to two inputs) saved and loaded with their architecture.
local keras = require("keras")
local json = require("keras.json")
local saving = require("keras.saving")
local L = keras.layers

local tmp = os.tmpname()
os.remove(tmp)
local function path(name) return tmp .. "_" .. name end

local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return err
end

-- user and item vectors through one Dense tower, concatenated, a sigmoid head.
local function two_tower()
  keras.random.seed(5)
  local a = L.Input{shape = {4}, name = "user"}
  local b = L.Input{shape = {4}, name = "item"}
  local tower = L.Dense{units = 3, activation = "relu", name = "tower"}
  local merged = L.Concatenate{name = "cat"}({tower(a), tower(b)})
  local out = L.Dense{units = 1, activation = "sigmoid", name = "head"}(merged)
  return keras.Model{inputs = {a, b}, outputs = out, name = "two_tower"}
end

local TWO_TOWER_JSON = '{"backend":"keras-lua","class_name":"Model","config":{' ..
  '"input_layers":[["user",0,0],["item",0,0]],"layers":[' ..
  '{"class_name":"InputLayer","config":{"batch_input_shape":[null,4],"dtype":"float32",' ..
  '"name":"user","sparse":false},"inbound_nodes":[],"name":"user"},' ..
  '{"class_name":"InputLayer","config":{"batch_input_shape":[null,4],"dtype":"float32",' ..
  '"name":"item","sparse":false},"inbound_nodes":[],"name":"item"},' ..
  '{"class_name":"Dense","config":{"activation":"relu","dtype":"float32","name":"tower",' ..
  '"sparse_weight":false,"trainable":true,"units":3,"use_bias":true},' ..
  '"inbound_nodes":[[["user",0,0,{}]],[["item",0,0,{}]]],"name":"tower"},' ..
  '{"class_name":"Concatenate","config":{"axis":-1,"dtype":"float32","name":"cat","trainable":true},' ..
  '"inbound_nodes":[[["tower",0,0,{}],["tower",1,0,{}]]],"name":"cat"},' ..
  '{"class_name":"Dense","config":{"activation":"sigmoid","dtype":"float32","name":"head",' ..
  '"sparse_weight":false,"trainable":true,"units":1,"use_bias":true},' ..
  '"inbound_nodes":[[["cat",0,0,{}]]],"name":"head"}],' ..
  '"name":"two_tower","output_layers":[["head",0,0]]},"keras_version":"2.2.4"}'

describe("model:get_config / to_json / keras.models.model_from_json", function()
  it("writes Keras 2's layout: the shared layer has one node per call", function()
    local m = two_tower()
    assert.are.equal(TWO_TOWER_JSON, m:to_json())
    local c = m:get_config()
    assert.are.equal("two_tower", c.name)
    assert.are.equal(5, #c.layers)
    assert.are.same({{"user", 0, 0}, {"item", 0, 0}}, c.input_layers)
    assert.are.equal(2, #c.layers[3].inbound_nodes)
    assert.are.equal("item", c.layers[3].inbound_nodes[2][1][1])
  end)

  it("round-trips: the same JSON, the same outputs with the same weights", function()
    local m = two_tower()
    local m2 = keras.models.model_from_json(m:to_json())
    assert.are.equal(m:to_json(), m2:to_json())
    assert.are.equal(4, #m2:get_weights()) -- tower kernel, bias, head kernel, bias
    m2:set_weights(m:get_weights())
    keras.random.seed(9)
    local u, v = keras.random.normal({6, 4}), keras.random.normal({6, 4})
    assert.are.same(m:predict({u, v}):totable(), m2:predict({u, v}):totable())
    -- model_from_config takes the decoded table
    local m3 = keras.models.model_from_config(json.decode(m:to_json()))
    assert.are.equal(m:to_json(), m3:to_json())
  end)

  it("writes a Sequential model with its input first", function()
    local s = keras.Sequential{L.Input{shape = {5}, sparse = true, name = "x"},
      L.Dense{units = 2, name = "d"}, L.Dropout{rate = 0.5, name = "dr"}, name = "seq"}
    assert.are.equal('{"backend":"keras-lua","class_name":"Sequential","config":{"layers":[' ..
      '{"class_name":"InputLayer","config":{"batch_input_shape":[null,5],"dtype":"float32",' ..
      '"name":"x","sparse":true}},{"class_name":"Dense","config":{"activation":"linear",' ..
      '"dtype":"float32","name":"d","sparse_weight":false,"trainable":true,"units":2,' ..
      '"use_bias":true}},{"class_name":"Dropout","config":{"dtype":"float32","name":"dr",' ..
      '"rate":0.5,"trainable":true}}],"name":"seq"},"keras_version":"2.2.4"}', s:to_json())
    local s2 = keras.models.model_from_json(s:to_json())
    assert.are.equal(s:to_json(), s2:to_json())
    assert.are.equal("csr", s2.inputs[1].stype)
  end)

  it("rebuilds a shared layer whose second call takes a layer listed after it", function()
    keras.random.seed(6)
    local x = L.Input{shape = {4}, name = "x"}
    local d1 = L.Dense{units = 4, name = "d1"}
    local h = L.Dense{units = 4, activation = "tanh", name = "d2"}(d1(x))
    local m = keras.Model{inputs = x, outputs = d1(h), name = "loop"}
    local m2 = keras.models.model_from_json(m:to_json())
    assert.are.equal(m:to_json(), m2:to_json())
    m2:set_weights(m:get_weights())
    local u = keras.random.normal({3, 4})
    assert.are.same(m:predict(u):totable(), m2:predict(u):totable())
  end)

  it("refuses bad JSON and architectures by message", function()
    assert.matches("^model_from_json: json.decode: ", err_of(keras.models.model_from_json, "{"))
    assert.are.equal("model_from_json: expected a JSON string (got nil)", err_of(keras.models.model_from_json))
    assert.are.equal("model_from_json: bad architecture (no layers)",
      err_of(keras.models.model_from_json, '{"class_name":"Model","config":{"layers":[]}}'))
    local bad = TWO_TOWER_JSON:gsub('"class_name":"Concatenate"', '"class_name":"Conv9"')
    assert.are.equal("model_from_json: unknown layer class 'Conv9'", err_of(keras.models.model_from_json, bad))
    bad = TWO_TOWER_JSON:gsub('%[%["cat",0,0,{}%]%]', '[["nope",0,0,{}]]')
    assert.are.equal("model_from_json: layer 'head' takes 'nope', which is not in the model",
      err_of(keras.models.model_from_json, bad))
    bad = TWO_TOWER_JSON:gsub('%[%["cat",0,0,{}%]%]', '[["head",0,0,{}]]')
    assert.are.equal("model_from_json: layer 'head' takes node 0 of 'head', which is never made",
      err_of(keras.models.model_from_json, bad))
    bad = TWO_TOWER_JSON:gsub('%["tower",1,0,{}%]', '["tower",2,0,{}]')
    assert.are.equal("model_from_json: layer 'cat' takes node 2 of 'tower', which is never made",
      err_of(keras.models.model_from_json, bad))
    bad = TWO_TOWER_JSON:gsub('"class_name":"Model"', '"class_name":"Graph"')
    assert.are.equal("model_from_json: unknown model class 'Graph'", err_of(keras.models.model_from_json, bad))
    local lam = keras.Sequential{L.Input{shape = {2}}, L.Lambda{function(t) return t end, name = "lam"}}
    assert.are.equal("to_json: layer 'lam' (Lambda) cannot be saved with the architecture (use save_weights)",
      err_of(lam.to_json, lam))
    assert.are.equal("get_config: expected a keras model (got table)", err_of(saving.get_config, {}))
  end)
end)

describe("models that share a layer", function()
  it("save and load a two-tower model (one Dense on two inputs) bit for bit", function()
    local m = two_tower()
    m:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.01}, loss = "binary_crossentropy"}
    keras.random.seed(7)
    local u, v = keras.random.normal({16, 4}), keras.random.normal({16, 4})
    local y = keras.random.uniform({16, 1})
    m:fit({u, v}, y, {epochs = 2, batch_size = 4, verbose = 0, shuffle = false})
    local p = path("tt.kl")
    m:save(p)
    local m2 = keras.models.load_model(p)
    assert.are.equal(m:to_json(), m2:to_json())
    assert.are.equal(2, #m2:get_layer("tower").inbound)
    assert.are.same(m:predict({u, v}):totable(), m2:predict({u, v}):totable())
    -- training resumes identically (the optimizer state came back too)
    local h1 = m:fit({u, v}, y, {epochs = 1, batch_size = 4, verbose = 0, shuffle = false})
    local h2 = m2:fit({u, v}, y, {epochs = 1, batch_size = 4, verbose = 0, shuffle = false})
    assert.are.equal(h1.history.loss[1], h2.history.loss[1])
    os.remove(p)
  end)

  it("save and load a shared Embedding over two id inputs", function()
    keras.random.seed(8)
    local q = L.Input{shape = {3}, dtype = "int64", name = "query"}
    local d = L.Input{shape = {3}, dtype = "int64", name = "doc"}
    local emb = L.Embedding{input_dim = 10, output_dim = 4, sparse_grad = true, name = "emb"}
    local pool = L.GlobalAveragePooling1D{name = "pool"}
    local both = L.Concatenate{name = "both"}({pool(emb(q)), pool(emb(d))})
    local m = keras.Model{inputs = {q, d}, outputs = L.Dense{units = 1, name = "score"}(both)}
    m:compile{optimizer = "sgd", loss = "mse"}
    local qi = keras.array({{1, 2, 3}, {4, 0, 0}}, {dtype = "int64"})
    local di = keras.array({{9, 8, 7}, {5, 6, 0}}, {dtype = "int64"})
    m:fit({qi, di}, keras.ones({2, 1}), {epochs = 1, verbose = 0})
    local p = path("emb.kl")
    m:save(p)
    local m2 = keras.models.load_model(p)
    assert.are.equal(3, #m2:get_weights()) -- one embedding table, the score kernel and bias
    assert.are.same(m:predict({qi, di}):totable(), m2:predict({qi, di}):totable())
    os.remove(p)
  end)

  it("still loads files written in the first architecture layout", function()
    local legacy = {class_name = "Model", name = "old", format = "keras-lua-model/1",
      layers = {{class_name = "InputLayer", config = {name = "in", shape = {3}, sparse = false, dtype = "float32"}},
        {class_name = "Dense", config = {name = "d", units = 2, use_bias = true, sparse_weight = false,
          activation = "linear", dtype = "float32", trainable = true}, inbound = {"in"}, multi = false}},
      inputs = {"in"}, outputs = {"d"}}
    local m = saving.model_from_architecture(legacy, "load_model: x.kl")
    assert.are.equal("old", m.name)
    assert.are.same({3, 2}, m:get_layer("d").weights[1].shape)
    assert.are.same({{json.null, 3}}, {m:get_config().layers[1].config.batch_input_shape})
  end)
end)
