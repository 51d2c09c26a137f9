-- spec/examples_spec.lua: runs every example (shortened with KERAS_LUA_EXAMPLE_QUICK=1
-- where slow) and asserts its result.
local function run(path, quick)
  local old = os.getenv
  os.getenv = function(k) -- luacheck: ignore
    if k == "KERAS_LUA_EXAMPLE_QUICK" then return quick and "1" or nil end
    return old(k)
  end
  local real_print = print
  print = function() end -- luacheck: ignore
  local ok, res = pcall(dofile, path)
  print, os.getenv = real_print, old -- luacheck: ignore
  assert(ok, res)
  return res
end

describe("examples", function()
  it("sparse_linear_regression.lua ends with an MSE below 1", function()
    local r = run("examples/sparse_linear_regression.lua", false)
    assert.are.equal(10, r.epochs)
    assert.is_true(r.last_epoch_mse < 1, tostring(r.last_epoch_mse))
  end)
  it("linear_regression_from_scratch.lua finds (2, -3.4), 4.2", function()
    local r = run("examples/linear_regression_from_scratch.lua", true)
    assert.is_true(r.loss < 0.02, tostring(r.loss))
    assert.is_true(math.abs(r.w1 - 2) < 0.02 and math.abs(r.w2 + 3.4) < 0.02 and math.abs(r.b - 4.2) < 0.02)
  end)
  it("keras_sparse.lua trims 1000 rows to 992 and trains", function()
    local r = run("examples/keras_sparse.lua", false)
    assert.are.equal(992, r.rows)
    assert.are.equal("csr", r.stype)
    assert.is_true(r.last_loss < 0.5 * r.first_loss)
  end)
  it("text_classifier.lua classifies the synthetic documents", function()
    local r = run("examples/text_classifier.lua", true)
    assert.is_true(r.val_accuracy > 0.8, tostring(r.val_accuracy))
  end)
end)
