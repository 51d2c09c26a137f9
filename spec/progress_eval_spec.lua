-- spec/progress_eval_spec.lua: model:evaluate / model:predict with verbose = 1 draw Keras 2's
-- progress bar (verbose = 2: the summary line; 0, the default: nothing); NaN prints as nan.
-- The script runs in a child lua5.4 whose stdout is read back (plain output, not a terminal).
local tmp = os.tmpname()

local function run(script)
  local f = assert(io.open(tmp, "w"))
  f:write(script)
  f:close()
  local p = assert(io.popen("KERAS_LUA_PROGRESS=plain lua5.4 '" .. tmp .. "' 2>&1"))
  local out = p:read("a")
  assert(p:close(), out)
  local lines = {}
  for l in out:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  return lines
end

teardown(function() os.remove(tmp) end)

local PRELUDE = [[
local keras = require("keras")
local L = keras.layers
local inp = L.Input{shape = {2}}
local m = keras.Model{inputs = inp, outputs = L.Dense{units = 1, kernel_initializer = "zeros"}(inp)}
m:compile{optimizer = "sgd", loss = "mse", metrics = {"mae"}}
local x = keras.ones({40, 2})
]]

describe("evaluate / predict progress", function()
  it("verbose = 1 draws the bar with the loss and metrics, predict the bar alone", function()
    local lines = run(PRELUDE .. [[
print("result", m:evaluate(x, keras.ones({40, 1}), {verbose = 1, batch_size = 16}))
m:predict(x, {verbose = 1})
m:evaluate(x, keras.ones({40, 1}))
m:predict(x)
print("end")
]])
    assert.are.equal(4, #lines)
    -- zero weights: predictions 0, loss mean((0 - 1)^2) = 1, mae 1
    assert.matches("^40/40 %[==============================%] %- 0s %d+[um]?s/step %- loss: 1%.0000 %- mae: 1%.0000$",
      lines[1])
    assert.matches("^result\t1%.0\ttable", lines[2])
    assert.matches("^40/40 %[==============================%] %- 0s %d+[um]?s/step$", lines[3])
    assert.are.equal("end", lines[4]) -- verbose 0 (the default) printed nothing
  end)

  it("verbose = 2 prints the summary line; a NaN loss prints as nan", function()
    local lines = run(PRELUDE .. [[
m:evaluate(x, keras.full({40, 1}, 0 / 0), {verbose = 2})
print(pcall(m.evaluate, m, x, keras.ones({40, 1}), {verbose = 3}))
print(pcall(m.predict, m, x, {verbose = "yes"}))
]])
    assert.are.same({" - 0s - loss: nan - mae: nan",
      "false\tModel.evaluate: verbose must be 0, 1 or 2. Received: verbose=3",
      "false\tModel.predict: verbose must be 0, 1 or 2. Received: verbose=yes"}, lines)
  end)
end)
