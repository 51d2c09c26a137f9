-- keras/metrics.lua: Keras metric names resolved as Keras 2 compile does ("accuracy"
-- depends on the loss and the output width).
local core = require("keras.core")

local metrics = {}

-- resolve(name, loss_name, output_units) -> canonical name ("mse", "mae", "binary_accuracy",
-- "categorical_accuracy", "sparse_categorical_accuracy"); errors on unknown names.
function metrics.resolve(name, loss_name, output_units)
  if type(name) ~= "string" then
    error("metrics: expected a metric name (got " .. type(name) .. ")", 0)
  end
  if (name == "accuracy" or name == "acc") and output_units == 1
      and loss_name ~= "sparse_categorical_crossentropy" then
    return "binary_accuracy"
  end
  local ok, r = pcall(core.metric_resolve, name, loss_name)
  if not ok then
    error("metrics: unknown metric '" .. name .. "' (mse, mae, accuracy, binary_accuracy, " ..
      "categorical_accuracy, sparse_categorical_accuracy)", 0)
  end
  return r
end

return metrics
