-- examples/linear_regression_from_scratch.lua: linear regression with autograd only (MXNet's
-- "linear regression from scratch"): 10000 x 2 normal X, y = 2 x1 - 3.4 x2 + 4.2 + 0.1 noise,
-- batches of 4 from an ArrayIterator, plain SGD (lr 0.0001) on each batch's sum of squared
-- errors. KERAS_LUA_EXAMPLE_QUICK=1 trains 3 epochs instead of 10.
local keras = require("keras")
local K = keras.backend
local autograd = keras.autograd

local quick = os.getenv("KERAS_LUA_EXAMPLE_QUICK") == "1"
local epochs = quick and 3 or 10
local lr, batch_size = 0.0001, 4

keras.random.seed(7)
local num_examples = 10000
local X = keras.random.normal({num_examples, 2})
local true_w = keras.array{{2}, {-3.4}}
local y = K.dot(X, true_w) + 4.2 + keras.random.normal({num_examples, 1}, {stddev = 0.1})

local it = keras.data_utils.ArrayIterator{data = X, label = y, batch_size = batch_size, shuffle = true}

local w = keras.random.normal({2, 1})
local b = keras.zeros({1})
w:attach_grad()
b:attach_grad()

local function net(x) return K.dot(x, w) + b end
local function square_loss(yhat, yb) return K.sum(K.square(yhat - yb)) end

-- SGD: param = param - lr * grad, in place
local function sgd(params)
  for _, p in ipairs(params) do (p - p.grad * lr):copyto(p) end
end

local mean_loss
for e = 1, epochs do
  local total, n = 0, 0
  for xb, yb in it:batches() do
    local loss = autograd.record(function() return square_loss(net(xb), yb) end)
    loss:backward()
    sgd({w, b})
    total, n = total + loss:item(), n + xb.shape[1]
  end
  mean_loss = total / n
  print(string.format("Epoch %d, average loss per sample: %.6f", e, mean_loss))
end
local wt = w:totable()
print(string.format("w = (%.4f, %.4f)  (true 2, -3.4);  b = %.4f  (true 4.2)", wt[1][1], wt[2][1], b:get(1)))
return {loss = mean_loss, w1 = wt[1][1], w2 = wt[2][1], b = b:get(1), epochs = epochs}
