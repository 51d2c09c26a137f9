-- gpu_autograd_spec.lua: keras.autograd on device tensors (issue 17): attach_grad puts the
-- gradient where the tensor lives, loss:backward() runs a device plan there, and the
-- gradients equal the CPU's (dense and row_sparse, through dot of a csr, an Embedding-like
-- gather, reductions); layer.get_weights() of a model compiled on a GPU returns host copies;
-- tensors on two devices in one recording are an error naming both. Bit for bit on the
-- emulated device (every op used here has a device kernel: the fallback counter must not
-- move); on a GPU within RTOL (a device's reductions may round differently). Without a device
-- it reports itself pending, never passed.
local keras = require("keras")
local gs = require("gpu_support")
local K = keras.backend

local RTOL = 1e-5

local function close(a, b, what) gs.close(a, b, RTOL, what) end

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
      local before = keras.device_fallback_count()
      local gd, wd = grad_of(f, x, w, "default", gpu)
      local gc = grad_of(f, x, w, "default")
      assert.are.equal("gpu(0)", gd.device)
      assert.are.equal("gpu(0)", wd.device)
      close(gd, gc, "case " .. i)
      assert.are.equal(before, keras.device_fallback_count(), "case " .. i .. " fell back to the host")
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

  it("get_weights of a layer of a GPU model is on the host", function()
    local m = keras.Sequential{keras.layers.Input{shape = {3}}, keras.layers.Dense{units = 2}}
    m:compile{optimizer = "sgd", loss = "mse", device = gpu}
    local ws = m.layers[#m.layers]:get_weights()
    assert.are.equal("cpu(0)", ws[1].device)
    assert.are.equal("cpu(0)", m:get_weights()[1].device)
    assert.are.equal("gpu(0)", m.layers[#m.layers].weights[1].device)
  end)

  it("tensors on two devices in one recording are an error naming both", function()
    local a = keras.array({{1, 2}}, {device = gpu})
    local b = keras.array({{1, 2}})
    b:attach_grad()
    assert.has_error(function()
      keras.autograd.record(function() return a * b end):backward()
    end, "multiply: inputs on different devices: input 1 on gpu(0), input 2 on cpu(0)")
  end)
end)
