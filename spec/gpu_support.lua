-- spec/gpu_support.lua: what the GPU specs (spec/gpu*_spec.lua) share: why there is no
-- device (their cases then report themselves pending, never passed), a deterministic random
-- stream, nested tables of a shape, host copies, the comparison of a result on gpu(0) with
-- the CPU's (stype, dtype, shape, stored pattern, values bit for bit or within a tolerance),
-- an op and an op's backward run on both with no host fallback, a plan's loss and gradients
-- on both, and a child lua5.4 with the same module paths.
--
local keras = require("keras")
local assert = require("luassert")
local support = require("support")
local core = keras.core

local M = {}

-- nil when keras.num_gpus() > 0; else "skipped: <why there is no device>" for pending().
function M.no_device_reason()
  if keras.num_gpus() > 0 then return nil end
  if not package.searchpath("keras.cuda", package.cpath) then
    return "skipped: keras-lua was built without CUDA (KL_CUDA=OFF or no nvcc)"
  end
  local _, reason = require("keras.cuda").device_count()
  return "skipped: " .. (reason or "no CUDA device")
end

-- Without a device: declares describe(title) holding the case it(case) pending with the reason
-- (and more(reason)'s cases, when given), and returns true; the spec then returns. With a
-- device it declares nothing and returns false. env is the spec's _ENV: busted's describe / it
-- / pending live there, not in _G, and pending must be looked up inside the running case (the
-- pending of the file's level declares a case instead of marking this one).
function M.pending_without_device(env, title, case, more)
  local reason = M.no_device_reason()
  if not reason then return false end
  env.describe(title, function()
    env.it(case, function() env.pending(reason) end)
    if more then more(reason) end
  end)
  return true
end

-- In describe's setup and teardown (busted's, passed by the spec): the host fallbacks
-- counted over the whole block must not move, else it fails with message. Passed
-- before_each and after_each instead, it checks each case (the failure names the case).
function M.no_fallback_around(setup, teardown, message)
  local f_start
  setup(function() f_start = keras.device_fallback_count() end)
  teardown(function() assert.are.equal(f_start, keras.device_fallback_count(), message) end)
end

-- Asserts that the CUDA op table claims every op named in names.
function M.assert_claimed(names)
  local claimed = require("keras.cuda").claimed_ops()
  for _, name in ipairs(names) do assert.is_true(claimed[name] == true, name) end
end

-- A deterministic stream in [0, 1) from seed (an LCG: the same values on every run), and
-- irand(n) in 0 .. n - 1 drawn from it.
function M.lcg(seed)
  local function rnd()
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 2147483648
  end
  return rnd, function(n) return math.floor(rnd() * n) end
end

-- A nested table of the given shape, entries f(flat index 1..).
function M.tab(shape, f)
  local k = 0
  local function build(d)
    local t = {}
    for i = 1, shape[d] do
      if d == #shape then
        k = k + 1
        t[i] = f(k)
      else
        t[i] = build(d + 1)
      end
    end
    return t
  end
  return build(1)
end

-- t itself on the host, else its host copy.
function M.host(t) return t.device == "cpu(0)" and t or t:to(keras.cpu()) end

-- The values of t (any device, stype, rank) as a flat table, in row-major order.
function M.flat(t)
  local h = M.host(t)
  if h.ndim == 0 then return {h:item()} end
  local d = h:tostype("default")
  local n = 1
  for _, s in ipairs(d.shape) do n = n * s end
  if n == 0 then return {} end
  return d:reshape({-1}):totable()
end

-- Whether x and y are the same number: NaN matches NaN, -0 differs from +0.
function M.bits_equal(x, y)
  if x ~= x then return y ~= y end
  return x == y and (x ~= 0 or 1 / x == 1 / y)
end

-- A near(x, y) for same(): |x - y| <= tol * max(1, |y|); nil for tol nil (bit for bit).
function M.within(tol)
  if not tol then return nil end
  return function(x, y) return x == x and math.abs(x - y) <= tol * math.max(1, math.abs(y)) end
end

-- a (a result on gpu(0)) against b (the CPU's): the device, stype, dtype and shape, a sparse
-- result's stored pattern (nnz, indices, a csr's indptr) exactly, and every value bit for bit
-- or, where it is not, near(x, y) (nil: bit for bit). Fails naming what and the first entry.
function M.same(a, b, what, near)
  assert.are.equal("gpu(0)", a.device, what)
  assert.are.equal(b.stype, a.stype, what)
  assert.are.equal(b.dtype, a.dtype, what)
  assert.are.same(b.shape, a.shape, what)
  local ha, hb = M.host(a), M.host(b)
  if b.stype ~= "default" then
    assert.are.equal(hb.nnz, ha.nnz, what .. " nnz")
    assert.are.same(hb.indices:totable(), ha.indices:totable(), what .. " indices")
    if b.stype == "csr" then
      assert.are.same(hb.indptr:totable(), ha.indptr:totable(), what .. " indptr")
    end
  end
  local x, y = M.flat(ha), M.flat(hb)
  assert.are.equal(#y, #x, what)
  for i = 1, #y do
    if not (M.bits_equal(x[i], y[i]) or (near and near(x[i], y[i]))) then
      error(string.format("%s: entry %d: %.17g (gpu) vs %.17g (cpu)", what, i, x[i], y[i]), 2)
    end
  end
end

-- |a - b| <= rtol * max(1, |b|) entry by entry (a, b numbers or tensors on any device); returns
-- the worst relative difference seen.
function M.close(a, b, rtol, what)
  local ta = type(a) == "number" and {a} or M.flat(a)
  local tb = type(b) == "number" and {b} or M.flat(b)
  assert.are.equal(#tb, #ta, what)
  local worst = 0
  for i = 1, #ta do
    local d = math.abs(ta[i] - tb[i]) / math.max(1, math.abs(tb[i]))
    if not (d <= rtol) then
      error(string.format("%s: entry %d: %.9g (gpu) vs %.9g (cpu), relative %.3g > %g", what, i,
        ta[i], tb[i], d, rtol), 2)
    end
    if d > worst then worst = d end
  end
  return worst
end

-- run(move) on the host (move: the identity) and on gpu(0) (move: a tensor's copy there),
-- both under pcall: asserts that the device counted no host fallback and that both succeeded
-- or both failed with the same message. Returns ok, the CPU's result, the device's.
local function both(what, run)
  local ok, want = pcall(run, function(t) return t end)
  local gpu = keras.gpu(0)
  local f0 = keras.device_fallback_count()
  local ok2, got = pcall(run, function(t) return t:to(gpu) end)
  assert.are.equal(f0, keras.device_fallback_count(), what .. ": a host fallback")
  assert.are.equal(ok, ok2, what .. ": " .. tostring(ok2 and want or got))
  if not ok then assert.are.equal(tostring(want), tostring(got), what) end
  return ok, want, got
end

local function moved(ts, move)
  local r = {}
  for i, t in ipairs(ts) do r[i] = move(t) end
  return r
end

-- core.op(name, inputs, attrs) on the host tensors and on their copies on gpu(0): see both().
function M.op_both(name, inputs, attrs, what)
  return both(what, function(move) return core.op(name, moved(inputs, move), attrs) end)
end

-- core.op_backward(name, inputs, gout, i, want, attrs) on the host and on gpu(0): see both().
function M.backward_both(name, inputs, gout, i, want, attrs, what)
  return both(what, function(move)
    return core.op_backward(name, moved(inputs, move), move(gout), i, want, attrs)
  end)
end

-- A trainable variable of graph g holding a copy of host tensor t, moved to dev (a plan's
-- weights must be on its device: compile{device =} moves them the same way).
function M.var(g, t, dev)
  local c = t:copy()
  local n = g:variable(c, true)
  if dev ~= keras.cpu() then core.tensor_move(c, dev) end
  return n
end

-- build(g, dev) -> {feeds = {nodes}, values = {host tensors}, weights = {nodes}, loss = node}
-- (variables on dev: var()), run as a plan forward and backward on the CPU and on gpu(0), the
-- weights' gradients as grad_stypes asks; asserts no host fallback on either. Returns the
-- CPU's {loss, grads} and the device's.
function M.plan_grads(build, grad_stypes, what)
  local gpu = keras.gpu(0)
  local res = {}
  for _, dev in ipairs{keras.cpu(), gpu} do
    local g = core.graph_new()
    local s = build(g, dev)
    local p = core.plan_new(g, {feeds = s.feeds, outputs = {s.loss}, loss = s.loss,
      weights = s.weights, grad_stypes = grad_stypes, device = dev == gpu and gpu or nil})
    local f0 = keras.device_fallback_count()
    p:forward(s.values, true)
    res[#res + 1] = {loss = p:loss(), grads = p:backward()}
    assert.are.equal(f0, keras.device_fallback_count(), what .. ": a host fallback")
  end
  return res[1], res[2]
end

-- Runs the Lua source src in a child lua5.4 with this process's module paths (the emulated
-- keras.cuda first where it is first here), extra_env before the command. Returns its
-- output, stdout and stderr together.
function M.run_child(src, extra_env)
  local path = support.write_script(src)
  local env = string.format("LUA_PATH_5_4='%s' LUA_CPATH_5_4='%s' %s", package.path,
                            package.cpath, extra_env or "")
  local f = assert(io.popen(env .. " lua5.4 " .. path .. " 2>&1"))
  local out = f:read("a")
  f:close()
  os.remove(path)
  return out
end

return M
