-- keras/model_weights.lua: Keras 2's sample and class weights for Model.fit / evaluate /
-- train_on_batch, as per-row weight tensors: the C batch loop slices them with y and the loss
-- op weights its per-row losses (layers/losses.c: sum_r w_r L_r / #{r : w_r != 0}, Keras 2.2's
-- weighted_masked_objective).
local core = require("keras.core")
local A = require("keras.argcheck")

local M = {}
local is_tensor = core.is_tensor
local fail = A.fail

-- class_weight {[label] = w} -> the weights of y's rows (Keras' standardize_weights: a (n) or
-- (n, 1) y's values are the classes, a one-hot (n, C) y's class is the 1-based index of its
-- largest value). Every class in y needs a weight.
function M.class_rows(fn, cw, y, dtype)
  A.plain_table(fn, "class_weight", cw)
  local keys, vals = {}, {}
  for k, w in pairs(cw) do
    if type(k) ~= "number" then
      fail("%s: class_weight keys must be class labels (numbers). Received: key %s", fn, A.repr(k))
    end
    if type(w) ~= "number" or not (w >= 0) or w == math.huge then
      fail("%s: class_weight[%s] must be a finite number >= 0. Received: %s", fn, tostring(k), A.repr(w))
    end
    keys[#keys + 1], vals[#vals + 1] = k, w
  end
  return core.class_weight_rows(y, keys, vals, dtype, fn)
end

-- sample_weight: a tensor of n rows, shape (n) or (n, 1) -> a dense float (n) tensor.
function M.sample_rows(fn, sw, n, dtype, what)
  what = what or "sample_weight"
  if not is_tensor(sw) then
    fail("%s: %s must be a tensor of one weight a row. Received: %s", fn, what, A.repr(sw))
  end
  if sw.stype ~= "default" then sw = sw:tostype("default") end
  if sw.ndim == 2 and sw.shape[2] == 1 then sw = sw:reshape({sw.shape[1]}) end
  if sw.ndim ~= 1 then
    fail("%s: %s must have shape (n) (one weight a row), got %s", fn, what, A.repr(sw))
  end
  if sw.shape[1] ~= n then
    fail("%s: %s has %d rows but the data has %d", fn, what, sw.shape[1], n)
  end
  if sw.dtype ~= dtype then sw = sw:astype(dtype) end
  return sw
end

-- The per-row weights of a call (nil when neither is given): sample_weight times the class
-- weights of y (Keras multiplies them). model._wfeed says the plan takes weights.
function M.rows(fn, model, y, n, sw, cw)
  if sw == nil and cw == nil then return nil end
  if not model._wfeed then
    fail("%s: sample_weight and class_weight need a built-in loss (compile's loss is a " ..
      "function, whose result need not hold one loss a sample)", fn)
  end
  local dt = model._wdtype
  local w = sw ~= nil and M.sample_rows(fn, sw, n, dt) or nil
  if cw ~= nil then
    local c = M.class_rows(fn, cw, y, dt)
    w = w and w * c or c
  end
  return w
end

-- The empty weight tensor a weighted plan is fed when no weights are given (the loss op
-- reads it as "unweighted").
function M.none(model)
  local z = rawget(model, "_wnone")
  if not z then
    z = core.zeros({0}, {dtype = model._wdtype})
    model._wnone = z
  end
  return z
end

return M
