-- keras/model_progress.lua: the progress bar of model:evaluate and model:predict with
-- verbose = 1 (Keras 2's bar, drawn when the pass is done: "32/32 [====...====] - 0s 1ms/step
-- - loss: 0.1234 - accuracy: 0.7500") or verbose = 2 (the summary line only). verbose = 0,
-- the default, prints nothing. NaN and inf print as nan / inf.
local core = require("keras.core")
local callbacks = require("keras.callbacks")
local models = require("keras.models")
local model_iter = require("keras.model_iter")

local Model = models.Model_class

local function verbosity(fn, opts)
  local v = type(opts) == "table" and rawget(opts, "verbose") or nil
  if v == nil then return 0 end
  if v ~= 0 and v ~= 1 and v ~= 2 then
    error(string.format("%s: verbose must be 0, 1 or 2. Received: verbose=%s", fn, tostring(v)), 0)
  end
  return v
end

-- The rows of x (a tensor, a list of tensors, or an iterator that knows its size), or nil.
local function rows_of(x)
  if core.is_tensor(x) then return x.shape[1] end
  if model_iter.is_iterator(x) then return rawget(x, "num_samples") or rawget(x, "num_data") end
  if type(x) == "table" and core.is_tensor(x[1]) then return x[1].shape[1] end
  return nil
end

local function draw(verbose, x, opts, start, values)
  local n = rows_of(x)
  local bar = callbacks.Progbar.new(n, {verbose = verbose})
  bar.start = start
  local bs = type(opts) == "table" and tonumber(rawget(opts, "batch_size")) or 32
  if n and not model_iter.is_iterator(x) then bar.steps = math.max(1, (n + bs - 1) // bs) end
  bar:update(n or 0, values, true)
end

if Model and not rawget(Model, "_progress_wrapped") then
  Model._progress_wrapped = true
  local evaluate, predict = Model.evaluate, Model.predict

  function Model:evaluate(x, y, opts)
    local verbose = verbosity("Model.evaluate", opts)
    local start = core.now()
    local loss, m = evaluate(self, x, y, opts)
    if verbose > 0 then
      local values = {{"loss", loss}}
      for _, name in ipairs(self.metric_names or {}) do
        if type(name) == "string" and m[name] ~= nil then values[#values + 1] = {name, m[name]} end
      end
      draw(verbose, x, opts, start, values)
    end
    return loss, m
  end

  function Model:predict(x, opts)
    local verbose = verbosity("Model.predict", type(opts) == "table" and opts or nil)
    local start = core.now()
    local out = predict(self, x, opts)
    if verbose > 0 then draw(verbose, x, opts, start, {}) end
    return out
  end
end

return {}
