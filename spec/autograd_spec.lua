-- spec/autograd_spec.lua: keras.autograd (record / attach_grad / backward) and the symbolic
-- K functions (placeholder, func, gradients, eval).
local keras = require("keras")
local K = keras.backend
local S = require("support")

describe("autograd", function()
  it("gives the gradient of a dense expression, overwriting .grad", function()
    local w = keras.array({{1, 2}, {3, 4}}, {dtype = "float64"})
    w:attach_grad()
    assert.are.same({{0, 0}, {0, 0}}, w.grad:totable())
    local x = keras.array({{1, 1}}, {dtype = "float64"})
    for _ = 1, 2 do -- twice: 'write' overwrites, never accumulates
      local l = keras.autograd.record(function() return K.sum(K.square(K.dot(x, w)) * 0.5 + w * 2) end)
      l:backward()
      -- the (1, 2) term broadcasts over w's 2 rows, so it counts twice:
      -- 2 x^T (xw) = [[8, 12], [8, 12]]; plus 2
      assert.are.same({{10, 14}, {10, 14}}, w.grad:totable())
    end
  end)
  it("gives a row_sparse gradient to a weight used as dot(csr, w)", function()
    local X = keras.sparse.csr_matrix{data = {1, 2, 3}, indices = {1, 3, 2}, indptr = {1, 3, 4}, shape = {2, 4}}
    local W = keras.ones({4, 2})
    W:attach_grad{stype = "row_sparse"}
    local loss = keras.autograd.record(function() local o = K.dot(X, W); return K.sum(o * o) end)
    assert.are.equal(36, loss:item())
    loss:backward()
    assert.are.equal("row_sparse", W.grad.stype)
    assert.are.same({1, 2, 3}, W.grad.indices:totable())
    assert.are.same({{6, 6}, {18, 18}, {12, 12}, {0, 0}}, W.grad:tostype("default"):totable())
  end)
  it("sums a non-scalar loss (MXNet's head gradient of ones)", function()
    local b = keras.zeros({3}, {dtype = "float64"})
    b:attach_grad()
    local y = keras.autograd.record(function() return (b + 1) * 3 end)
    y:backward()
    assert.are.same({3, 3, 3}, b.grad:totable())
  end)
  it("matches finite differences (float64)", function()
    keras.random.seed(2)
    local x = keras.random.normal({3, 4}, {dtype = "float64"})
    local w = keras.random.normal({4, 2}, {dtype = "float64"})
    w:attach_grad()
    local function f() return K.sum(K.tanh(K.dot(x, w)) * K.sigmoid(K.dot(x, w))) end
    keras.autograd.record(f):backward()
    local g, wt, h = w.grad:totable(), w:totable(), 1e-6
    for i = 1, 4 do
      for j = 1, 2 do
        local v = wt[i][j]
        wt[i][j] = v + h
        keras.array(wt, {dtype = "float64"}):copyto(w)
        local fp = f():item()
        wt[i][j] = v - h
        keras.array(wt, {dtype = "float64"}):copyto(w)
        local fm = f():item()
        wt[i][j] = v
        keras.array(wt, {dtype = "float64"}):copyto(w)
        S.assert_near((fp - fm) / (2 * h), g[i][j], 1e-6)
      end
    end
  end)
  it("errors clearly", function()
    local t = keras.ones({2})
    assert.has_error(function() t:backward() end,
      "backward: this tensor was not computed while recording (compute it inside keras.autograd.record)")
    local l = keras.autograd.record(function() return K.sum(t * 2) end)
    assert.has_error(function() l:backward() end,
      "backward: no tensor with attach_grad() was used in the recorded computation")
    assert.has_error(function() t:attach_grad{stype = "csr"} end,
      "attach_grad: stype must be 'default' or 'row_sparse'. Received: stype=csr")
    -- a csr tensor is refused by attach_grad itself (not later by the plan, 0-based)
    local x = keras.sparse.csr_matrix{data = {1}, indices = {1}, indptr = {1, 2}, shape = {1, 2}}
    assert.has_error(function() x:attach_grad() end, "attach_grad: a csr tensor cannot have a " ..
      "gradient (it is data; differentiate a dense or row_sparse tensor, e.g. t:tostype(\"default\"))")
    -- the plan's own checks count from 1
    local gs = keras.core.graph_new()
    local v = gs:variable(x, true, "x")
    local ok, err = pcall(keras.core.plan_new, gs, {feeds = {}, outputs = {}, loss = gs:op("sum", {v}, {}),
      weights = {v}, grad_stypes = {"default"}})
    assert.is_false(ok)
    assert.are.equal("plan: weights[1] is csr; weights are dense or row_sparse", err)
    assert.is_false(keras.autograd.is_recording())
    assert.has_error(function() keras.autograd.record(function() error("boom", 0) end) end, "boom")
    assert.is_false(keras.autograd.is_recording())
  end)
end)

describe("symbolic K", function()
  it("placeholders, node arithmetic, func, gradients and eval", function()
    local x = K.placeholder{shape = {-1, 3}}
    assert.are.same({-1, 3}, K.int_shape(x))
    local w = keras.array{{1}, {2}, {3}}
    local y = 2 * K.dot(x, w) + 1
    local f = K.func({x}, y)
    assert.are.same({{13}, {5}}, f(keras.array{{1, 1, 1}, {0, 1, 0}}):totable())
    local g = K.gradients(K.sum(K.square(y)), {w})
    local fg = K.func({x}, {g[1]})
    assert.are.same({{52}, {52}, {52}}, fg(keras.array{{1, 1, 1}})[1]:totable())
    local s = K.placeholder{shape = {-1, 4}, sparse = true}
    assert.is_true(K.is_sparse(s))
    assert.are.equal("default", K.dot(s, keras.ones({4, 2})).stype)
    assert.are.equal(6, K.eval(K.sum(K.variable({{1, 2, 3}}) * 1 + K.constant({0, 0, 0}) * 0)):item())
    local c = K.sum(K.dot(keras.ones({1, 2}), keras.ones({2, 1})) + x * 0)
    assert.matches("not among the feeds", select(2, pcall(K.eval, c)))
  end)
end)
