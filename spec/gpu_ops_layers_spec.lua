-- gpu_ops_layers_spec.lua: the layer ops of the registry on keras.gpu(0) (issue 17: "every
-- layer op ... tested against the CPU"): bias_add, embedding, masked_mean, global_max_pool,
-- reg_terms and the nine losses, forward (core.op on device tensors) and backward (a graph
-- and a plan on the device, against the same plan on the CPU), their values against the
-- CPU's, their errors with the CPU's messages, and no host fallback for any of them
-- (keras.device_fallback_count() unchanged: gpu/dev_ops_layers.c claims them all).
--
-- Exactness: every value is compared bit for bit (NaN matching NaN, -0 apart from +0),
-- except on a real GPU the forward of the losses that call log (binary / categorical /
-- sparse categorical crossentropy, poisson), compared within LOG_TOL relative (CUDA's log
-- is within 1 ulp of glibc's, not equal to it). On this machine the device is the emulated
-- one (lua-emu/gpu_ops_layers_spec: the kernels host-emulated), where all of it is exact.
-- Without a device (keras.num_gpus() == 0) it reports itself pending with the reason. The
-- helpers it shares with the other GPU specs are in spec/gpu_support.lua.
local keras = require("keras")
local gs = require("gpu_support")

if gs.pending_without_device(_ENV, "the layer ops on a GPU", "need a device") then return end

local cuda = require("keras.cuda")
local LOG_TOL = {float32 = 3e-7, float64 = 1e-12}
local LOG_LOSSES = {binary_crossentropy = true, categorical_crossentropy = true,
  sparse_categorical_crossentropy = true, poisson = true}
local LOSSES = {"mean_squared_error", "mean_absolute_error", "binary_crossentropy",
  "categorical_crossentropy", "sparse_categorical_crossentropy", "hinge", "squared_hinge",
  "poisson", "huber"}
local MINE = {"bias_add", "embedding", "masked_mean", "global_max_pool", "reg_terms"}
for _, l in ipairs(LOSSES) do MINE[#MINE + 1] = l end

local rnd, irand = gs.lcg(20261206)
local tab, flat, var, bits_equal = gs.tab, gs.flat, gs.var, gs.bits_equal

-- op on the host tensors and on their device copies: the same result, no fallback.
local function check_op(name, inputs, attrs, what, tol)
  local ok, want, got = gs.op_both(name, inputs, attrs, what)
  assert.is_true(ok, what)
  gs.same(got, want, what, gs.within(tol))
  return got, want
end

-- The same failure on the host and on the device, with the same message.
local function check_error(name, inputs, attrs, what)
  assert.is_false((gs.op_both(name, inputs, attrs, what)), what)
end

-- build(g, dev) -> {feeds = {nodes}, values = {host tensors}, weights = {nodes}, loss = node}
-- (variables on dev), run as a plan on the CPU and on gpu(0): the losses and the weights'
-- gradients (as grad_stypes asks) of both, compared; no host fallback on the device.
local function check_grads(build, grad_stypes, what, loss_tol)
  local c, d = gs.plan_grads(build, grad_stypes, what)
  if loss_tol then
    assert.is_true(math.abs(d.loss - c.loss) <= loss_tol * math.max(1, math.abs(c.loss)),
      what .. string.format(": loss %.17g vs %.17g", d.loss, c.loss))
  else
    assert.is_true(bits_equal(d.loss, c.loss), what .. string.format(": loss %.17g vs %.17g", d.loss, c.loss))
  end
  for k = 1, #c.grads do gs.same(d.grads[k], c.grads[k], what .. " gradient " .. k) end
end

local function values(shape, lo, hi, dtype, special)
  local sp = {0, -0.0, 1, -1, 0 / 0, math.huge, -math.huge}
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  if n == 0 then return keras.zeros(shape, {dtype = dtype}) end
  if #shape == 0 then return keras.full({}, lo + (hi - lo) * rnd(), {dtype = dtype}) end
  return keras.array(tab(shape, function()
    if special and rnd() < special then return sp[1 + irand(#sp)] end
    return lo + (hi - lo) * rnd()
  end), {dtype = dtype})
end

local function ids(shape, V, pad, dtype)
  return keras.array(tab(shape, function() return rnd() < pad and 0 or 1 + irand(V) end),
    {dtype = dtype})
end

describe("the layer ops on gpu(0)", function()
  gs.no_fallback_around(setup, teardown, "a layer op fell back to the host")

  it("are all claimed by the CUDA table", function() gs.assert_claimed(MINE) end)

  it("bias_add: forward and both gradients (dense and row_sparse bias)", function()
    for _, dt in ipairs{"float32", "float64"} do
      for _, shape in ipairs{{5, 7}, {2, 3, 4}, {0, 3}, {1, 1}, {9}} do
        local k = shape[#shape]
        local x, b = values(shape, -2, 2, dt, 0.05), values({k}, -1, 1, dt, 0.05)
        local what = "bias_add " .. dt .. " " .. table.concat(shape, "x")
        check_op("bias_add", {x, b}, nil, what)
        if shape[1] > 0 then
          local target = values(shape, -1, 1, dt)
          for _, gst in ipairs{{"default", "default"}, {"default", "row_sparse"}} do
            check_grads(function(g, dev)
              local xn, bn = var(g, x, dev), var(g, b, dev)
              local t = g:placeholder{shape = shape, dtype = dt}
              local y = g:op("bias_add", {xn, bn})
              return {feeds = {t}, values = {target}, weights = {xn, bn},
                loss = g:op("mean_squared_error", {t, y})}
            end, gst, what .. " " .. gst[2])
          end
        end
      end
    end
  end)

  it("embedding: dense and row_sparse weights, int64 / float ids, both gradient forms", function()
    for _, dt in ipairs{"float32", "float64"} do
      for _, idt in ipairs{"int64", "float32", "float64"} do
        for _, c in ipairs{{n = 6, L = 4, V = 9, D = 3, pad = 0.2}, {n = 1, L = 1, V = 1, D = 1, pad = 0},
            {n = 40, L = 12, V = 5, D = 4, pad = 0.1}, {n = 8, V = 30, D = 2, pad = 0.3},
            {n = 0, L = 3, V = 4, D = 2, pad = 0}, {n = 5, L = 4, V = 7, D = 3, pad = 1}} do
          local ishape = c.L and {c.n, c.L} or {c.n}
          local id = ids(ishape, c.V, c.pad, idt)
          local w = values({c.V, c.D}, -1, 1, dt)
          local what = string.format("embedding %s ids %s (%s) V=%d D=%d", dt, idt,
            table.concat(ishape, "x"), c.V, c.D)
          check_op("embedding", {id, w}, nil, what)
          -- a row_sparse weight storing every other row (absent rows read as zeros)
          local keep = {}
          for r = 1, c.V, 2 do keep[#keep + 1] = r end
          check_op("embedding", {id, keras.sparse.retain(w:tostype("row_sparse"), keep)}, nil,
            what .. " row_sparse")
          if c.n > 0 then
            local oshape = {table.unpack(ishape)}
            oshape[#oshape + 1] = c.D
            local target = values(oshape, -1, 1, dt)
            for _, gst in ipairs{"row_sparse", "default"} do
              check_grads(function(g, dev)
                local wn = var(g, w, dev)
                local i = g:placeholder{shape = ishape, dtype = idt}
                local t = g:placeholder{shape = oshape, dtype = dt}
                local e = g:op("embedding", {i, wn})
                return {feeds = {i, t}, values = {id, target}, weights = {wn},
                  loss = g:op("mean_squared_error", {t, e})}
              end, {gst}, what .. " " .. gst)
            end
          end
        end
      end
    end
  end)

  it("embedding: bad ids fail with the CPU's message", function()
    local w = values({4, 2}, -1, 1, "float32")
    local cases = {{"int64", {{1, 2}, {0, 7}}}, {"int64", {{1, -1}}}, {"float64", {{1, 2}, {0, 7}}},
      {"float32", {{1, -1}}}, {"float64", {{2.5, 1}}}, {"float64", {{1, 0 / 0}}},
      {"float32", {{math.huge}}}}
    for _, c in ipairs(cases) do
      check_error("embedding", {keras.array(c[2], {dtype = c[1]}), w}, nil, "embedding bad ids " .. c[1])
      check_error("embedding", {keras.array(c[2][#c[2]], {dtype = c[1]}), w}, nil,
        "embedding bad 1-d ids " .. c[1])
    end
  end)

  it("masked_mean and global_max_pool: forward and gradient, ties, NaN, all padding", function()
    local pick = {-1, 0, -0.0, 1, 2, 2, 0.5}
    for _, dt in ipairs{"float32", "float64"} do
      for _, idt in ipairs{"int64", "float32"} do
        for _, c in ipairs{{n = 7, L = 5, D = 3, pad = 0.3}, {n = 1, L = 1, D = 1, pad = 0},
            {n = 4, L = 6, D = 2, pad = 1}, {n = 3, L = 0, D = 2, pad = 0}, {n = 0, L = 3, D = 2, pad = 0}} do
          local x = keras.array(tab({c.n, c.L, c.D}, function()
            return rnd() < 0.05 and 0 / 0 or pick[1 + irand(#pick)] end), {dtype = dt})
          if c.n * c.L * c.D == 0 then x = keras.zeros({c.n, c.L, c.D}, {dtype = dt}) end
          local id = c.n * c.L > 0 and ids({c.n, c.L}, 5, c.pad, idt) or keras.zeros({c.n, c.L}, {dtype = idt})
          local what = string.format("pool %s ids %s %dx%dx%d", dt, idt, c.n, c.L, c.D)
          check_op("masked_mean", {x, id}, nil, what .. " masked_mean")
          check_op("global_max_pool", {x, id}, nil, what .. " max (masked)")
          check_op("global_max_pool", {x}, nil, what .. " max")
          if c.n > 0 then
            local target = values({c.n, c.D}, -1, 1, dt)
            for _, op in ipairs{"masked_mean", "global_max_pool"} do
              for _, masked in ipairs{true, false} do
                if masked or op == "global_max_pool" then
                  check_grads(function(g, dev)
                    local xn = var(g, x, dev)
                    local i = g:placeholder{shape = {c.n, c.L}, dtype = idt}
                    local t = g:placeholder{shape = {c.n, c.D}, dtype = dt}
                    local y = g:op(op, masked and {xn, i} or {xn})
                    return {feeds = {i, t}, values = {id, target}, weights = {xn},
                      loss = g:op("mean_squared_error", {t, y})}
                  end, {"default"}, what .. " " .. op .. (masked and " masked" or ""))
                end
              end
            end
          end
        end
      end
    end
  end)

  it("reg_terms: whole weights and batch rows (csr, ids), dense and row_sparse, both gradients", function()
    for _, dt in ipairs{"float32", "float64"} do
      local w = values({30, 3}, -2, 2, dt, 0.03)
      local keep = {}
      for r = 2, 30, 3 do keep[#keep + 1] = r end
      local wr = keras.sparse.retain(w:tostype("row_sparse"), keep)
      local rows = keras.sparse.csr_matrix{data = {1, 1, 1, 1, 1}, indices = {3, 5, 30, 5, 8},
        indptr = {1, 3, 4, 6}, shape = {3, 30}}
      for _, idt in ipairs{"int64", "float32", "float64"} do
        local id = ids({6, 4}, 30, 0.2, idt)
        for _, W in ipairs{w, wr} do
          local what = "reg_terms " .. dt .. " " .. W.stype .. " ids " .. idt
          check_op("reg_terms", {W}, nil, what .. " whole")
          check_op("reg_terms", {W, rows}, nil, what .. " csr rows")
          check_op("reg_terms", {W, id}, nil, what .. " ids")
        end
        check_op("reg_terms", {values({}, -1, 1, dt)}, nil, "reg_terms 0-d")
        check_op("reg_terms", {values({7}, -1, 1, dt)}, nil, "reg_terms 1-d")
        local target = values({2}, -1, 1, dt)
        for _, gst in ipairs{"row_sparse", "default"} do
          for _, src in ipairs{"none", "ids", "csr"} do
            check_grads(function(g, dev)
              local wn = var(g, w, dev)
              local t = g:placeholder{shape = {2}, dtype = dt}
              local feeds, vals, r = {t}, {target}, nil
              if src == "ids" then
                local i = g:placeholder{shape = {6, 4}, dtype = idt}
                feeds[2], vals[2] = i, id
                r = g:op("reg_terms", {wn, i})
              elseif src == "csr" then
                local i = g:placeholder{shape = {-1, 30}, stype = "csr"}
                feeds[2], vals[2] = i, rows
                r = g:op("reg_terms", {wn, i})
              else
                r = g:op("reg_terms", {wn})
              end
              return {feeds = feeds, values = vals, weights = {wn},
                loss = g:op("mean_squared_error", {t, r})}
            end, {gst}, "reg_terms gradient " .. dt .. " " .. src .. " " .. gst)
          end
        end
      end
    end
    local w = values({3, 2}, -1, 1, "float32")
    check_error("reg_terms", {w, keras.array({1, 4})}, nil, "reg_terms id out of range")
    check_error("reg_terms", {w, keras.array({0, 1.5})}, nil, "reg_terms id not an integer")
    check_error("reg_terms", {w, keras.array({-1}, {dtype = "int64"})}, nil, "reg_terms negative id")
  end)

  -- y_true for loss l at flat index k of a (rows x C) batch.
  local function label(l, C, k, hmix)
    if l == "binary_crossentropy" then return ({0, 1, 0.25, 1, 0})[1 + irand(5)] end
    if l == "categorical_crossentropy" then return rnd() < 0.3 and rnd() or irand(2) end
    if l == "sparse_categorical_crossentropy" then return 1 + irand(C) end
    if l == "hinge" or l == "squared_hinge" then
      if hmix and math.floor((k - 1) / C) % 3 == 0 then return irand(2) == 1 and 1 or -1 end
      return irand(2)
    end
    if l == "poisson" then return irand(5) end
    return rnd() * 4 - 2
  end
  local function pred(l, t)
    if l == "binary_crossentropy" or l == "categorical_crossentropy" or
        l == "sparse_categorical_crossentropy" then
      return rnd() < 0.2 and ({0, 1, 1e-9, 1 - 1e-9, 1e-7})[1 + irand(5)] or rnd()
    end
    if l == "poisson" then return rnd() < 0.1 and 0 or rnd() * 4 end
    if l == "huber" and t and rnd() < 0.3 then return t + (irand(2) == 1 and 1 or -1) end
    return rnd() * 4 - 2
  end

  it("the losses: forward and gradient, f32 / f64, weighted or not, hinge label forms", function()
    for _, l in ipairs(LOSSES) do
      for _, dt in ipairs{"float32", "float64"} do
        for _, c in ipairs{{n = 9, C = 4}, {n = 1, C = 1}, {n = 33, C = 1, col = true},
            {n = 6, C = 3, hmix = true}} do
          local scce = l == "sparse_categorical_crossentropy"
          local tshape = scce and {c.n} or (c.col and {c.n} or {c.n, c.C})
          local pshape = {c.n, c.C}
          local ytt = tab(tshape, function(k) return label(l, c.C, k, c.hmix) end)
          local yt = keras.array(ytt, {dtype = scce and "int64" or dt})
          local yth = flat(yt)
          local yp = keras.array(tab(pshape, function(k)
            return pred(l, not scce and yth[k] or nil) end), {dtype = dt})
          local tol = (not cuda.emulated and LOG_LOSSES[l]) and LOG_TOL[dt] or nil
          local wts = keras.array(tab({c.n}, function(k)
            return (k % 3 == 0) and 0 or rnd() * 2 end), {dtype = dt})
          for _, weighted in ipairs{false, true} do
            local what = string.format("%s %s %s%s%s", l, dt, table.concat(pshape, "x"),
              weighted and " weighted" or "", c.hmix and " mixed labels" or "")
            local ins = weighted and {yt, yp, wts} or {yt, yp}
            check_op(l, ins, nil, what, tol)
            check_grads(function(g, dev)
              local pn = var(g, yp, dev)
              local t = g:placeholder{shape = tshape, dtype = yt.dtype}
              local feeds, vals, lin = {t}, {yt}, {t, pn}
              if weighted then
                local wn = g:placeholder{shape = {c.n}, dtype = dt}
                feeds[2], vals[2], lin[3] = wn, wts, wn
              end
              return {feeds = feeds, values = vals, weights = {pn}, loss = g:op(l, lin)}
            end, {"default"}, what, tol)
          end
          -- every sample weight zero: loss 0, no gradient
          check_op(l, {yt, yp, keras.zeros({c.n}, {dtype = dt})}, nil, l .. " all weights zero")
        end
      end
    end
  end)

  it("the losses: labels and sample weights the CPU refuses, with its messages", function()
    local p = keras.array({{0.2, 0.5, 0.3}, {0.1, 0.1, 0.8}})
    check_error("sparse_categorical_crossentropy", {keras.array({1, 4}, {dtype = "int64"}), p}, nil, "scce label 4")
    check_error("sparse_categorical_crossentropy", {keras.array({2.5, 1}), p}, nil, "scce label 2.5")
    check_error("sparse_categorical_crossentropy", {keras.array({0, 1}), p}, nil, "scce label 0")
    check_error("binary_crossentropy", {keras.array({{0, 1, -1}, {1, 0, 1}}), p}, nil, "bce label -1")
    check_error("binary_crossentropy", {keras.array({{0, 1, 1}, {1, 0, 1.5}}), p}, nil, "bce label 1.5")
    local t = keras.array({{0, 1, 0}, {1, 0, 1}})
    check_error("mean_squared_error", {t, p, keras.array({1, -1})}, nil, "negative weight")
    check_error("hinge", {t, p, keras.array({math.huge, 1})}, nil, "infinite weight")
    check_error("binary_crossentropy", {keras.array({{0, 1, 2}, {1, 0, 1}}), p,
      keras.array({-1, 1})}, nil, "labels before weights")
  end)
end)
