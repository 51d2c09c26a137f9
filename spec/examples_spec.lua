-- spec/examples_spec.lua: runs every example (shortened with KERAS_LUA_EXAMPLE_QUICK=1
-- where slow) and asserts its result.
local function run(path, quick, out)
  local old = os.getenv
  os.getenv = function(k) -- luacheck: ignore
    if k == "KERAS_LUA_EXAMPLE_QUICK" then return quick and "1" or nil end
    if k == "KERAS_LUA_EXAMPLE_OUT" and out then return out end
    return old(k)
  end
  local real_print = _G.print -- busted runs this file in its own environment: silence _G's
  _G.print = function() end
  local ok, res = pcall(dofile, path)
  _G.print, os.getenv = real_print, old -- luacheck: ignore
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
it("ctr_wide_deep.lua: class weights, AUC, early stopping, a saved model", function()
    local out = require("support").mktemp_dir()
    local ok, r = pcall(run, "examples/ctr_wide_deep.lua", true, out)
    os.execute("rm -rf '" .. out .. "'")
    assert(ok, r)
    -- the data: about 7% clicks, -1/+1 labels read back as 0/1
    assert.is_true(r.train_ctr > 0.05 and r.train_ctr < 0.10, tostring(r.train_ctr))
    assert.is_true(r.val_ctr > 0.05 and r.val_ctr < 0.10, tostring(r.val_ctr))
    assert.is_true(r.class_weight[1] > 5 * r.class_weight[0])
    for _, v in ipairs(r.labels) do assert.is_true(v == 0 or v == 1) end
    -- AUC: measured 0.825 at epoch 2 of 6 (the hidden model's own AUC is 0.884)
    assert.is_true(r.val_auc > 0.78, tostring(r.val_auc))
    assert.is_true(r.val_auc < r.ceiling_auc)
    -- the metric is within 0.01 of the exact ROC AUC of the predictions
    local idx, scores = {}, {}
    for i, row in ipairs(r.predictions:totable()) do idx[i], scores[i] = i, row[1] end
    table.sort(idx, function(a, b) return scores[a] < scores[b] end)
    local npos, rank_sum = 0, 0
    for rank, i in ipairs(idx) do
      if r.labels[i] == 1 then npos, rank_sum = npos + 1, rank_sum + rank end
    end
    local exact = (rank_sum - npos * (npos + 1) / 2) / (npos * (#idx - npos))
    assert.is_true(math.abs(exact - r.val_auc) < 0.01, exact .. " vs " .. r.val_auc)
    -- early stopping on val_auc (patience 2) stopped before the last epoch and restored the best
    assert.is_true(r.epochs < r.max_epochs, tostring(r.epochs))
    assert.are.equal(r.epochs, r.best_epoch + 2)
    assert.is_true(math.abs(r.val_auc_history[r.best_epoch] - r.val_auc) < 1e-4)
    -- the reloaded model predicts the same numbers
    assert.are.equal(0, r.max_diff)
    assert.are.same(r.predictions:totable(), r.reloaded_predictions:totable())
  end)
end)
