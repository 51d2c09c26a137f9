-- keras/losses.lua: Keras loss names resolved to the graph's loss ops (Keras semantics:
-- "mse" is the mean of squared errors over the batch).
local losses = {}

local canonical = {
  mse = "mean_squared_error", MSE = "mean_squared_error", mean_squared_error = "mean_squared_error",
  mae = "mean_absolute_error", MAE = "mean_absolute_error",
  mean_absolute_error = "mean_absolute_error",
  binary_crossentropy = "binary_crossentropy",
  categorical_crossentropy = "categorical_crossentropy",
  sparse_categorical_crossentropy = "sparse_categorical_crossentropy",
  -- labels -1/1, or 0/1 (every label of a batch 0 or 1: converted to -1/1, as Keras)
  hinge = "hinge", squared_hinge = "squared_hinge",
  poisson = "poisson",                     -- mean(y_pred - y_true * log(y_pred + 1e-7))
  huber = "huber", huber_loss = "huber",   -- Keras' Huber with delta = 1
}

-- resolve(name) -> canonical Keras name, which is also the graph op name.
function losses.resolve(name)
  if type(name) ~= "string" then
    error("losses: expected a loss name (got " .. type(name) .. ")", 0)
  end
  local c = canonical[name]
  if not c then
    error("losses: unknown loss '" .. name .. "' (mse, mae, binary_crossentropy, " ..
      "categorical_crossentropy, sparse_categorical_crossentropy, hinge, squared_hinge, " ..
      "poisson, huber)", 0)
  end
  return c
end

-- The graph op of a loss name (the same string: the registry names losses as Keras does).
function losses.op_name(name) return losses.resolve(name) end

-- Loss functions usable on nodes or tensors: losses.mean_squared_error(y_true, y_pred) -> 0-d.
local function loss_fn(c)
  return function(y_true, y_pred)
    return require("keras.backend")._apply(c, {y_true, y_pred}, nil, c)
  end
end
for _, c in pairs(canonical) do losses[c] = losses[c] or loss_fn(c) end
losses.mse, losses.mae = losses.mean_squared_error, losses.mean_absolute_error

return losses
