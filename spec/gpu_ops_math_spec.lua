-- gpu_ops_math_spec.lua: the math ops of the registry on keras.gpu(0) (issue 17: "gpu/ holds
-- the CUDA backend for every registry op"): add, subtract, multiply, divide, minimum,
-- maximum, the scalar ops, the unary ops, softmax, sum, mean, argmax, one_hot, transpose,
-- concatenate and retain, forward (core.op on device tensors, every stype combination the
-- CPU takes, float32 / float64 / int64) and backward (a graph and a plan on the device
-- against the same plan on the CPU; core.op_backward for the stype a caller asks for when
-- the binding has it), their errors with the CPU's messages, and no host fallback for any
-- of them (keras.device_fallback_count() unchanged: gpu/dev_ops_math.c and
-- dev_ops_math_shape.c claim them for every input).
--
-- Exactness: every value is compared bit for bit (NaN matching NaN, -0 apart from +0), and a
-- sparse result's stored rows / columns exactly, except on a real GPU the values that go
-- through exp, log, sigmoid, tanh or pow (those ops, softmax, pow_scalar), compared within
-- TRANS_TOL relative to max(1, |cpu|): CUDA's libm is within 1-2 ulp of glibc's, not equal
-- to it. On this machine the device is the emulated one (lua-emu/gpu_ops_math_spec: the kernels
-- host-emulated, glibc's libm), where all of it is exact. Without a device
-- (keras.num_gpus() == 0) it reports itself pending with the reason. The helpers it shares
-- with the other GPU specs are in spec/gpu_support.lua.
local keras = require("keras")
local gs = require("gpu_support")
local core = keras.core

if gs.pending_without_device(_ENV, "the math ops on a GPU", "need a device") then return end

local cuda = require("keras.cuda")
local EMULATED = cuda.device_info(0).emulated
local TRANS_TOL = {float32 = 2e-6, float64 = 1e-12}
local MINE = {"add", "subtract", "multiply", "divide", "minimum", "maximum", "add_scalar",
  "mul_scalar", "div_scalar", "rsub_scalar", "rdiv_scalar", "minimum_scalar", "maximum_scalar",
  "pow_scalar", "negative", "square", "sqrt", "abs", "relu", "exp", "log", "sigmoid", "tanh",
  "softmax", "sum", "mean", "argmax", "one_hot", "transpose", "concatenate", "retain"}
local TRANS = {exp = true, log = true, sigmoid = true, tanh = true, softmax = true,
  pow_scalar = true}
local DTYPES = {"float32", "float64", "int64"}
local STYPES = {"default", "csr", "row_sparse"}

local rnd, irand = gs.lcg(20261207)
local tab, same, bits_equal = gs.tab, gs.same, gs.bits_equal

-- A host tensor of the given shape, dtype and stype: values in [-3, 3) (int64: integers in
-- [-20, 20]), a fraction zeros of zeros (rows of zeros for row_sparse), and with special
-- the edge values 0, -0, +-1, NaN, +-inf now and then (float only).
local function values(shape, dtype, stype, zeros, special)
  local sp = {0, -0.0, 1, -1, 0 / 0, math.huge, -math.huge, 1e-300}
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  local t
  if n == 0 then
    t = keras.zeros(shape, {dtype = dtype})
  elseif #shape == 0 then
    t = keras.full({}, dtype == "int64" and 2 or 1.5, {dtype = dtype})
  else
    local zero_row = {}
    t = keras.array(tab(shape, function(k)
      local row = math.floor((k - 1) / (n / shape[1]))
      if stype == "row_sparse" then
        if zero_row[row] == nil then zero_row[row] = rnd() < (zeros or 0) end
        if zero_row[row] then return 0 end
      elseif rnd() < (zeros or 0) then
        return 0
      end
      if dtype == "int64" then return irand(41) - 20 end
      if special and rnd() < special then return sp[1 + irand(#sp)] end
      return -3 + 6 * rnd()
    end), {dtype = dtype})
  end
  if stype and stype ~= "default" then t = t:tostype(stype) end
  return t
end

-- The tolerance of op name's values on this device: nil (bit for bit) but on a GPU for the
-- ops through CUDA's libm.
local function tol_for(name, dtype)
  if EMULATED or not TRANS[name] then return nil end
  return TRANS_TOL[dtype]
end

-- op on the host tensors and on their device copies: the same result (or the same error
-- and message), no fallback. Returns the host result or nil.
local function check_op(name, inputs, attrs, what)
  local ok, want, got = gs.op_both(name, inputs, attrs, what)
  if not ok then return nil end
  same(got, want, what, gs.within(tol_for(name, inputs[1].dtype)))
  return want
end

-- The gradients of loss = sum(op(inputs) * c) (c a fixed dense tensor: the op's gout) with
-- respect to the inputs listed in wrt (the others constants), as grad_stypes asks, through
-- a plan on the CPU and one on gpu(0): the same loss and gradients, no host fallback.
local function check_grads(name, inputs, attrs, wrt, grad_stypes, c, what)
  local h, d = gs.plan_grads(function(g, dev)
    local nodes, weights = {}, {}
    for i, t in ipairs(inputs) do
      if wrt[i] then
        nodes[i] = gs.var(g, t, dev)
        weights[#weights + 1] = nodes[i]
      else
        nodes[i] = g:constant(t)
      end
    end
    local y = g:op(name, nodes, attrs)
    local cn = g:constant(c)
    return {feeds = {}, values = {}, weights = weights,
      loss = g:op("sum", {g:op("multiply", {y, cn})})}
  end, grad_stypes, what)
  local tol = tol_for(name, inputs[1].dtype)
  assert.is_true(bits_equal(d.loss, h.loss) or
    (tol ~= nil and math.abs(d.loss - h.loss) <= 1e-5 * math.max(1, math.abs(h.loss))),
    what .. string.format(": loss %.17g (gpu) vs %.17g (cpu)", d.loss, h.loss))
  for k = 1, #h.grads do same(d.grads[k], h.grads[k], what .. " gradient " .. k, gs.within(tol)) end
end

-- core.op_backward on the host and on the device (the binding's direct backward, when it
-- has one): the gradient of input i as the stype want, from gout c.
local function check_backward(name, inputs, attrs, i, want, c, what)
  if not core.op_backward then return end
  local ok, hg, dg = gs.backward_both(name, inputs, c, i, want, attrs, what)
  if ok then same(dg, hg, what, gs.within(tol_for(name, inputs[1].dtype))) end
end

local function shape_str(s) return "(" .. table.concat(s, ",") .. ")" end

describe("the math ops on gpu(0)", function()
  gs.no_fallback_around(setup, teardown, "a math op fell back to the host")

  it("are compared strictly: a last-bit change, -0 for +0, a moved stored row all fail", function()
    local gpu = keras.gpu(0)
    local x = keras.array({{1.5, 0, -2}, {0, 0, 0}, {0.25, 3, 0}}, {dtype = "float64"})
    gs.same(x:to(gpu), x, "itself")
    local function rejects(b, near)
      assert.has_error(function() gs.same(x:to(gpu), b, "changed", near) end)
    end
    rejects(x + keras.array({{2 ^ -52, 0, 0}, {0, 0, 0}, {0, 0, 0}}, {dtype = "float64"}))
    rejects(keras.array({{1.5, -0.0, -2}, {0, 0, 0}, {0.25, 3, 0}}, {dtype = "float64"}))
    rejects(keras.array({{1.5, 0, -2}, {0, 0, 0}, {0.25, 0 / 0, 0}}, {dtype = "float64"}))
    rejects(keras.array({{1.5, 0, -2}, {0, 0, 0}, {0.25, 3, 0}}, {dtype = "float32"}))
    rejects(x * 1.001, gs.within(1e-4))
    gs.same(x:to(gpu), x * (1 + 1e-6), "within", gs.within(1e-5))
    local r = x:tostype("row_sparse")
    gs.same(r:to(gpu), r, "row_sparse itself")
    local z = keras.sparse.row_sparse_array{data = {{1.5, 0, -2}, {0, 0, 0}, {0.25, 3, 0}},
      indices = {1, 2, 3}, shape = {3, 3}, dtype = "float64"} -- the same values, a zero row stored
    assert.has_error(function() gs.same(r:to(gpu), z, "an explicit zero row") end)
    assert.has_error(function() gs.close(x:to(gpu), x * 1.001, 1e-4, "close") end)
    assert.are.equal(0, gs.close(x:to(gpu), x, 0, "close"))
  end)

  it("are all claimed by the CUDA table", function() gs.assert_claimed(MINE) end)

  it("add, subtract, multiply, divide, minimum, maximum: every stype pair, broadcasting",
    function()
      local ops = {"add", "subtract", "multiply", "divide", "minimum", "maximum"}
      for _, name in ipairs(ops) do
        for _, dt in ipairs(DTYPES) do
          for _, shape in ipairs{{6, 5}, {1, 4}, {0, 3}, {3, 0}} do
            for _, sa in ipairs(STYPES) do
              for _, sb in ipairs(STYPES) do
                local a = values(shape, dt, sa, 0.4, 0.1)
                local b = values(shape, dt, sb, 0.4, 0.1)
                check_op(name, {a, b}, nil, string.format("%s %s %s.%s %s", name, dt, sa, sb,
                  shape_str(shape)))
              end
            end
          end
          -- numpy broadcasting, dense and both-sparse (the result keeps the stype)
          for _, pair in ipairs{{{4, 5}, {4, 1}}, {{4, 1}, {1, 5}}, {{1, 5}, {4, 5}}} do
            for _, st in ipairs(STYPES) do
              check_op(name, {values(pair[1], dt, st, 0.3, 0.1), values(pair[2], dt, st, 0.3, 0.1)},
                nil, string.format("%s %s %s %s . %s", name, dt, st, shape_str(pair[1]),
                  shape_str(pair[2])))
            end
          end
          check_op(name, {values({2, 3, 4}, dt), values({4}, dt)}, nil, name .. " 3-d . 1-d")
          check_op(name, {values({2, 3, 4}, dt), values({}, dt)}, nil, name .. " 3-d . 0-d")
        end
      end
      -- the CPU's errors
      check_op("add", {values({3}, "float32"), values({4}, "float32")}, nil, "add (3) . (4)")
      check_op("add", {values({3}, "float32"), values({3}, "float64")}, nil, "add f32 . f64")
      check_op("divide", {values({3}, "int64"), values({3}, "int64")}, nil, "divide int64")
    end)

  it("add, subtract, multiply, divide, minimum, maximum: gradients", function()
    local ops = {"add", "subtract", "multiply", "divide", "minimum", "maximum"}
    for _, name in ipairs(ops) do
      for _, dt in ipairs{"float32", "float64"} do
        for _, pair in ipairs{{{5, 4}, {5, 4}}, {{5, 4}, {4}}, {{5, 1}, {1, 4}}, {{1, 1}, {3, 2}}} do
          local a, b = values(pair[1], dt, nil, 0, 0.05), values(pair[2], dt, nil, 0, 0.05)
          if name == "minimum" or name == "maximum" then b = a:copy() + 0 end -- ties
          if #pair[1] ~= #pair[2] or pair[1][1] ~= pair[2][1] or pair[1][2] ~= pair[2][2] then
            b = values(pair[2], dt, nil, 0, 0.05)
          end
          local out = core.op(name, {a, b})
          local c = values(out.shape, dt)
          local what = string.format("%s %s %s . %s", name, dt, shape_str(pair[1]), shape_str(pair[2]))
          check_grads(name, {a, b}, nil, {true, true}, {"default", "default"}, c, what)
          check_backward(name, {a, b}, nil, 1, "default", c, what .. " op_backward 1")
          check_backward(name, {a, b}, nil, 2, "default", c, what .. " op_backward 2")
        end
        -- row_sparse and csr operands (a row_sparse weight's gradient as row_sparse)
        local a = values({6, 3}, dt, "row_sparse", 0.5)
        local b = values({6, 3}, dt, "row_sparse", 0.5)
        local c = values({6, 3}, dt)
        check_grads(name, {a, b}, nil, {true, true}, {"row_sparse", "default"}, c,
          name .. " " .. dt .. " rsp.rsp")
        check_backward(name, {values({6, 3}, dt, "csr", 0.5), a}, nil, 2, "row_sparse", c,
          name .. " " .. dt .. " csr.rsp op_backward row_sparse")
      end
    end
  end)

  it("the scalar ops: every stype and dtype, the stype kept when f(0) = 0, gradients", function()
    local ops = {"add_scalar", "mul_scalar", "div_scalar", "rsub_scalar", "rdiv_scalar",
      "minimum_scalar", "maximum_scalar", "pow_scalar"}
    for _, name in ipairs(ops) do
      for _, dt in ipairs(DTYPES) do
        for _, st in ipairs(STYPES) do
          for _, s in ipairs{2, -1.5, 0, 0.5, 3} do
            local x = values({7, 4}, dt, st, 0.4, 0.1)
            local what = string.format("%s %s %s %g", name, dt, st, s)
            check_op(name, {x}, {scalar = s}, what) -- int64 with a fraction: the CPU's error
            if dt ~= "int64" and st ~= "csr" then
              local c = values({7, 4}, dt)
              check_grads(name, {x}, {scalar = s}, {true}, {st == "row_sparse" and "row_sparse"
                or "default"}, c, what)
              check_backward(name, {x}, {scalar = s}, 1, "default",
                values({7, 4}, dt, "row_sparse", 0.5), what .. " sparse gout")
            end
          end
        end
      end
    end
    check_op("minimum_scalar", {values({3}, "float32")}, {scalar = 0 / 0}, "minimum_scalar NaN")
  end)

  it("the unary ops and softmax: every stype and dtype, gradients", function()
    local ops = {"negative", "square", "sqrt", "abs", "relu", "exp", "log", "sigmoid", "tanh",
      "softmax"}
    for _, name in ipairs(ops) do
      for _, dt in ipairs(DTYPES) do
        for _, st in ipairs(STYPES) do
          for _, shape in ipairs{{6, 5}, {1, 1}, {0, 4}, {4, 0}} do
            local x = values(shape, dt, st, 0.4, 0.1)
            local what = string.format("%s %s %s %s", name, dt, st, shape_str(shape))
            check_op(name, {x}, nil, what) -- int64 exp etc.: the CPU's error
            if dt ~= "int64" and st ~= "csr" and shape[1] > 0 then
              local c = values(shape, dt)
              check_grads(name, {x}, nil, {true}, {st == "row_sparse" and "row_sparse"
                or "default"}, c, what)
            end
          end
        end
      end
    end
    for _, dt in ipairs{"float32", "float64"} do
      check_op("softmax", {values({5, 3, 4}, dt, "row_sparse", 0.5)}, nil, "softmax rsp 3-d")
      check_op("softmax", {values({9}, dt, "row_sparse", 0.5)}, nil, "softmax rsp 1-d")
      local x = values({3, 2, 5}, dt, nil, 0, 0.1)
      check_grads("softmax", {x}, nil, {true}, {"default"}, values({3, 2, 5}, dt), "softmax 3-d")
      check_backward("exp", {x}, nil, 1, "row_sparse", values({3, 2, 5}, dt), "exp op_backward")
    end
  end)

  it("sum and mean: dense, csr and row_sparse, each axis, keepdims, gradients", function()
    for _, name in ipairs{"sum", "mean"} do
      for _, dt in ipairs(DTYPES) do
        for _, st in ipairs(STYPES) do
          for _, shape in ipairs{{7, 4, 3}, {1, 1, 2}, {0, 3, 2}, {4, 0, 3}} do
            local s = st == "csr" and {shape[1], shape[2]} or shape
            local x = values(s, dt, st, 0.4, 0.05)
            for ax = 0, #s do
              for _, kd in ipairs{false, true} do
                local attrs = {keepdims = kd}
                if ax > 0 then attrs.axis = ax end
                local what = string.format("%s %s %s %s axis %d keepdims %s", name, dt, st,
                  shape_str(s), ax, tostring(kd))
                local r = check_op(name, {x}, attrs, what) -- int64: the CPU's error
                if r and st ~= "csr" then
                  check_grads(name, {x}, attrs, {true}, {st == "row_sparse" and "row_sparse"
                    or "default"}, values(r.shape, dt), what)
                end
              end
            end
          end
        end
      end
    end
  end)

  it("argmax and one_hot, with the CPU's messages for bad ids", function()
    for _, dt in ipairs(DTYPES) do
      local x = values({5, 4, 6}, dt, nil, 0.3, 0.1)
      for ax = 1, 3 do check_op("argmax", {x}, {axis = ax}, "argmax " .. dt .. " axis " .. ax) end
      check_op("argmax", {x}, nil, "argmax " .. dt)
      for _, st in ipairs{"csr", "row_sparse"} do
        check_op("argmax", {values({7, 5}, dt, st, 0.5)}, {axis = 2}, "argmax " .. dt .. " " .. st)
      end
      check_op("argmax", {values({3, 0}, dt)}, {axis = 2}, "argmax empty axis") -- the error
      local ids = keras.array(tab({6, 4}, function() return irand(6) end), {dtype = dt})
      check_op("one_hot", {ids}, {ival = 5}, "one_hot " .. dt)
      check_op("one_hot", {values({0, 3}, dt)}, {ival = 2}, "one_hot empty " .. dt)
      local bad = {{{1, 2}, {7, 0}}, {{1, -1}}}
      if dt ~= "int64" then
        bad[#bad + 1] = {{1, 2.5}}
        bad[#bad + 1] = {{0 / 0, 1}}
        bad[#bad + 1] = {{1, math.huge}}
      end
      for k, b in ipairs(bad) do
        check_op("one_hot", {keras.array(b, {dtype = dt})}, {ival = 5}, "one_hot bad " .. k)
      end
    end
  end)

  it("transpose: dense of any rank, csr to csr, row_sparse; gradients", function()
    for _, dt in ipairs(DTYPES) do
      for _, st in ipairs(STYPES) do
        for _, shape in ipairs{{6, 9}, {0, 3}, {1, 5}} do
          local x = values(shape, dt, st, 0.5, 0.1)
          local what = string.format("transpose %s %s %s", dt, st, shape_str(shape))
          check_op("transpose", {x}, nil, what)
          if dt ~= "int64" and st ~= "csr" and shape[1] > 0 then
            check_grads("transpose", {x}, nil, {true}, {st == "row_sparse" and "row_sparse"
              or "default"}, values({shape[2], shape[1]}, dt), what)
          end
        end
      end
      check_op("transpose", {values({2, 3, 4}, dt)}, nil, "transpose 3-d " .. dt)
      check_op("transpose", {values({5}, dt)}, nil, "transpose 1-d " .. dt)
    end
  end)

  it("concatenate: dense along each axis, csr along rows and columns, row_sparse, mixed",
    function()
      for _, dt in ipairs(DTYPES) do
        for _, axis in ipairs{1, 2} do
          for _, sts in ipairs{{"default", "default", "default"}, {"csr", "csr", "csr"},
              {"row_sparse", "row_sparse", "row_sparse"}, {"csr", "default", "row_sparse"}} do
            local parts = {}
            for i, n in ipairs{3, 0, 4} do
              local s = {5, 5}
              s[axis] = n
              parts[i] = values(s, dt, sts[i], 0.4, 0.1)
            end
            local what = string.format("concatenate %s axis %d %s", dt, axis, table.concat(sts, "."))
            local r = check_op("concatenate", parts, {axis = axis}, what)
            if r and dt ~= "int64" and sts[1] ~= "csr" then
              check_grads("concatenate", parts, {axis = axis}, {true, false, true},
                {sts[1] == "row_sparse" and "row_sparse" or "default",
                 sts[3] == "row_sparse" and "row_sparse" or "default"}, values(r.shape, dt), what)
            end
          end
        end
        check_op("concatenate", {values({2, 3, 4}, dt), values({2, 3, 1}, dt)}, {axis = 3},
          "concatenate 3-d axis 3 " .. dt)
        check_op("concatenate", {values({2, 3}, dt), values({3, 3}, dt)}, {axis = 2},
          "concatenate shapes that differ " .. dt) -- the CPU's error
      end
    end)

  it("retain: the requested stored rows, the CPU's message for a bad index; gradients", function()
    for _, dt in ipairs(DTYPES) do
      local x = values({30, 4}, dt, "row_sparse", 0.5, 0.1)
      for _, req in ipairs{{3, 7, 7, 0, 29, 12, 3}, {}, {5}, {29, 28, 27, 26, 1, 2}} do
        local idx = keras.array(req, {dtype = "int64"})
        if #req == 0 then idx = keras.zeros({0}, {dtype = "int64"}) end
        local what = string.format("retain %s {%s}", dt, table.concat(req, ","))
        local r = check_op("retain", {x, idx}, nil, what)
        if r and dt ~= "int64" then
          local c = values({30, 4}, dt)
          check_grads("retain", {x, idx}, nil, {true, false}, {"row_sparse"}, c, what)
          check_backward("retain", {x, idx}, nil, 1, "default", c, what .. " op_backward")
          check_backward("retain", {x, idx}, nil, 2, "default", c, what .. " op_backward ids")
        end
      end
      check_op("retain", {x, keras.array({2, 30, -1}, {dtype = "int64"})}, nil,
        "retain out of range " .. dt)
      check_op("retain", {x, keras.array({-4}, {dtype = "int64"})}, nil, "retain negative " .. dt)
    end
  end)
end)
