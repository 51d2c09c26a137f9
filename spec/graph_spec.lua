-- spec/graph_spec.lua: the graph and plan binding (core.graph_new, core.plan_new): building
-- graphs with 1-based node ids, forward/backward with row_sparse gradients, the C epoch loop
-- with Lua callbacks, and a step cost that does not grow with the feature count.
local keras = require("keras")
local core = keras.core
local sparse = keras.sparse

-- A CSR batch of `rows` rows over `cols` columns with entries only in columns 1..span.
local function csr_batch(rows, cols, per_row, span, seed)
  local data, indices, indptr = {}, {}, {1}
  local s = seed
  for _ = 1, rows do
    local used, cs = {}, {}
    while #cs < per_row do
      s = (s * 1103515245 + 12345) % 2147483648
      local c = s % span + 1
      if not used[c] then used[c] = true; cs[#cs + 1] = c end
    end
    table.sort(cs)
    for _, c in ipairs(cs) do
      indices[#indices + 1] = c
      data[#data + 1] = (c % 7) / 7 + 0.5
    end
    indptr[#indptr + 1] = #indices + 1
  end
  return sparse.csr_matrix{data = data, indices = indices, indptr = indptr, shape = {rows, cols}}
end

-- x (csr placeholder) . W -> mse against y; W zeros unless given.
local function linear_graph(V, dtype, W)
  local g = core.graph_new()
  local x = g:placeholder{shape = {-1, V}, stype = "csr", dtype = dtype, name = "x"}
  local y = g:placeholder{shape = {-1, 1}, dtype = dtype, name = "y"}
  W = W or keras.zeros({V, 1}, {dtype = dtype})
  local w = g:variable(W, true, "W")
  local d = g:op("dot", {x, w})
  local loss = g:op("mean_squared_error", {y, d})
  return g, {x = x, y = y, w = w, d = d, loss = loss, W = W}
end

describe("core.graph_new", function()
  it("builds nodes with 1-based ids and infers shapes with the batch dim unknown", function()
    local g = core.graph_new()
    local x = g:placeholder{shape = {-1, 4}, name = "x"}
    assert.are.equal(1, x)
    local W = keras.ones({4, 3})
    local w = g:variable(W, true, "W")
    assert.are.equal(2, w)
    local d = g:op("dot", {x, w})
    local m = g:meta(d)
    assert.are.same({-1, 3}, m.shape)
    assert.are.equal("default", m.stype)
    assert.are.equal("float32", m.dtype)
    assert.are.equal(2, m.ndim)
    local s = g:op("sum", {d}, {axis = -1, keepdims = true})
    assert.are.same({-1, 1}, g:meta(s).shape)
    local all = g:op("mean", {d})
    assert.are.same({}, g:meta(all).shape)
    assert.are.equal("placeholder", g:kind(x))
    assert.are.equal("variable", g:kind(w))
    assert.are.equal("op", g:kind(d))
    local f = g:reshape(d, {-1, 3, 1})
    assert.are.equal("reshape", g:kind(f))
    assert.are.same({-1, 3, 1}, g:meta(f).shape)
    local dr = g:dropout(d, 0.5, 1)
    assert.are.equal("dropout", g:kind(dr))
    assert.are.equal(g:size(), dr)
  end)

  it("shares variable tensors: value() is the same storage, set_value() replaces it", function()
    local g = core.graph_new()
    local W = keras.ones({2, 2})
    local w = g:variable(W, true)
    local v = g:value(w)
    assert.are.same({{1, 1}, {1, 1}}, v:totable())
    g:set_value(w, keras.full({2, 2}, 3))
    assert.are.same({{3, 3}, {3, 3}}, g:value(w):totable())
    assert.has_error(function() g:set_value(w, keras.ones({3, 2})) end,
      "set_value: shape (3 x 2) does not match (2 x 2)")
    local c = g:constant(keras.ones({2}))
    assert.are.equal("constant", g:kind(c))
    assert.is_nil(g:value(g:placeholder{shape = {-1, 2}}))
  end)

  it("raises clear errors for bad ops, ids, shapes and options", function()
    local g = core.graph_new()
    local x = g:placeholder{shape = {-1, 4}}
    local w = g:variable(keras.ones({5, 2}), true)
    assert.has_error(function() g:op("dot", {x, w}) end, "dot: shape mismatch (2 x 4) . (5 x 2)")
    assert.has_error(function() g:op("frobnicate", {x}) end, "graph op: unknown op 'frobnicate'")
    assert.has_error(function() g:op("relu", {7}) end,
      "relu: inputs[1] = 7 is not a node of this graph (1..2)")
    assert.has_error(function() g:op("sum", {x}, {axis = 3}) end,
      "sum: axis 3 out of range for a 2-d tensor")
    assert.has_error(function() g:op("sum", {x}, {axes = 1}) end, "sum: unknown option 'axes'")
    assert.has_error(function() g:placeholder{shape = {-2, 4}} end,
      "placeholder: shape[1] = -2 must be >= 0 or -1")
    assert.has_error(function() g:reshape(x, {-1, 3}) end)
    assert.has_error(function() g:dropout(x, 1.5) end,
      "Dropout: rate must be in [0, 1). Received: rate=1.5")
  end)
end)

describe("core.plan_new", function()
  it("runs forward and a row_sparse backward of dot(csr, W) over the touched rows only", function()
    local g, n = linear_graph(20, "float64")
    n.W:copyto(n.W) -- no-op, the tensor is shared with the graph
    g:set_value(n.w, keras.array({{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}, {11}, {12},
      {13}, {14}, {15}, {16}, {17}, {18}, {19}, {20}}, {dtype = "float64"}))
    local p = core.plan_new(g, {feeds = {n.x, n.y}, outputs = {n.d}, loss = n.loss,
      weights = {n.w}, grad_stypes = {"row_sparse"}})
    local x = sparse.csr_matrix{data = {1, 2, 3}, indices = {2, 5, 2}, indptr = {1, 3, 4},
      shape = {2, 20}, dtype = "float64"}
    local y = keras.array({{1}, {0}}, {dtype = "float64"})
    local out = p:forward({x, y}, true)
    -- pred = {1*2 + 2*5, 3*2} = {12, 6}; loss = ((12-1)^2 + 6^2) / 2
    assert.are.same({{12}, {6}}, out[1]:totable())
    assert.are.equal((121 + 36) / 2, p:loss())
    local grads = p:backward()
    local gw = grads[1]
    assert.are.equal("row_sparse", gw.stype)
    -- dW = 2/n x^T e = x^T {11, 6}: row 2 gets 1*11 + 3*6 = 29, row 5 gets 2*11 = 22
    assert.are.same({2, 5}, gw.indices:totable())
    assert.are.same({{29}, {22}}, gw.data:totable())
    local dense = gw:tostype("default"):totable()
    for r = 1, 20 do
      local want = r == 2 and 29 or r == 5 and 22 or 0
      assert.are.equal(want, dense[r][1])
    end
  end)

  it("keeps its graph alive after the graph variable is dropped", function()
    local g, n = linear_graph(5, "float32")
    local p = core.plan_new(g, {feeds = {n.x}, outputs = {n.d}})
    g = nil -- luacheck: ignore
    collectgarbage(); collectgarbage()
    local x = csr_batch(3, 5, 2, 5, 1)
    local out = p:predict({x}, 2)
    assert.are.same({3, 1}, out.shape)
    assert.are.same({{0}, {0}, {0}}, out:totable())
  end)

  it("refuses a plan whose placeholders are not fed", function()
    local g, n = linear_graph(5, "float32")
    assert.has_error(function()
      core.plan_new(g, {feeds = {n.x}, outputs = {n.d}, loss = n.loss, weights = {n.w}})
    end, "plan: placeholder 1 ('y') is needed but not among the feeds")
  end)

  it("evaluates with sample-weighted averages whatever the batch size", function()
    local g, n = linear_graph(30, "float64")
    local W = keras.random.normal({30, 1}, {dtype = "float64", seed = 3})
    g:set_value(n.w, W)
    local p = core.plan_new(g, {feeds = {n.x, n.y}, outputs = {n.d}, loss = n.loss})
    local x = csr_batch(10, 30, 3, 30, 7)
    local y = keras.random.normal({10, 1}, {dtype = "float64", seed = 4})
    local l3, m3 = p:evaluate({x}, y, {batch_size = 3, metrics = {"mae"}})
    local l10, m10 = p:evaluate({x}, y, {batch_size = 10, metrics = {"mae"}})
    assert.is_true(math.abs(l3 - l10) < 1e-12)
    assert.is_true(math.abs(m3.mae - m10.mae) < 1e-12)
  end)
end)

describe("core.metric_resolve", function()
  it("resolves accuracy as Keras does", function()
    assert.are.equal("binary_accuracy", core.metric_resolve("accuracy", "binary_crossentropy"))
    assert.are.equal("sparse_categorical_accuracy",
      core.metric_resolve("accuracy", "sparse_categorical_crossentropy"))
    assert.are.equal("mse", core.metric_resolve("mean_squared_error"))
    assert.has_error(function() core.metric_resolve("foo") end, "unknown metric 'foo'")
  end)
end)

describe("plan training", function()
  local function sgd(lr)
    return core.optimizer_new("sgd", {learning_rate = lr})
  end

  it("fit_epoch trains the partial last batch and calls on_batch with 1-based batches", function()
    local g, n = linear_graph(8, "float32")
    local p = core.plan_new(g, {feeds = {n.x, n.y}, outputs = {n.d}, loss = n.loss,
      weights = {n.w}, grad_stypes = {"row_sparse"}, optimizer = sgd(0.1)})
    local x = csr_batch(10, 8, 2, 8, 5)
    local y = keras.ones({10, 1})
    local calls = {}
    local loss, m = p:fit_epoch({x}, y, {batch_size = 4, metrics = {"mse"},
      on_batch = function(batch, seen, total, l, mt)
        calls[#calls + 1] = {batch, seen, total, mt.mse}
      end})
    assert.are.equal(3, #calls)
    assert.are.same({1, 4, 10}, {calls[1][1], calls[1][2], calls[1][3]})
    assert.are.same({3, 10, 10}, {calls[3][1], calls[3][2], calls[3][3]})
    assert.are.equal(3, p:step_count())
    assert.is_number(loss)
    assert.are.equal(calls[3][4], m.mse)
    -- a callback returning true stops the epoch
    local n_calls = 0
    p:fit_epoch({x}, y, {batch_size = 4, on_batch = function() n_calls = n_calls + 1; return true end})
    assert.are.equal(1, n_calls)
    assert.are.equal(4, p:step_count())
  end)

  it("propagates an error raised in on_batch after the loop has cleaned up", function()
    local g, n = linear_graph(8, "float32")
    local p = core.plan_new(g, {feeds = {n.x, n.y}, outputs = {n.d}, loss = n.loss,
      weights = {n.w}, optimizer = sgd(0.1)})
    local x = csr_batch(10, 8, 2, 8, 5)
    local y = keras.ones({10, 1})
    assert.has_error(function()
      p:fit_epoch({x}, y, {batch_size = 4, on_batch = function() error("stop here", 0) end})
    end, "stop here")
    assert.are.equal(1, p:step_count())
    -- the plan still works afterwards
    p:fit_epoch({x}, y, {batch_size = 5})
    assert.are.equal(3, p:step_count())
  end)

  it("shuffles deterministically for a seed", function()
    local x = csr_batch(9, 6, 2, 6, 11)
    local y = keras.random.normal({9, 1}, {seed = 2})
    local function run(seed)
      local g, n = linear_graph(6, "float32")
      local p = core.plan_new(g, {feeds = {n.x, n.y}, outputs = {n.d}, loss = n.loss,
        weights = {n.w}, optimizer = sgd(0.2)})
      p:fit_epoch({x}, y, {batch_size = 2, shuffle = true, seed = seed})
      return n.W:totable()
    end
    assert.are.same(run(5), run(5))
    assert.are_not.same(run(5), run(6))
  end)

  it("a training step's cost follows the batch, not the feature count", function()
    -- The same batches (columns below 1000) against V = 1e3 and V = 1e6 features. What a
    -- step touches is counted, not timed: the row_sparse gradient stores exactly the batch's
    -- unique columns; lazy SGD (momentum and weight decay, which would move every row of a
    -- random W if it ran over all of them) changes exactly those rows of W and of its
    -- momentum, bit for bit nothing else; a second batch changes only its own rows (rows
    -- with momentum from the first batch but no gradient now stay as they are).
    local function unique_cols(x)
      local set, list = {}, {}
      for _, c in ipairs(x.indices:totable()) do
        if not set[c] then set[c] = true; list[#list + 1] = c end
      end
      table.sort(list)
      return list
    end
    -- The rows where a and b differ at all (bit for bit), ascending.
    local function changed_rows(a, b)
      return (a - b):tostype("row_sparse").indices:totable()
    end
    local x1 = csr_batch(16, 1000, 4, 1000, 99)
    local x2 = csr_batch(16, 1000, 4, 1000, 7)
    local rows1, rows2 = unique_cols(x1), unique_cols(x2)
    assert.is_true(#rows1 > 8 and #rows1 <= 64 and #rows2 > 8, #rows1 .. " " .. #rows2)
    assert.are_not.same(rows1, rows2)
    local y = keras.ones({16, 1})
    local counts = {}
    for _, V in ipairs({1000, 1000000}) do
      -- the batches over V columns (same entries)
      local function widen(x)
        return sparse.csr_matrix{data = x.data:totable(), indices = x.indices:totable(),
          indptr = x.indptr:totable(), shape = {16, V}}
      end
      local b1, b2 = widen(x1), widen(x2)
      local W = keras.random.normal({V, 1}, {seed = 3})
      local g, n = linear_graph(V, "float32", W)
      local opt = core.optimizer_new("sgd", {learning_rate = 0.1, momentum = 0.9, weight_decay = 0.01})
      local p = core.plan_new(g, {feeds = {n.x, n.y}, outputs = {n.d}, loss = n.loss,
        weights = {n.w}, grad_stypes = {"row_sparse"}, optimizer = opt})
      p:forward({b1, y}, true)
      local gw = p:backward()[1]
      assert.are.equal("row_sparse", gw.stype)
      local c = {grad_rows = gw.indices:totable()}
      local W0 = W:copy()
      p:train_step({b1, y})
      assert.are.equal(1, p:num_states(1))
      local m1 = p:state(1, 1):copy()
      local W1 = W:copy()
      c.w_rows1 = changed_rows(W1, W0)
      c.m_rows1 = changed_rows(m1, keras.zeros({V, 1}))
      p:train_step({b2, y})
      c.w_rows2 = changed_rows(W, W1)
      c.m_rows2 = changed_rows(p:state(1, 1), m1)
      counts[#counts + 1] = c
    end
    assert.are.same(rows1, counts[1].grad_rows)
    assert.are.same(rows1, counts[1].w_rows1)
    assert.are.same(rows1, counts[1].m_rows1)
    assert.are.same(rows2, counts[1].w_rows2)
    assert.are.same(rows2, counts[1].m_rows2)
    assert.are.same(counts[1], counts[2])
  end)
end)
