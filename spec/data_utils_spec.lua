-- spec/data_utils_spec.lua: prepare_sliced_sparse_data and ArrayIterator (dense and CSR).
local keras = require("keras")
local du = keras.data_utils

local function col(n) return keras.range(1, n):reshape({n, 1}) end
local function flat(t)
  local r = {}
  for _, v in ipairs(t:totable()) do r[#r + 1] = type(v) == "table" and v[1] or v end
  return r
end

describe("prepare_sliced_sparse_data", function()
  it("trims 1000 CSR rows to 992 at batch 32, keeping the stype and the rows", function()
    local x = keras.sparse.rand({1000, 20}, "csr", 0.1, {seed = 5})
    local t = du.prepare_sliced_sparse_data(x, 32)
    assert.are.equal("csr", t.stype)
    assert.are.same({992, 20}, t.shape)
    assert.are.same(x:slice(1, 992):tostype("default"):totable(), t:tostype("default"):totable())
  end)
  it("keeps dense tensors dense and returns whole-batch data as is", function()
    local x = keras.ones({64, 3})
    assert.are.equal(x, du.prepare_sliced_sparse_data(x, 32))
    local t = du.prepare_sliced_sparse_data(keras.ones({70, 3}), 32)
    assert.are.same({64, 3}, t.shape)
    assert.are.equal("default", t.stype)
  end)
  it("warns and returns x when it has fewer rows than a batch", function()
    local msgs = {}
    local old = du.warn
    du.warn = function(m) msgs[#msgs + 1] = m end
    local x = keras.sparse.rand({10, 5}, "csr", 0.5, {seed = 1})
    local t = du.prepare_sliced_sparse_data(x, 32)
    du.warn = old
    assert.are.equal(x, t)
    assert.are.equal(1, #msgs)
    assert.matches("fewer than batch_size=32", msgs[1], 1, true)
  end)
  it("rejects a bad batch size", function()
    assert.has_error(function() du.prepare_sliced_sparse_data(keras.ones({4, 2}), 0) end,
      "prepare_sliced_sparse_data: batch_size must be a positive integer. Received: batch_size=0")
  end)
end)

describe("ArrayIterator", function()
  it("pad: the last batch is completed with rows from the start", function()
    local it = du.ArrayIterator{data = col(10), label = keras.range(1, 10), batch_size = 4}
    local ys, pads = {}, {}
    for x, y, pad in it:batches() do
      ys[#ys + 1] = flat(y)
      pads[#pads + 1] = pad
      assert.are.same(flat(x), flat(y))
    end
    assert.are.same({{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 1, 2}}, ys)
    assert.are.same({0, 0, 2}, pads)
    assert.are.equal(3, it:num_batches())
  end)
  it("discard: the partial batch is dropped", function()
    local it = du.ArrayIterator{data = col(10), label = keras.range(1, 10), batch_size = 4,
      last_batch_handle = "discard"}
    local ys = {}
    for _, y in it:batches() do ys[#ys + 1] = flat(y) end
    assert.are.same({{1, 2, 3, 4}, {5, 6, 7, 8}}, ys)
  end)
  it("roll_over: the leftover rows start the next pass", function()
    local it = du.ArrayIterator{data = col(10), label = keras.range(1, 10), batch_size = 4,
      last_batch_handle = "roll_over"}
    local passes = {}
    for p = 1, 2 do
      passes[p] = {}
      for _, y in it:batches() do passes[p][#passes[p] + 1] = flat(y) end
    end
    assert.are.same({{1, 2, 3, 4}, {5, 6, 7, 8}}, passes[1])
    assert.are.same({{9, 10, 1, 2}, {3, 4, 5, 6}, {7, 8, 9, 10}}, passes[2])
  end)
  it("shuffles CSR data and labels together, each pass a new permutation", function()
    keras.random.seed(3)
    local n = 50
    local dense = {}
    for i = 1, n do dense[i] = {0, i, 0} end
    local x = keras.sparse.csr_matrix(dense)
    local it = du.ArrayIterator{data = x, label = keras.range(1, n), batch_size = 7, shuffle = true}
    local orders = {}
    for p = 1, 2 do
      local seen, order = {}, {}
      for xb, yb in it:batches() do
        assert.are.equal("csr", xb.stype)
        local xt, yt = xb:tostype("default"):totable(), flat(yb)
        for i = 1, #yt do
          assert.are.equal(yt[i], xt[i][2])
          order[#order + 1] = yt[i]
        end
      end
      for i = 1, n do seen[order[i]] = true end
      for i = 1, n do assert.is_true(seen[i]) end
      orders[p] = order
    end
    assert.are_not.same(orders[1], orders[2])
  end)
  it("validates its options", function()
    assert.has_error(function() du.ArrayIterator{data = col(4), label = keras.range(1, 3)} end,
      "ArrayIterator: data and label have different numbers of rows: 4 and 3")
    assert.has_error(function() du.ArrayIterator{data = col(4), last_batch_handle = "wrap"} end,
      "ArrayIterator: last_batch_handle must be 'pad', 'discard' or 'roll_over'. Received: last_batch_handle=wrap")
    assert.has_error(function() du.ArrayIterator{data = col(4), batchsize = 2} end,
      "ArrayIterator: unknown option 'batchsize'")
  end)
end)
