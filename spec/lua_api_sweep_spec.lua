-- spec/lua_api_sweep_spec.lua: every public function of the keras modules and every public
-- method of a layer, model, optimizer, iterator and callback, called with each pair of small
-- bad values (nil, numbers, strings, tables, a tensor, a function, a table with a lying
-- __len...): each call returns or raises a message, never a Lua runtime error positioned
-- inside keras/*.lua (the deterministic complement of the random spec/fuzz/lua_api_fuzz.lua).
local keras = require("keras")
local K, L = keras.backend, keras.layers

local INTERNAL = "keras/[%w_]+%.lua:%d+:"

describe("the public Lua API on small bad values", function()
  local scratch, saved_print, saved_warn
  setup(function()
    scratch = os.tmpname()
    os.remove(scratch)
    os.execute("mkdir -p '" .. scratch .. "'")
    saved_print, saved_warn = _G.print, keras.utils.warn
    _G.print = function() end               -- summary() and verbose callbacks print
    keras.utils.warn = function() end
  end)
  teardown(function()
    _G.print, keras.utils.warn = saved_print, saved_warn
    os.execute("rm -rf '" .. scratch .. "'")
  end)

  local function values()
    local lying = setmetatable({1, 2}, {__len = function() return "x" end})
    local cyc = {1}
    cyc[2] = cyc
    -- the string doubles as a path: save/load methods write into the scratch dir
    return {nil, 5, 1.5, -1, scratch .. "/x", "", {}, {1, 2}, {{1}, 2}, keras.ones{2, 3}, function() end, lying,
      cyc, true, coroutine.create(print), math.huge}, 16
  end

  -- Calls f(prefix..., a) and f(prefix..., a, b) for all values a, b; returns the problems.
  local function sweep(name, f, self, problems)
    local vals, n = values()
    local function call(...)
      local ok, err = pcall(f, ...)
      if not ok and type(err) ~= "string" then
        problems[#problems + 1] = name .. " raised a " .. type(err)
      elseif not ok and err:find(INTERNAL) then
        problems[#problems + 1] = name .. ": " .. err
      end
    end
    local has_self = self ~= nil
    if has_self then call(self) else call() end
    for i = 1, n do
      if has_self then call(self, vals[i]) else call(vals[i]) end
      for j = 1, n do
        if has_self then call(self, vals[i], vals[j]) else call(vals[i], vals[j]) end
      end
    end
  end

  local function callable(v)
    return type(v) == "function" or (type(v) == "table" and getmetatable(v) ~= nil and
      type(getmetatable(v).__call) == "function")
  end

  it("module functions", function()
    local mods = {keras = keras, K = K, layers = L, models = keras.models, optimizers = keras.optimizers,
      data_utils = keras.data_utils, autograd = keras.autograd, callbacks = keras.callbacks,
      initializers = keras.initializers, losses = keras.losses, metrics = keras.metrics,
      saving = keras.saving, sparse = keras.sparse, random = keras.random}
    local problems = {}
    local cwd = os.getenv("PWD")
    for mn, m in pairs(mods) do
      local keys = {}
      for k, v in pairs(m) do
        if type(k) == "string" and k:sub(1, 1) ~= "_" and callable(v) and not (mn == "keras" and k == "core") then
          keys[#keys + 1] = k
        end
      end
      table.sort(keys)
      for _, k in ipairs(keys) do sweep(mn .. "." .. k, m[k], nil, problems) end
    end
    assert(cwd)
    assert.same({}, problems)
  end)

  it("methods of layers, models, optimizers, iterators and callbacks", function()
    local function built(layer, shape)
      layer(L.Input{shape = shape})
      return layer
    end
    local compiled = keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 1}}
    compiled:compile{optimizer = "sgd", loss = "mse"}
    local objs = {
      Dense = L.Dense{units = 2}, DenseBuilt = built(L.Dense{units = 2}, {3}),
      Embedding = L.Embedding{input_dim = 5, output_dim = 2}, Concatenate = L.Concatenate{},
      Lambda = L.Lambda(K.square), Dropout = L.Dropout{rate = 0.5}, Flatten = L.Flatten{},
      GAP1D = L.GlobalAveragePooling1D{}, Activation = L.Activation("relu"),
      Sequential = keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 1}}, compiled = compiled,
      deferred = keras.Sequential{L.Dense{units = 1}},
      SGD = keras.optimizers.SGD{}, Adam = keras.optimizers.Adam{}, Ftrl = keras.optimizers.Ftrl{},
      ArrayIterator = keras.data_utils.ArrayIterator{data = keras.ones{6, 3}, label = keras.ones{6, 1},
        batch_size = 4},
      Callback = keras.callbacks.Callback{}, EarlyStopping = keras.callbacks.EarlyStopping{},
      History = keras.callbacks.History(),
      LearningRateScheduler = keras.callbacks.LearningRateScheduler{schedule = function(_, lr) return lr end},
      LambdaCallback = keras.callbacks.LambdaCallback{on_epoch_end = function() end},
      CSVLogger = keras.callbacks.CSVLogger{filename = scratch .. "/log.csv"},
      ModelCheckpoint = keras.callbacks.ModelCheckpoint{filepath = scratch .. "/m_{epoch}.klm"},
      ProgbarLogger = keras.callbacks.ProgbarLogger{verbose = 2, out = io.open("/dev/null", "w")},
      node = L.Input{shape = {3}},
    }
    local problems = {}
    local onames = {}
    for k in pairs(objs) do onames[#onames + 1] = k end
    table.sort(onames)
    for _, on in ipairs(onames) do
      local o = objs[on]
      -- method names along the metatable chain (__index tables), then the instance's own
      local names, mt, seen = {}, getmetatable(o), {}
      while type(mt) == "table" and not seen[mt] do
        seen[mt] = true
        for _, t in ipairs({mt, rawget(mt, "__index")}) do
          if type(t) == "table" then
            for k, v in pairs(t) do
              if type(k) == "string" and type(v) == "function" and k:sub(1, 1) ~= "_" then names[k] = true end
            end
          end
        end
        local up = getmetatable(mt)
        mt = up and rawget(up, "__index")
      end
      for k, v in pairs(o) do
        if type(k) == "string" and type(v) == "function" and k:sub(1, 1) ~= "_" then names[k] = true end
      end
      local list = {}
      for k in pairs(names) do list[#list + 1] = k end
      table.sort(list)
      for _, k in ipairs(list) do
        local f = o[k]
        if type(f) == "function" then sweep(on .. ":" .. k, f, o, problems) end
      end
    end
    assert.same({}, problems)
  end)
end)
