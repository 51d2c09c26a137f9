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
local sparse = keras.sparse
local core = keras.core

local ngpu = keras.num_gpus()

local function no_gpu_reason()
  if not package.searchpath("keras.cuda", package.cpath) then
    return "keras-lua was built without CUDA (KL_CUDA=OFF or no nvcc)"
  end
  local _, reason = require("keras.cuda").device_count()
  return reason or "no CUDA device"
end

-- The load cost (issue 17): keras.num_gpus() loads keras.cuda but neither cuBLAS nor
-- cuSPARSE (gpu/cuda_blas_real.c opens them by dlopen at their first use); a library that
-- cannot be loaded is a message, never a crash.
describe("keras.cuda's cuBLAS and cuSPARSE", function()
  local real = package.searchpath("keras.cuda", package.cpath) ~= nil and
    not require("keras.cuda").versions().emulated
  it("are not loaded by keras.num_gpus()", function()
    if not real then
      pending("skipped: no real keras.cuda in this build (the emulated one links no CUDA library)")
      return
    end
    -- this process may have used them already (a dot on a GPU): ask a fresh one
    local lua = arg and arg[-1] or "lua5.4"
    local p = assert(io.popen(lua .. [[ -e 'require("keras").num_gpus(); ]] ..
      [[local f = io.open("/proc/self/maps"); local m = f and f:read("a") or "no maps"; ]] ..
      [[io.write(tostring(m:find("libcublas", 1, true)), " ", tostring(m:find("libcusparse", 1, true)), " ", ]] ..
      [[tostring(package.loaded["keras.cuda"] ~= nil), " ", tostring(m:find("cuda.so", 1, true) ~= nil))' 2>&1]]))
    local out = p:read("a")
    p:close()
    assert.are.equal("nil nil true true", out)
  end)
  it("missing: the status strings fall back to the headers' names, no crash", function()
    if not real then
      pending("skipped: no real keras.cuda in this build")
      return
    end
    local lua = arg and arg[-1] or "lua5.4"
    local p = assert(io.popen("KERAS_LUA_CUBLAS=/nonexistent/libcublas.so.13 " ..
      "KERAS_LUA_CUSPARSE=libc.so.6 " .. lua .. [[ -e 'require("keras").num_gpus(); ]] ..
      [[local c = require("keras.cuda"); print(select(2, c.error_message("cublas", 3))); ]] ..
      [[print(select(2, c.error_message("cusparse", 3)))' 2>&1]]))
    local out = p:read("a")
    p:close()
    assert.are.equal("op: cuBLAS error 3: CUBLAS_STATUS_ALLOC_FAILED\n" ..
      "op: cuSPARSE error 3: CUSPARSE_STATUS_INVALID_VALUE\n", out)
  end)
end)

if ngpu == 0 then
  describe("dot on a GPU", function()
    it("needs a device", function() pending("skipped: " .. no_gpu_reason()) end)
  end)
  return
end

local gpu, cpu = keras.gpu(0), keras.cpu()
local emulated = require("keras.cuda").device_info(0).emulated

-- a small LCG: the same values on every run
local seed = 12345
local function urand()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
end

-- A host tensor of shape, dtype and stype: a fraction density of non-zero values in
-- [-2, 2), a few of them -0, inf, -inf or NaN when special.
local function sample(shape, dtype, stype, density, special)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local t
  if n == 0 then
    t = keras.zeros(shape, {dtype = dtype})
  else
    local function fill(d)
      local r = {}
      for i = 1, shape[d] do
        if d == #shape then
          local v = 0.0
          if urand() < density then
            v = urand() * 4 - 2
            if special and urand() < 0.03 then
              local u = urand()
              v = u < 0.4 and -0.0 or u < 0.6 and math.huge or u < 0.8 and -math.huge or 0 / 0
            end
          end
          r[i] = v
        else
          r[i] = fill(d + 1)
        end
      end
      return r
    end
    t = keras.array(fill(1), {dtype = dtype})
  end
  if stype ~= "default" then t = sparse.cast_storage(t, stype) end
  return t
end

local function flat(t)
  local d = t:tostype("default")
  if d.ndim == 0 then return {d:item()} end
  return d:reshape({-1}):totable()
end

local function same(x, y, dtype)
  if x ~= x or y ~= y then return x ~= x and y ~= y end
  if emulated then return x == y and (x ~= 0 or 1 / x == 1 / y) end
  if x == math.huge or x == -math.huge or y == math.huge or y == -math.huge then return x == y end
  local tol = dtype == "float32" and 1e-4 or 1e-12
  return math.abs(x - y) <= tol * (1 + math.abs(y))
end

-- The device tensor d against the host tensor c (stype, shape, rows, values).
local function check_same(d, c, what)
  assert.are.equal("gpu(0)", d.device, what)
  local h = d:to(cpu)
  assert.are.equal(c.stype, h.stype, what)
  assert.are.same(c.shape, h.shape, what)
  assert.are.equal(c.dtype, h.dtype, what)
  if c.stype == "row_sparse" then
    assert.are.same(c.indices:totable(), h.indices:totable(), what .. ": stored rows")
  end
  local hv, cv = flat(h), flat(c)
  assert.are.equal(#cv, #hv, what)
  for i = 1, #cv do
    if not same(hv[i], cv[i], c.dtype) then
      error(string.format("%s: value %d: %.17g (gpu) vs %.17g (cpu)", what, i, hv[i], cv[i]), 2)
    end
  end
end

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

describe("dot on keras.gpu(0)", function()
  it("gives the CPU's result for every stype combination, with no host fallback", function()
    local nok, nerr = 0, 0
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
                local attrs = {transpose_a = ta, transpose_b = tb}
                local what = label(dtype, ak, bk, ta, tb, M, K, N)
                local okc, c = pcall(core.op, "dot", {a, b}, attrs)
                local ad, bd = a:to(gpu), b:to(gpu)
                local f0 = keras.device_fallback_count()
                local okd, d = pcall(core.op, "dot", {ad, bd}, attrs)
                assert.are.equal(f0, keras.device_fallback_count(), what .. ": host fallback")
                assert.are.equal(okc, okd, what .. ": " .. tostring(okc and d or c))
                if okc then
                  check_same(d, c, what)
                  nok = nok + 1
                else
                  assert.are.equal(tostring(c), tostring(d), what)
                  nerr = nerr + 1
                end
              end
            end
          end
        end
      end
    end
    assert.is_true(nok > 300 and nerr > 30, nok .. " results, " .. nerr .. " errors")
  end)

  it("gives the CPU's gradients (as dense and as row_sparse), with no host fallback", function()
    local n = 0
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
                local attrs = {transpose_a = ta, transpose_b = tb}
                local ok, out = pcall(core.op, "dot", {a, b}, attrs)
                if ok then
                  local g = out.ndim == 0 and keras.array(urand() * 2 - 1, {dtype = dtype})
                    or sample(out.shape, dtype, "default", 0.8, true)
                  local ad, bd, gd = a:to(gpu), b:to(gpu), g:to(gpu)
                  for i, x in ipairs({a, b}) do
                    if x.stype ~= "csr" then
                      for _, want in ipairs({"default", "row_sparse"}) do
                        local what = label(dtype, ak, bk, ta, tb, M, K, N) ..
                          string.format(": gradient of input %d as %s", i, want)
                        local c = core.op_backward("dot", {a, b}, g, i, want, attrs)
                        local f0 = keras.device_fallback_count()
                        local d = core.op_backward("dot", {ad, bd}, gd, i, want, attrs)
                        assert.are.equal(f0, keras.device_fallback_count(), what .. ": host fallback")
                        check_same(d, c, what)
                        n = n + 1
                      end
                    end
                  end
                end
              end
            end
          end
        end
      end
    end
    assert.is_true(n > 800, n .. " gradients")
  end)

  it("gives a csr . W weight gradient over the touched rows (csr^T . gout), as the CPU", function()
    for _, dtype in ipairs({"float32", "float64"}) do
      -- a batch of 64 rows over 5,000 columns
      local x = sparse.rand({64, 5000}, "csr", 0.002, {seed = 7, dtype = dtype})
      local w = sample({5000, 16}, dtype, "default", 1.0, false)
      local g = sample({64, 16}, dtype, "default", 1.0, false)
      local cw = core.op_backward("dot", {x, w}, g, 2, "row_sparse")
      local f0 = keras.device_fallback_count()
      local dw = core.op_backward("dot", {x:to(gpu), w:to(gpu)}, g:to(gpu), 2, "row_sparse")
      assert.are.equal(f0, keras.device_fallback_count())
      assert.are.equal("row_sparse", dw.stype)
      assert.is_true(#cw.indices:totable() > 0)
      check_same(dw, cw, dtype .. " csr^T . gout")
      -- csr^T . W (transpose_a): the weight gradient is csr . gout, dense
      local wt = sample({64, 16}, dtype, "default", 1.0, false)
      local gt = sample({5000, 16}, dtype, "default", 1.0, false)
      local at = {transpose_a = true}
      local ct = core.op_backward("dot", {x, wt}, gt, 2, "default", at)
      local dt = core.op_backward("dot", {x:to(gpu), wt:to(gpu)}, gt:to(gpu), 2, "default", at)
      check_same(dt, ct, dtype .. " csr . gout")
      assert.are.equal(f0, keras.device_fallback_count())
    end
  end)

  it("refuses what the CPU refuses, with the CPU's message", function()
    local a = sparse.rand({3, 4}, "csr", 0.5, {seed = 1})
    local w = keras.ones({4, 2})
    local ad, wd = a:to(gpu), w:to(gpu)
    local g = keras.ones({3, 2})
    -- no gradient with respect to the csr input
    local okc, ec = pcall(core.op_backward, "dot", {a, w}, g, 1, "default")
    local okd, ed = pcall(core.op_backward, "dot", {ad, wd}, g:to(gpu), 1, "default")
    assert.is_false(okc)
    assert.is_false(okd)
    assert.are.equal(tostring(ec), tostring(ed))
    assert.truthy(tostring(ed):find("no gradient with respect to the csr input a", 1, true))
    -- a gout of the wrong size
    local bad = keras.ones({3, 3})
    okc, ec = pcall(core.op_backward, "dot", {a, w}, bad, 2, "default")
    okd, ed = pcall(core.op_backward, "dot", {ad, wd}, bad:to(gpu), 2, "default")
    assert.is_false(okc)
    assert.is_false(okd)
    assert.are.equal(tostring(ec), tostring(ed))
    -- mixed devices
    assert.has_error(function() core.op("dot", {ad, w}) end)
  end)
end)
