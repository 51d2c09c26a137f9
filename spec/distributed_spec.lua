-- spec/distributed_spec.lua: keras.distributed outside a launcher is a world of one process,
-- so the same script runs with and without mpirun (the MPI side: spec/mpi/*.lua).
local keras = require("keras")
local K, L, D = keras.backend, keras.layers, keras.distributed

describe("keras.distributed without mpirun", function()
  it("is a size-1 world whose collectives return copies", function()
    local r, n = D.init()
    assert.are.equal(0, r)
    assert.are.equal(1, n)
    assert.are.equal(0, D.rank())
    assert.are.equal(1, D.size())
    assert.are.equal(0, D.local_rank())
    assert.is_false(D.is_mpi())
    D.barrier()
    local t = keras.array({{1, 2}, {3, 4}})
    for _, op in ipairs({"sum", "mean", "max", "min"}) do
      local a = D.allreduce(t, {op = op})
      assert.are.same(t:totable(), a:totable())
    end
    local c = D.allreduce(t)
    K.set_value(c, keras.zeros({2, 2}))
    assert.are.same({{1, 2}, {3, 4}}, t:totable())
    assert.are.same(t:totable(), D.broadcast(t, 0):totable())
    assert.are.same(t:totable(), D.allgather(t):totable())
    local s = keras.sparse.csr_matrix{data = {5}, indices = {2}, indptr = {1, 2}, shape = {1, 3}}
    assert.are.equal("csr", D.allgather(s).stype)
    D.finalize()
  end)

  it("checks its arguments", function()
    assert.has_error(function() D.allreduce(keras.ones({2}), {op = "prod"}) end,
      "allreduce: op must be 'sum', 'mean', 'max' or 'min'. Received: op='prod'")
    assert.has_error(function() D.allreduce(keras.ones({2}), {opp = "sum"}) end,
      "allreduce: unknown option 'opp'")
    assert.has_error(function() D.allreduce({1, 2}) end,
      "allreduce: expected a keras.Tensor. Received: {1, 2}")
    assert.has_error(function() D.broadcast(keras.ones({2}), 1) end,
      "broadcast: root must be a rank in 0..0. Received: root=1")
    assert.has_error(function() D.broadcast(keras.ones({2}), 0.5) end,
      "broadcast: root must be a rank in 0..0. Received: root=0.5")
  end)

  it("compile{distributed = true} trains as the plain model when unshuffled", function()
    local X = keras.sparse.rand({50, 10}, "csr", 0.3, {seed = 2})
    local Y = K.dot(X, keras.ones({10, 1}))
    local function run(dist)
      keras.random.seed(1)
      local m = keras.Sequential{L.Input{shape = {10}, sparse = true}, L.Dense{units = 1, sparse_weight = true}}
      m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.05}, loss = "mse", distributed = dist}
      local h = m:fit(X, Y, {batch_size = 8, epochs = 2, verbose = 0, shuffle = false})
      return h.history.loss, m:get_weights()[1]:totable()
    end
    local l1, w1 = run(nil)
    local l2, w2 = run(true)
    assert.are.same(w1, w2)
    assert.are.same(l1, l2)
    local _, w3 = run({deterministic = true})
    assert.are.same(w1, w3)
    assert.has_error(function()
      keras.Sequential{L.Input{shape = {2}}, L.Dense{units = 1}}:compile{optimizer = "sgd", loss = "mse",
        distributed = "yes"}
    end, "Model.compile: distributed must be true, false or {deterministic = true}. Received: distributed='yes'")
    assert.has_error(function()
      keras.Sequential{L.Input{shape = {2}}, L.Dense{units = 1}}:compile{optimizer = "sgd", loss = "mse",
        distributed = {determinstic = true}}
    end, "Model.compile: unknown distributed option 'determinstic'")
  end)

  it("examples/distributed_libsvm.lua runs as one process", function()
    local dir = os.tmpname()
    os.remove(dir)
    local old = os.getenv
    os.getenv = function(k) -- luacheck: ignore
      if k == "KERAS_LUA_EXAMPLE_QUICK" then return "1" end
      if k == "KERAS_LUA_EXAMPLE_OUT" then return dir end
      return old(k)
    end
    local real_print = print
    print = function() end -- luacheck: ignore
    local ok, res = pcall(dofile, "examples/distributed_libsvm.lua")
    print, os.getenv = real_print, old -- luacheck: ignore
    assert(ok, res)
    assert.are.equal(1, res.ranks)
    assert.is_true(res.last_loss < res.first_loss and res.val_accuracy > 0.7, tostring(res.val_accuracy))
    assert.is_truthy(io.open(res.model, "rb"))
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
