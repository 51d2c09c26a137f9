-- gpu_ops_dot_spec.lua: the dot op on keras.gpu(0) (gpu/dev_ops_dot.c) against the CPU, for
-- every stype combination the CPU handles: a in {dense 1-d, 2-d, 3-d, csr, row_sparse}, b in
-- {dense 1-d, 2-d, csr, row_sparse 1-d, 2-d}, transpose_a / transpose_b, empty products,
-- float32 and float64 with -0, inf and NaN among the values. Forward: the result on the
-- device with the CPU's stype, shape, stored rows and values, or the CPU's error. Backward
-- (core.op_backward): the gradient of every non-csr input, as dense and as row_sparse (the
-- weight gradient of csr . W: its rows and values). keras.device_fallback_count() does not
-- move: dot runs on the device for every input.
--
-- Tolerance: on the emulated device (make test's lua-emu/gpu_ops_dot_spec) every value is the
-- CPU's bit for bit (-0 included): the own kernels sum in the CPU's order and the emulated
-- cuBLAS / cuSPARSE are OpenBLAS and the CPU's loop. On a GPU, cuBLAS and cuSPARSE sum in
-- their own order: |gpu - cpu| <= tol (1 + |cpu|), tol 1e-4 (float32) / 1e-12 (float64); the
-- stored rows of a row_sparse result exactly. Without a device every case is pending.
local keras = require("keras")
local gs = require("gpu_support")
local sparse = keras.sparse
local core = keras.core

-- The load cost (issue 17): keras.num_gpus() loads keras.cuda but neither cuBLAS nor
-- cuSPARSE (gpu/cuda_blas_real.c opens them by dlopen at their first use); a library that
-- cannot be loaded is a message, never a crash.
describe("keras.cuda's cuBLAS and cuSPARSE", function()
  local real = package.searchpath("keras.cuda", package.cpath) ~= nil and
    not require("keras.cuda").versions().emulated
  -- it(name): src's output in a fresh lua5.4 (this process may have used the libraries
  -- already: a dot on a GPU) with env is want; pending without the real module.
  local function in_child(name, src, env, want)
    it(name, function()
      if not real then
        pending("skipped: no real keras.cuda in this build (the emulated one links no CUDA library)")
        return
      end
      assert.are.equal(want, gs.run_child(src, env))
    end)
  end
  in_child("are not loaded by keras.num_gpus()", [[
require("keras").num_gpus()
local f = io.open("/proc/self/maps")
local m = f and f:read("a") or "no maps"
io.write(tostring(m:find("libcublas", 1, true)), " ", tostring(m:find("libcusparse", 1, true)), " ",
  tostring(package.loaded["keras.cuda"] ~= nil), " ", tostring(m:find("cuda.so", 1, true) ~= nil))
]], nil, "nil nil true true")
  in_child("missing: the status strings fall back to the headers' names, no crash", [[
require("keras").num_gpus()
local c = require("keras.cuda")
print(select(2, c.error_message("cublas", 3)))
print(select(2, c.error_message("cusparse", 3)))
]], "KERAS_LUA_CUBLAS=/nonexistent/libcublas.so.13 KERAS_LUA_CUSPARSE=libc.so.6",
    "op: cuBLAS error 3: CUBLAS_STATUS_ALLOC_FAILED\nop: cuSPARSE error 3: CUSPARSE_STATUS_INVALID_VALUE\n")
end)

if gs.pending_without_device(_ENV, "dot on a GPU", "needs a device") then return end

local gpu = keras.gpu(0)
local emulated = require("keras.cuda").device_info(0).emulated
local urand = gs.lcg(12345)

-- A host tensor of shape, dtype and stype: a fraction density of non-zero values in
-- [-2, 2), a few of them -0, inf, -inf or NaN when special.
local function sample(shape, dtype, stype, density, special)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local t
  if n == 0 then
    t = keras.zeros(shape, {dtype = dtype})
  else
    t = keras.array(gs.tab(shape, function()
      local v = 0.0
      if urand() < density then
        v = urand() * 4 - 2
        if special and urand() < 0.03 then
          local u = urand()
          v = u < 0.4 and -0.0 or u < 0.6 and math.huge or u < 0.8 and -math.huge or 0 / 0
        end
      end
      return v
    end), {dtype = dtype})
  end
  if stype ~= "default" then t = sparse.cast_storage(t, stype) end
  return t
end

-- On a GPU, cuBLAS and cuSPARSE sum in their own order: finite values within tol (1 + |cpu|).
local function near(dtype)
  if emulated then return nil end
  local tol = dtype == "float32" and 1e-4 or 1e-12
  return function(x, y)
    if x ~= x or y ~= y or math.abs(x) == math.huge or math.abs(y) == math.huge then return false end
    return math.abs(x - y) <= tol * (1 + math.abs(y))
  end
end

-- The device tensor d against the host tensor c (stype, shape, rows, values).
local function check_same(d, c, what) gs.same(d, c, what, near(c.dtype)) end

local A_KINDS = {
  {stype = "default", ndim = 2}, {stype = "default", ndim = 1}, {stype = "default", ndim = 3},
  {stype = "csr", ndim = 2}, {stype = "row_sparse", ndim = 2},
}
local B_KINDS = {
  {stype = "default", ndim = 2}, {stype = "default", ndim = 1}, {stype = "csr", ndim = 2},
  {stype = "row_sparse", ndim = 2}, {stype = "row_sparse", ndim = 1},
}
local SIZES = {{4, 6, 3}, {0, 6, 3}, {4, 0, 3}, {4, 6, 0}, {1, 1, 1}, {20, 30, 7}}

local function shapes(ak, bk, ta, tb, M, K, N)
  local as, bs
  if ak.ndim == 1 then as = {K}
  elseif ak.ndim == 3 then as = {M, 1, K}
  elseif ta then as = {K, M}
  else as = {M, K} end
  if bk.ndim == 1 then bs = {K}
  elseif tb then bs = {N, K}
  else bs = {K, N} end
  return as, bs
end

local function label(dtype, ak, bk, ta, tb, M, K, N)
  return string.format("%s %s %d-d%s . %s %d-d%s (M %d K %d N %d)", dtype, ak.stype, ak.ndim,
    ta and "^T" or "", bk.stype, bk.ndim, tb and "^T" or "", M, K, N)
end

-- f(a, b, attrs, dtype, what) for every case: each dtype, size, a kind, b kind and
-- transpose_a / transpose_b, a and b drawn from the stream.
local function each_case(f)
  for _, dtype in ipairs({"float32", "float64"}) do
    for si, sz in ipairs(SIZES) do
      local M, K, N = sz[1], sz[2], sz[3]
      for ai, ak in ipairs(A_KINDS) do
        for bi, bk in ipairs(B_KINDS) do
          for _, ta in ipairs({false, true}) do
            for _, tb in ipairs({false, true}) do
              local as, bs = shapes(ak, bk, ta, tb, M, K, N)
              local dens = ({0.5, 0.1, 1.0})[(si + ai + bi) % 3 + 1]
              local a = sample(as, dtype, ak.stype, dens, true)
              local b = sample(bs, dtype, bk.stype, dens, true)
              f(a, b, {transpose_a = ta, transpose_b = tb}, dtype, label(dtype, ak, bk, ta, tb, M, K, N))
            end
          end
        end
      end
    end
  end
end

describe("dot on keras.gpu(0)", function()
  it("gives the CPU's result for every stype combination, with no host fallback", function()
    local nok, nerr = 0, 0
    each_case(function(a, b, attrs, _, what)
      local okc, c, d = gs.op_both("dot", {a, b}, attrs, what)
      if okc then
        check_same(d, c, what)
        nok = nok + 1
      else
        nerr = nerr + 1
      end
    end)
    assert.is_true(nok > 300 and nerr > 30, nok .. " results, " .. nerr .. " errors")
  end)

  it("gives the CPU's gradients (as dense and as row_sparse), with no host fallback", function()
    local n = 0
    each_case(function(a, b, attrs, dtype, label_ab)
      local ok, out = pcall(core.op, "dot", {a, b}, attrs)
      if not ok then return end
      local g = out.ndim == 0 and keras.array(urand() * 2 - 1, {dtype = dtype})
        or sample(out.shape, dtype, "default", 0.8, true)
      for i, x in ipairs({a, b}) do
        if x.stype ~= "csr" then
          for _, want in ipairs({"default", "row_sparse"}) do
            local what = label_ab .. string.format(": gradient of input %d as %s", i, want)
            local okg, c, d = gs.backward_both("dot", {a, b}, g, i, want, attrs, what)
            assert.is_true(okg, what)
            check_same(d, c, what)
            n = n + 1
          end
        end
      end
    end)
    assert.is_true(n > 800, n .. " gradients")
  end)

  it("gives a csr . W weight gradient over the touched rows (csr^T . gout), as the CPU", function()
    for _, dtype in ipairs({"float32", "float64"}) do
      -- a batch of 64 rows over 5,000 columns
      local x = sparse.rand({64, 5000}, "csr", 0.002, {seed = 7, dtype = dtype})
      local w = sample({5000, 16}, dtype, "default", 1.0, false)
      local g = sample({64, 16}, dtype, "default", 1.0, false)
      local ok, cw, dw = gs.backward_both("dot", {x, w}, g, 2, "row_sparse", nil, dtype .. " csr^T . gout")
      assert.is_true(ok)
      assert.are.equal("row_sparse", dw.stype)
      assert.is_true(#cw.indices:totable() > 0)
      check_same(dw, cw, dtype .. " csr^T . gout")
      -- csr^T . W (transpose_a): the weight gradient is csr . gout, dense
      local wt = sample({64, 16}, dtype, "default", 1.0, false)
      local gt = sample({5000, 16}, dtype, "default", 1.0, false)
      local okt, ct, dt = gs.backward_both("dot", {x, wt}, gt, 2, "default", {transpose_a = true},
        dtype .. " csr . gout")
      assert.is_true(okt)
      check_same(dt, ct, dtype .. " csr . gout")
    end
  end)

  it("refuses what the CPU refuses, with the CPU's message", function()
    local a = sparse.rand({3, 4}, "csr", 0.5, {seed = 1})
    local w = keras.ones({4, 2})
    local g = keras.ones({3, 2})
    -- no gradient with respect to the csr input (both refuse it with the same message)
    local ok, _, ed = gs.backward_both("dot", {a, w}, g, 1, "default", nil, "the csr input")
    assert.is_false(ok)
    assert.truthy(tostring(ed):find("no gradient with respect to the csr input a", 1, true))
    -- a gout of the wrong size
    assert.is_false((gs.backward_both("dot", {a, w}, keras.ones({3, 3}), 2, "default", nil, "gout 3 x 3")))
    -- mixed devices
    assert.has_error(function() core.op("dot", {a:to(gpu), w}) end)
  end)
end)
