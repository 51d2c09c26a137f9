-- spec/graph_gaps_spec.lua: graph inference against the unknown batch dim, K.to_dense on
-- sparse nodes (the cast node), K.gradients with respect to placeholders, and the plan's
-- train_step/test_step metrics.
local keras = require("keras")
local K = keras.backend
local S = require("support")

local function errmsg(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error")
  return err
end

describe("broadcasting against the unknown batch dim", function()
  it("node(-1, 3) * constant(4, 3) builds as (4, 3) and is checked at run time", function()
    local x = K.placeholder{shape = {-1, 3}}
    local c = keras.array{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {1, 1, 1}}
    local y = x * c
    assert.are.same({4, 3}, y.shape)
    local f = K.func({x}, y)
    local x4 = keras.array{{1, 1, 1}, {2, 2, 2}, {0, 0, 0}, {3, 3, 3}}
    assert.are.same({{1, 2, 3}, {8, 10, 12}, {0, 0, 0}, {3, 3, 3}}, f(x4):totable())
    -- a batch of 1 broadcasts against the 4 rows
    assert.are.same({{2, 4, 6}, {8, 10, 12}, {14, 16, 18}, {2, 2, 2}}, f(keras.full({1, 3}, 2)):totable())
    assert.are.equal("multiply: shapes (5 x 3) and (4 x 3) are not broadcastable",
      errmsg(function() return f(keras.ones({5, 3})) end))
  end)
  it("keeps the batch dim where -1 meets 1 or -1, and adds/subtracts/divides alike", function()
    local x = K.placeholder{shape = {-1, 3}}
    assert.are.same({-1, 3}, (x + keras.ones({1, 3})).shape)
    assert.are.same({-1, 3}, (x - x).shape)
    assert.are.same({2, 3}, (keras.ones({2, 3}) - x).shape)
    assert.are.same({2, 3}, (x / keras.full({2, 3}, 2)).shape)
    local col = K.placeholder{shape = {-1, 1}}
    assert.are.same({-1, 3}, (col + keras.ones({3})).shape)
  end)
  it("still refuses sizes that never broadcast", function()
    local x = K.placeholder{shape = {-1, 3}}
    assert.are.equal("add: shapes (4 x 3) and (4 x 2) are not broadcastable",
      errmsg(function() return x + keras.ones({4, 2}) end))
  end)
end)

describe("K.to_dense on graph nodes", function()
  local xs = keras.sparse.csr_matrix{data = {1, 2}, indices = {1, 3}, indptr = {1, 2, 3}, shape = {2, 4}}
  it("casts a CSR placeholder to a dense node", function()
    local s = K.placeholder{shape = {-1, 4}, sparse = true}
    local d = K.to_dense(s)
    assert.are.equal("default", d.stype)
    assert.are.equal("cast", d:kind())
    assert.are.same({-1, 4}, d.shape)
    assert.is_true(K.is_sparse(s))
    assert.is_false(K.is_sparse(d))
    local v = K.func({s}, d)(xs)
    assert.are.equal("default", v.stype)
    assert.are.same({{1, 0, 0, 0}, {0, 0, 2, 0}}, v:totable())
  end)
  it("returns a dense node itself", function()
    local x = K.placeholder{shape = {-1, 2}}
    assert.are.equal(x, K.to_dense(x))
  end)
  it("casts a row_sparse node and passes the gradient through the cast", function()
    local s = K.placeholder{shape = {-1, 4}, sparse = true}
    local x = K.placeholder{shape = {-1, 2}}
    local r = K.dot(s, x, {transpose_a = true}) -- csr^T . dense -> row_sparse (4, 2)
    assert.are.equal("row_sparse", r.stype)
    local d = K.to_dense(r)
    assert.are.equal("default", d.stype)
    local C = keras.array{{1, 2}, {3, 4}, {5, 6}, {7, 8}}
    local loss = K.sum(d * C)
    local g = K.gradients(loss, {x})
    local res = K.func({s, x}, {d, g[1]})(xs, keras.array{{1, 1}, {1, 1}})
    assert.are.same({{1, 1}, {0, 0}, {2, 2}, {0, 0}}, res[1]:totable())
    -- d loss / d x = s . C: row 1 = C[1], row 2 = 2 C[3]
    S.assert_near(res[2]:totable(), {{1, 2}, {10, 12}}, 1e-6)
  end)
  it("eager tensors keep the eager behaviour", function()
    assert.are.same({{1, 0, 0, 0}, {0, 0, 2, 0}}, K.to_dense(xs):totable())
    assert.are.equal("default", K.to_dense(xs).stype)
  end)
  it("records through autograd", function()
    local w = keras.array{{1, 2}, {3, 4}}:tostype("row_sparse")
    w:attach_grad()
    keras.autograd.record(function()
      return K.sum(K.square(K.to_dense(w)))
    end):backward()
    S.assert_near(w.grad:tostype("default"):totable(), {{2, 4}, {6, 8}}, 1e-6)
  end)
end)

describe("K.gradients with respect to placeholders", function()
  it("gives the dense gradient of the fed input (finite differences)", function()
    local x = K.placeholder{shape = {-1, 3}, dtype = "float64"}
    local W = K.variable(keras.array({{1, -2}, {0.5, 3}, {-1, 2}}, {dtype = "float64"}))
    local loss = K.sum(K.square(K.tanh(K.dot(x, W))))
    local g = K.gradients(loss, {x, W})
    local f = K.func({x}, g)
    local fl = K.func({x}, loss)
    local xv = {{0.1, 0.2, -0.3}, {0.4, -0.5, 0.6}}
    local r = f(keras.array(xv, {dtype = "float64"}))
    assert.are.same({2, 3}, r[1].shape)
    local h = 1e-6
    for i = 1, 2 do
      for j = 1, 3 do
        local xp, xm = {}, {}
        for a = 1, 2 do xp[a], xm[a] = {}, {} for b = 1, 3 do xp[a][b], xm[a][b] = xv[a][b], xv[a][b] end end
        xp[i][j], xm[i][j] = xv[i][j] + h, xv[i][j] - h
        local num = (fl(keras.array(xp, {dtype = "float64"})):item() - fl(keras.array(xm, {dtype = "float64"})):item()) / (2 * h)
        assert.is_true(math.abs(num - r[1]:get(i, j)) < 1e-7, i .. "," .. j)
      end
    end
  end)
  it("through a cast of a CSR placeholder", function()
    local s = K.placeholder{shape = {-1, 4}, sparse = true}
    local W = K.variable(keras.ones({4, 2}))
    local g = K.gradients(K.sum(K.square(K.dot(K.to_dense(s), W))), {s})
    local xs = keras.sparse.csr_matrix{data = {1, 2}, indices = {1, 3}, indptr = {1, 2, 3}, shape = {2, 4}}
    local r = K.func({s}, g)(xs)
    assert.are.equal("default", r[1].stype)
    S.assert_near(r[1]:totable(), {{4, 4, 4, 4}, {8, 8, 8, 8}}, 1e-6)
  end)
  it("errors clearly where no gradient exists", function()
    local s = K.placeholder{shape = {-1, 4}, sparse = true}
    local W = K.variable(keras.ones({4, 2}))
    local g = K.gradients(K.sum(K.dot(s, W)), {s})
    local xs = keras.sparse.csr_matrix{data = {1}, indices = {1}, indptr = {1, 2}, shape = {1, 4}}
    assert.are.equal("dot: no gradient with respect to the csr input a",
      errmsg(function() return K.func({s}, g)(xs) end))
    local ids = K.placeholder{shape = {-1, 2}, dtype = "int64"}
    assert.are.equal("gradients: variables[1] is an int64 placeholder; only float inputs have gradients",
      errmsg(function() return K.gradients(K.sum(K.dot(s, W)), {ids}) end))
    assert.are.equal("gradients: variables[1] must be a tensor, a variable node or a placeholder",
      errmsg(function() return K.gradients(K.sum(K.dot(s, W)), {K.dot(s, W)}) end))
  end)
end)

describe("plan train_step / test_step metrics", function()
  it("come from the step's own forward, before the update", function()
    local g = keras.core.graph_new()
    local x = g:placeholder{shape = {-1, 1}}
    local t = g:placeholder{shape = {-1, 1}, name = "target"}
    local w = keras.array{{1}}
    local wid = g:variable(w, true, "w")
    local out = g:op("dot", {x, wid}, {})
    local loss = g:op("mean_squared_error", {t, out}, {})
    local opt = keras.core.optimizer_new("sgd", {learning_rate = 0.1})
    local p = keras.core.plan_new(g, {feeds = {x, t}, outputs = {out}, loss = loss, weights = {wid},
      optimizer = opt})
    local xv, yv = keras.array{{1}, {2}}, keras.array{{2}, {2}}
    -- before the update: out = {1, 2}, mse = (1 + 0) / 2, mae = 1/2
    local l, m = p:train_step({xv, yv}, {"mse", "mae"})
    S.assert_near(l, 0.5, 1e-6)
    S.assert_near(m.mse, 0.5, 1e-6)
    S.assert_near(m.mae, 0.5, 1e-6)
    -- the update moved w: dL/dw = mean(2 (w x - y) x) = (2 * -1 * 1 + 0) / 2 = -1 -> w = 1.1
    S.assert_near(w:get(1, 1), 1.1, 1e-6)
    local l2, m2 = p:test_step({xv, yv}, {"mae"})
    S.assert_near(m2.mae, (0.9 + 0.2) / 2, 1e-6)
    S.assert_near(l2, (0.81 + 0.04) / 2, 1e-6)
    S.assert_near(w:get(1, 1), 1.1, 1e-6) -- test_step does not train
    assert.are.equal(1, select("#", p:train_step({xv, yv})))
  end)
end)
