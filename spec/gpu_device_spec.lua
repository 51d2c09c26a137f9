-- gpu_device_spec.lua: tensors on keras.gpu(0) (issue 17, API.md "Devices and scale-out"):
-- every stype and dtype moved there and back with its values, t.device and tostring, the
-- constructors' {device =} and keras.set_default_device, ops on device tensors (the result
-- on the device, the CPU's values; no host fallback for an op the CUDA table claims, one
-- counted fallback, warned once, for one it does not), mixed devices refused with both
-- named, host copies for totable / item / get, host-only functions refusing a device
-- tensor, and device memory going back to the caching allocator.
--
-- It runs on whatever keras.cuda is first on the C path: the emulated device in make test
-- (lua-emu/gpu_device_spec: gpu/cuda_vendor_emu.c, the kernels host-emulated), a real GPU
-- under tools/gpu-check. Without a device (keras.num_gpus() == 0) every case reports itself
-- pending with the reason, never passed.
local keras = require("keras")
local support = require("support")
local gs = require("gpu_support")
local core = keras.core

if gs.pending_without_device(_ENV, "tensors on a GPU", "need a device",
    function(reason)
      it("a GPU request says why there is none", function()
        local ok, err = pcall(keras.gpu, 0)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("^gpu: "), err)
        pending(reason)
      end)
    end) then
  return
end

local ngpu = keras.num_gpus()
local cuda = require("keras.cuda")
local g = keras.gpu(0)
local cpu = keras.cpu()
local claimed = cuda.claimed_ops()

-- Host tables: X, Y (2 x 3), P positive, W (3 x 2), sparse-ish S (4 x 3).
local X = {{0.5, -1.25, 2}, {3, -0.75, 1.5}}
local Y = {{1.5, 2, -0.5}, {0.25, -4, 3}}
local P = {{0.5, 1.25, 2}, {3, 0.75, 1.5}}
local W = {{1, 2}, {0, -1}, {0.5, 3}}
local S = {{0, 2, 0}, {0, 0, 0}, {-1, 0, 4}, {0, 0.5, 0}}

local function shape_of(t)
  local s = {}
  for i, v in ipairs(t.shape) do s[i] = v end
  return s
end

describe("tensors on gpu(0)", function()
  it("keras.gpu(0) is the device keras.num_gpus() counts", function()
    assert.is_true(ngpu >= 1)
    assert.are.equal("gpu(0)", tostring(g))
    local info = cuda.device_info(0)
    assert.is_true(#info.name > 0 and info.total_memory > 0)
  end)

  it("move there and back with their stype, dtype, shape and values", function()
    for _, dtype in ipairs{"float32", "float64", "int64"} do
      local src = support.rand_table(7, 5, 0.5, 11)
      if dtype == "int64" then src = support.map(src, function(v) return math.floor(v * 100) end) end
      local x = keras.array(src, {dtype = dtype})
      for _, stype in ipairs{"default", "csr", "row_sparse"} do
        local h = x:tostype(stype)
        local d = h:to(g)
        assert.are.equal("gpu(0)", d.device)
        assert.are.equal(stype, d.stype)
        assert.are.equal(dtype, d.dtype)
        assert.are.same(shape_of(h), shape_of(d))
        assert.are.equal(tostring(h):gsub("@cpu%(0%)", "@gpu(0)"), tostring(d))
        assert.is_true(rawequal(d, d:to(g))) -- already there: the same tensor
        local back = d:to(cpu)
        assert.are.equal("cpu(0)", back.device)
        assert.are.equal(stype, back.stype)
        assert.are.same(h:totable(), back:totable())
        assert.are.same(h:totable(), d:totable()) -- totable reads a host copy
        if stype ~= "default" then
          assert.are.same(h.indices:totable(), back.indices:totable())
        end
      end
    end
  end)

  it("converts on the device (stype, dtype, copy)", function()
    local h = keras.array(S)
    local d = h:to(g)
    local c = d:tostype("csr")
    assert.are.equal("gpu(0)", c.device)
    assert.are.equal("csr", c.stype)
    assert.are.same(S, c:totable())
    local r = c:tostype("row_sparse")
    assert.are.equal("gpu(0)", r.device)
    assert.are.same({1, 3, 4}, r.indices:totable())
    local cp = d:copy()
    assert.are.equal("gpu(0)", cp.device)
    assert.are.same(S, cp:totable())
  end)

  it("are made there by the constructors' {device =} and by the default device", function()
    local z = keras.zeros({2, 3}, {device = g})
    assert.are.equal("gpu(0)", z.device)
    assert.are.same({{0, 0, 0}, {0, 0, 0}}, z:totable())
    local f = keras.full({2}, 7, {device = g, dtype = "float64"})
    assert.are.same({"gpu(0)", "float64", {7, 7}}, {f.device, f.dtype, f:totable()})
    assert.are.same({"gpu(0)", {{1, 2}}}, {keras.array({{1, 2}}, {device = g}).device,
      keras.array({{1, 2}}, {device = g}):totable()})
    assert.are.same({1, 2, 3, 4, 5}, keras.range(1, 5, {device = g}):totable())
    assert.are.equal("gpu(0)", keras.ones({3}, {device = g}).device)
    local ok, err = pcall(function()
      keras.set_default_device(g)
      local t = keras.zeros({2})
      local o = keras.ones({1}, {device = cpu}) -- an explicit device wins
      assert.are.equal("gpu(0)", t.device)
      assert.are.equal("cpu(0)", o.device)
      assert.are.equal("gpu(0)", tostring(keras.default_device()))
    end)
    keras.set_default_device(cpu)
    assert(ok, err)
    assert.are.equal("cpu(0)", keras.zeros({1}).device)
  end)

  it("read a host copy for item, get and totable", function()
    local d = keras.array(X, {device = g})
    assert.are.equal(-0.75, d:get(2, 2))
    local s = core.op("sum", {d})
    assert.are.equal("gpu(0)", s.device)
    assert.are.equal(5, s:item())
    assert.are.same(X, d:totable())
  end)

  it("are refused, with the device named, by host-only functions", function()
    local d = keras.array(S, {device = g}):tostype("csr")
    local ok, err = pcall(keras.sparse.check_format, d)
    assert.is_false(ok)
    assert.truthy(tostring(err):find(
      "check_format: the tensor is on gpu(0); copy it to the host first (t:to(keras.cpu()))", 1, true), err)
  end)
end)

describe("ops on gpu(0)", function()
  local tol_ops = {exp = true, log = true, sigmoid = true, tanh = true, softmax = true,
                   pow_scalar = true, sum = true, mean = true, dot = true}
  local cases = {
    {"add", {X, Y}}, {"subtract", {X, Y}}, {"multiply", {X, Y}}, {"divide", {X, Y}},
    {"minimum", {X, Y}}, {"maximum", {X, Y}},
    {"add_scalar", {X}, {scalar = 2}}, {"mul_scalar", {X}, {scalar = -3}},
    {"div_scalar", {X}, {scalar = 4}}, {"rsub_scalar", {X}, {scalar = 1}},
    {"rdiv_scalar", {P}, {scalar = 2}}, {"minimum_scalar", {X}, {scalar = 0.5}},
    {"maximum_scalar", {X}, {scalar = 0.5}}, {"pow_scalar", {P}, {scalar = 2}},
    {"negative", {X}}, {"square", {X}}, {"abs", {X}}, {"relu", {X}}, {"sqrt", {P}},
    {"exp", {X}}, {"log", {P}}, {"sigmoid", {X}}, {"tanh", {X}}, {"softmax", {X}},
    {"transpose", {X}}, {"sum", {X}}, {"sum", {X}, {axis = 1}}, {"mean", {X}, {axis = 2}},
    {"dot", {X, W}},
  }

  it("run there with the CPU's results, and without a host fallback when claimed", function()
    for _, dtype in ipairs{"float32", "float64"} do
      for _, c in ipairs(cases) do
        local name, attrs = c[1], c[3]
        local hin, din = {}, {}
        for i, tbl in ipairs(c[2]) do
          hin[i] = keras.array(tbl, {dtype = dtype})
          din[i] = hin[i]:to(g)
        end
        local f0 = keras.device_fallback_count()
        local rd = core.op(name, din, attrs)
        local delta = keras.device_fallback_count() - f0
        local rh = core.op(name, hin, attrs)
        local what = name .. " " .. dtype
        assert.are.equal("gpu(0)", rd.device, what)
        assert.are.same({rh.stype, rh.dtype, shape_of(rh)}, {rd.stype, rd.dtype, shape_of(rd)}, what)
        if tol_ops[name] then
          support.assert_near(rd:totable(), rh:totable(), support.tol(dtype))
        else
          assert.are.same(rh:totable(), rd:totable(), what)
        end
        assert.are.equal(claimed[name] and 0 or 1, delta,
          what .. (claimed[name] and ": claimed by the CUDA table, yet it fell back to the host"
                                  or ": not claimed, so one host fallback"))
      end
    end
  end)

  it("run through the operators", function()
    local hx, hy = keras.array(X), keras.array(Y)
    local dx, dy = hx:to(g), hy:to(g)
    for _, pair in ipairs{
      {dx + dy, hx + hy}, {dx - dy, hx - hy}, {dx * dy, hx * hy}, {dx / dy, hx / hy},
      {dx * 2, hx * 2}, {2 - dx, 2 - hx}, {-dx, -hx}, {dx + 1.5, hx + 1.5},
    } do
      assert.are.equal("gpu(0)", pair[1].device)
      assert.are.same(pair[2]:totable(), pair[1]:totable())
    end
  end)

  it("keep MXNet's storage-type inference on sparse inputs", function()
    local hs = keras.array(S):tostype("csr")
    local ds = hs:to(g)
    local hw = keras.array({{1, 2}, {0, -1}, {0.5, 3}})
    local dw = hw:to(g)
    local sum = ds + ds
    assert.are.same({"gpu(0)", "csr"}, {sum.device, sum.stype})
    assert.are.same((hs + hs):totable(), sum:totable())
    local prod = keras.sparse.dot(ds, dw)
    assert.are.same({"gpu(0)", "default"}, {prod.device, prod.stype})
    support.assert_near(prod:totable(), keras.sparse.dot(hs, hw):totable(), 1e-6)
    local go = keras.array({{1, 0}, {2, 1}, {0, 3}, {-1, 1}})
    local gr = keras.sparse.dot(ds, go:to(g), {transpose_a = true})
    assert.are.same({"gpu(0)", "row_sparse"}, {gr.device, gr.stype})
    support.assert_near(gr:totable(), keras.sparse.dot(hs, go, {transpose_a = true}):totable(), 1e-6)
    local r = ds:tostype("row_sparse") * 2
    assert.are.same({"gpu(0)", "row_sparse"}, {r.device, r.stype})
    assert.are.same((hs:tostype("row_sparse") * 2):totable(), r:totable())
  end)

  it("refuse inputs on two devices, naming both", function()
    local dx, hy = keras.array(X, {device = g}), keras.array(Y)
    local ok, err = pcall(function() return dx + hy end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("add: inputs on different devices: input 1 on gpu(0), " ..
      "input 2 on cpu(0)", 1, true), err)
    ok, err = pcall(core.op, "dot", {keras.array(X), keras.array(W, {device = g})})
    assert.is_false(ok)
    assert.truthy(tostring(err):find("input 1 on cpu(0), input 2 on gpu(0)", 1, true), err)
  end)
end)

describe("an op without a device kernel", function()
  -- KERAS_LUA_CUDA_DISABLE_OPS leaves the named ops' kernels out of the registered table
  -- (gpu/dev_backend.c), so add runs on the host whatever the CUDA table claims
  it("runs on the host: the CPU's result, on the device, counted, warned once", function()
    local out = gs.run_child([[
local keras = require("keras")
local core, g = keras.core, keras.gpu(0)
assert(not require("keras.cuda").claimed_ops().add, "add is still claimed")
local hx, hy = keras.array({{1, 2.5}, {-3, 4}}), keras.array({{0.5, -1}, {2, 0}})
local dx, dy = hx:to(g), hy:to(g)
local f0 = keras.device_fallback_count()
local r1, r2 = dx + dy, core.op("add", {dx, dy})
local n = keras.device_fallback_count() - f0
local want = (hx + hy):totable()
local same = true
for i = 1, 2 do for j = 1, 2 do
  same = same and r1:totable()[i][j] == want[i][j] and r2:totable()[i][j] == want[i][j]
end end
print(string.format("RESULT %s %s %d %s", r1.device, r2.device, n, tostring(same)))
]], "KERAS_LUA_CUDA_DISABLE_OPS=add")
    assert.truthy(out:find("RESULT gpu(0) gpu(0) 2 true", 1, true), out)
    local warning = "add on gpu(0) has no device kernel; computed on the host (device fallback)"
    local _, count = out:gsub(warning:gsub("%p", "%%%0"), "")
    assert.are.equal(1, count, out)
  end)
end)

describe("device memory", function()
  it("goes back to the device's caching allocator and is reused", function()
    collectgarbage()
    collectgarbage()
    local s0 = cuda.memory_stats(0)
    do
      local t = keras.zeros({100, 100}, {device = g})
      local u = t + t
      assert.are.equal(0, u:totable()[100][100])
    end
    collectgarbage()
    collectgarbage()
    local s1 = cuda.memory_stats(0)
    assert.are.equal(s0.in_use_bytes, s1.in_use_bytes)
    assert.is_true(s1.cached_bytes >= 40000)
    local t = keras.zeros({100, 100}, {device = g}) -- a block of the same size, from the cache
    local s2 = cuda.memory_stats(0)
    assert.are.equal(s1.dev_mallocs, s2.dev_mallocs)
    assert.is_true(s2.cache_hits > s1.cache_hits)
    assert.are.equal("gpu(0)", t.device)
    cuda.synchronize(0)
  end)
end)
