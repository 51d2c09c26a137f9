-- gpu_autograd_spec.lua: keras.autograd on device tensors (issue 17): attach_grad puts the
-- gradient where the tensor lives, loss:backward() runs a device plan there, and the
-- gradients equal the CPU's (dense and row_sparse, through dot of a csr, an Embedding gather
-- (the "embedding" op Embedding applies, then a mean or the masked mean), reductions);
-- layer.get_weights() of a model compiled on a GPU returns host copies; tensors on two
-- devices in one recording are an error naming both: the eager op's when one op mixes them,
-- backward's when attached tensors on two devices feed different ops. Bit for bit on the
-- emulated device (cuda.device_info(0).emulated: every op used here has a device kernel
-- there); on a GPU within RTOL (a device's reductions may round differently). Every case
-- checks that the host fallback counter did not move (gs.no_fallback_around). Without a
-- device it reports itself pending, never passed.
local keras = require("keras")
local gs = require("gpu_support")
local K = keras.backend

local RTOL = 1e-5

-- Runs f(x, w) recorded with w attached (stype st) on the device given, returns w.grad.
local function grad_of(f, x, w, st, dev)
  local xd, wd = x, w:copy()
  if dev then xd, wd = x:to(dev), w:to(dev) end
  wd:attach_grad{stype = st}
  local loss = keras.autograd.record(function() return f(xd, wd) end)
  loss:backward()
  return wd.grad, wd
end

if gs.pending_without_device(_ENV, "autograd on a GPU", "needs a CUDA device") then return end

describe("autograd on a GPU", function()
  local gpu = keras.gpu(0)
  -- 0 (bit for bit) on the emulated device, RTOL on a GPU
  local rtol = require("keras.cuda").device_info(0).emulated and 0 or RTOL
  local function close(a, b, what) gs.close(a, b, rtol, what) end
  gs.no_fallback_around(before_each, after_each, "an op of the case fell back to the host")

  it("dense expressions: the gradient on the device, the CPU's values", function()
    keras.random.seed(3)
    local x = keras.random.normal({5, 4}, {seed = 1})
    local w = keras.random.normal({4, 3}, {seed = 2})
    local cases = {
      function(a, b) return K.sum(K.dot(a, b) * K.dot(a, b)) end,
      function(a, b) return K.mean(K.sigmoid(K.dot(a, b))) end,
      function(a, b) return K.sum(K.relu(K.dot(a, b) - 0.1) / 3) end,
    }
    for i, f in ipairs(cases) do
      local gd, wd = grad_of(f, x, w, "default", gpu)
      local gc = grad_of(f, x, w, "default")
      assert.are.equal("gpu(0)", gd.device)
      assert.are.equal("gpu(0)", wd.device)
      close(gd, gc, "case " .. i)
    end
  end)

  it("csr . w with a row_sparse gradient over the touched rows", function()
    local x = keras.sparse.csr_matrix{data = {1, 2, 3, -1}, indices = {2, 5, 1, 5},
      indptr = {1, 3, 3, 5}, shape = {3, 6}}
    local w = keras.random.uniform({6, 2}, {seed = 4})
    local f = function(a, b) return K.sum(K.dot(a, b) * 2) end
    local gd = grad_of(f, x, w, "row_sparse", gpu)
    local gc = grad_of(f, x, w, "row_sparse")
    assert.are.equal("row_sparse", gd.stype)
    assert.are.same(gc.indices:totable(), gd.indices:totable())
    close(gd, gc, "csr dot")
  end)

  it("an Embedding gather (ids -> rows of w, repeated ids, padding 0) then a mean or the " ..
     "masked mean: row_sparse and dense gradients", function()
    local V, D = 7, 3
    -- (4, 5) ids in 0..V: id 3 repeated across samples, 0 the padding (a row of zeros)
    local ids = keras.array({{1, 3, 3, 0, 7}, {0, 0, 0, 0, 0}, {3, 2, 5, 3, 3}, {6, 0, 1, 4, 3}},
      {dtype = "int64"})
    local w = keras.random.uniform({V, D}, {seed = 5, low = -1, high = 1})
    local function gather(i, b) return K._apply("embedding", {i, b}, {ival = V}, "Embedding") end
    local fs = {
      mean = function(i, b) return K.sum(K.sigmoid(K.mean(gather(i, b), 2)) * 3) end,
      masked_mean = function(i, b)
        local m = K._apply("masked_mean", {gather(i, b), i}, nil, "GlobalAveragePooling1D")
        return K.sum(K.square(m))
      end,
    }
    for name, f in pairs(fs) do
      for _, st in ipairs{"row_sparse", "default"} do
        local what = name .. " " .. st
        local gd, wd = grad_of(f, ids, w, st, gpu)
        local gc = grad_of(f, ids, w, st)
        assert.are.equal("gpu(0)", gd.device, what)
        assert.are.equal("gpu(0)", wd.device, what)
        assert.are.equal(st, gd.stype, what)
        if st == "row_sparse" then
          -- the rows the ids touch (padding included: its row gets a zero gradient, as on the CPU)
          assert.are.same(gc.indices:totable(), gs.host(gd).indices:totable(), what)
        end
        close(gd, gc, what)
      end
    end
  end)

  it("get_weights of a layer of a GPU model is on the host", function()
    local m = keras.Sequential{keras.layers.Input{shape = {3}}, keras.layers.Dense{units = 2}}
    m:compile{optimizer = "sgd", loss = "mse", device = gpu}
    local ws = m.layers[#m.layers]:get_weights()
    assert.are.equal("cpu(0)", ws[1].device)
    assert.are.equal("cpu(0)", m:get_weights()[1].device)
    assert.are.equal("gpu(0)", m.layers[#m.layers].weights[1].device)
  end)

  it("tensors on two devices in one op of a recording: the op's error naming both", function()
    local a = keras.array({{1, 2}}, {device = gpu})
    local b = keras.array({{1, 2}})
    b:attach_grad()
    assert.has_error(function()
      keras.autograd.record(function() return a * b end):backward()
    end, "multiply: inputs on different devices: input 1 on gpu(0), input 2 on cpu(0)")
  end)

  it("attached tensors on two devices in separate ops: backward's error naming both", function()
    local a = keras.array({{1, 2}}, {device = gpu})
    local b = keras.array({{3, 4}})
    b:attach_grad()
    a:attach_grad()
    -- each op has its inputs on one device, so recording succeeds; the loss reaches a only
    local loss = keras.autograd.record(function()
      local _ = K.sum(b * b)
      return K.sum(a * a)
    end)
    assert.are.equal("gpu(0)", loss.device)
    assert.has_error(function() loss:backward() end,
      "backward: the tensors with attach_grad() are on different devices (cpu(0) and gpu(0))")
    -- nothing was written: the gradients are still the zeros attach_grad made, where they were
    assert.are.equal("gpu(0)", a.grad.device)
    assert.are.equal("cpu(0)", b.grad.device)
    assert.are.same({0, 0}, gs.flat(a.grad))
    assert.are.same({0, 0}, gs.flat(b.grad))
  end)
end)
