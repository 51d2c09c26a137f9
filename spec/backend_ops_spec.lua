-- spec/backend_ops_spec.lua: keras.backend ops and tensor operators on every stype
-- combination: exact values on small cases, random cases against dense references on tables,
-- and MXNet's storage-type inference.
local keras = require("keras")
local S = require("support")
local K = keras.backend
local sparse = keras.sparse
local core = keras.core

local STYPES = {"default", "csr", "row_sparse"}
local DTYPES = {"float64", "float32"}

local function mk(t, stype, dtype)
  return keras.array(t, {dtype = dtype or "float64"}):tostype(stype or "default")
end

-- ------------------------------------------------------------ dot

describe("K.dot", function()
  it("the csrT.dense tutorial vector gives row_sparse", function()
    local a = sparse.csr_matrix{data = {7, 8, 9}, indices = {1, 3, 2}, indptr = {1, 3, 3, 4}, shape = {3, 5}}
    local r = sparse.dot(a, keras.ones({3, 2}), {transpose_a = true})
    assert.are.equal("row_sparse", r.stype)
    assert.are.same({5, 2}, r.shape)
    assert.are.same({{7, 7}, {9, 9}, {8, 8}, {0, 0}, {0, 0}}, r:totable())
    -- sized by the rows actually touched: columns 1, 2, 3 of a
    assert.are.same({1, 2, 3}, r.indices:totable())
  end)
  it("csr . dense -> dense, exact", function()
    local a = sparse.csr_matrix{data = {1, 2, 3}, indices = {1, 3, 2}, indptr = {1, 3, 4}, shape = {2, 3}}
    local b = keras.array({{1, 2}, {3, 4}, {5, 6}})
    local r = K.dot(a, b)
    assert.are.equal("default", r.stype)
    assert.are.same({{11, 14}, {9, 12}}, r:totable())
  end)
  it("3x0 csr times 0x2 dense is a 3x2 zero matrix", function()
    local a = sparse.zeros("csr", {3, 0})
    local r = K.dot(a, keras.zeros({0, 2}))
    assert.are.same({3, 2}, r.shape)
    assert.are.same({{0, 0}, {0, 0}, {0, 0}}, r:totable())
    local d = K.dot(keras.zeros({3, 0}), keras.zeros({0, 2}))
    assert.are.same({{0, 0}, {0, 0}, {0, 0}}, d:totable())
  end)

  local expect_stype = {
    ["csr.default"] = "default", ["csr.row_sparse"] = "default", ["default.csr"] = "default",
    ["default.default"] = "default",
    ["csrT.default"] = "row_sparse", ["csrT.row_sparse"] = "row_sparse",
  }
  for _, dt in ipairs(DTYPES) do
    for _, sa in ipairs(STYPES) do
      for _, sb in ipairs(STYPES) do
        for _, ta in ipairs({false, true}) do
          local key = (sa == "csr" and ta and "csrT" or sa) .. "." .. sb
          it(string.format("random %s%s . %s (%s) matches the dense product", sa, ta and "^T" or "", sb, dt), function()
            local at = S.rand_table(ta and 6 or 7, ta and 7 or 6, 0.4, 11)
            local bt = S.rand_table(6, 5, 0.5, 12)
            local a, b = mk(at, sa, dt), mk(bt, sb, dt)
            local r = K.dot(a, b, {transpose_a = ta})
            if expect_stype[key] then assert.are.equal(expect_stype[key], r.stype) end
            local ar = a:totable()
            if ta then ar = S.transpose(ar) end
            S.assert_near(r:totable(), S.matmul(ar, b:totable()), S.tol(dt))
          end)
        end
      end
    end
    it("dense . dense with transpose_b (" .. dt .. ")", function()
      local a, b = mk(S.rand_table(4, 3, 1, 1), "default", dt), mk(S.rand_table(5, 3, 1, 2), "default", dt)
      local r = K.dot(a, b, {transpose_b = true})
      S.assert_near(r:totable(), S.matmul(a:totable(), S.transpose(b:totable())), S.tol(dt))
    end)
  end
  it("uses the sparse kernels (no fallback) for the issue's combinations", function()
    local c = mk(S.rand_table(5, 4, 0.5, 3), "csr")
    local d = mk(S.rand_table(4, 3, 1, 4))
    local r = mk(S.rand_table(4, 3, 0.5, 5), "row_sparse")
    local before = core.fallback_count()
    K.dot(c, d); K.dot(c, r)
    K.dot(c, mk(S.rand_table(5, 3, 1, 6)), {transpose_a = true})
    K.dot(c, mk(S.rand_table(5, 3, 0.5, 7), "row_sparse"), {transpose_a = true})
    K.dot(mk(S.rand_table(2, 5, 1, 8)), c)
    assert.are.equal(before, core.fallback_count())
    assert.are.equal("csr.dense", core.dispatch_name("dot", {c, d}))
  end)
end)

-- ------------------------------------------------------------ reductions

local function ref_sum(t, axis, keepdims, mean)
  local r, c = #t, #t[1]
  if axis == nil then
    local s = 0
    for i = 1, r do for j = 1, c do s = s + t[i][j] end end
    return mean and s / (r * c) or s
  end
  if axis == 1 then
    local out = {}
    for j = 1, c do
      local s = 0
      for i = 1, r do s = s + t[i][j] end
      out[j] = mean and s / r or s
    end
    return keepdims and {out} or out
  end
  local out = {}
  for i = 1, r do
    local s = 0
    for j = 1, c do s = s + t[i][j] end
    out[i] = mean and s / c or s
    if keepdims then out[i] = {out[i]} end
  end
  return out
end

describe("K.sum and K.mean", function()
  it("exact small cases", function()
    local a = sparse.csr_matrix{data = {1, 2, 3}, indices = {1, 3, 2}, indptr = {1, 3, 4}, shape = {2, 3}}
    assert.are.equal(6, K.sum(a):item())
    assert.are.equal(0, K.sum(a).ndim)
    assert.are.same({1, 3, 2}, K.sum(a, 1):totable())
    assert.are.same({3, 3}, K.sum(a, 2):totable())
    assert.are.same({3, 3}, K.sum(a, -1):totable())
    assert.are.same({{3}, {3}}, K.sum(a, 2, true):totable())
    assert.are.same({{0.5, 1.5, 1}}, K.mean(a, 1, true):totable())
    assert.are.equal(1, K.mean(a):item())
    assert.are.equal("default", K.sum(a, 1).stype)
  end)
  for _, dt in ipairs(DTYPES) do
    for _, st in ipairs(STYPES) do
      it(string.format("random %s (%s) against the dense reference", st, dt), function()
        local x = mk(S.rand_table(9, 6, 0.4, 21), st, dt)
        local xt = x:totable()
        for _, mean in ipairs({false, true}) do
          local f = mean and K.mean or K.sum
          S.assert_near(f(x):item(), ref_sum(xt, nil, false, mean), S.tol(dt))
          for _, axis in ipairs({1, 2, -1, -2}) do
            local ax = axis < 0 and axis + 3 or axis
            for _, kd in ipairs({false, true}) do
              local r = f(x, axis, kd)
              assert.are.equal("default", r.stype)
              S.assert_near(r:totable(), ref_sum(xt, ax, kd, mean), S.tol(dt))
            end
          end
        end
      end)
    end
  end
  it("sparse reductions run sparse kernels", function()
    local before = core.fallback_count()
    for _, st in ipairs({"csr", "row_sparse"}) do
      local x = mk(S.rand_table(5, 4, 0.5, 2), st)
      K.sum(x); K.sum(x, 1); K.sum(x, 2, true); K.mean(x); K.mean(x, 1); K.mean(x, 2)
    end
    assert.are.equal(before, core.fallback_count())
  end)
end)

-- ------------------------------------------------------------ concatenate

local function ref_concat(list, axis)
  local out = {}
  if axis == 1 then
    for _, t in ipairs(list) do for i = 1, #t do out[#out + 1] = {table.unpack(t[i])} end end
  else
    for i = 1, #list[1] do
      local row = {}
      for _, t in ipairs(list) do for j = 1, #t[i] do row[#row + 1] = t[i][j] end end
      out[i] = row
    end
  end
  return out
end

describe("K.concatenate", function()
  it("exact: csr along both axes stays csr", function()
    local a = sparse.csr_matrix({{1, 0}, {0, 2}})
    local b = sparse.csr_matrix({{0, 3}, {4, 0}})
    local r1 = K.concatenate({a, b}, 1)
    assert.are.equal("csr", r1.stype)
    assert.are.same({{1, 0}, {0, 2}, {0, 3}, {4, 0}}, r1:totable())
    local r2 = K.concatenate({a, b})
    assert.are.equal("csr", r2.stype)
    assert.are.same({{1, 0, 0, 3}, {0, 2, 4, 0}}, r2:totable())
  end)
  it("row_sparse along axis 1 stays row_sparse; mixed gives dense", function()
    local a = sparse.row_sparse_array{data = {{1, 2}}, indices = {2}, shape = {2, 2}}
    local b = sparse.row_sparse_array{data = {{3, 4}}, indices = {1}, shape = {3, 2}}
    local r = K.concatenate({a, b}, 1)
    assert.are.equal("row_sparse", r.stype)
    assert.are.same({{0, 0}, {1, 2}, {3, 4}, {0, 0}, {0, 0}}, r:totable())
    local m = K.concatenate({a, keras.ones({1, 2})}, 1)
    assert.are.equal("default", m.stype)
    assert.are.same({{0, 0}, {1, 2}, {1, 1}}, m:totable())
  end)
  for _, dt in ipairs(DTYPES) do
    for _, sa in ipairs(STYPES) do
      for _, sb in ipairs(STYPES) do
        it(string.format("random %s with %s (%s), both axes", sa, sb, dt), function()
          local at, bt = S.rand_table(4, 3, 0.5, 31), S.rand_table(4, 3, 0.5, 32)
          local a, b = mk(at, sa, dt), mk(bt, sb, dt)
          for _, axis in ipairs({1, 2}) do
            local r = K.concatenate({a, b, a}, axis)
            S.assert_near(r:totable(), ref_concat({a:totable(), b:totable(), a:totable()}, axis), S.tol(dt))
            if sa ~= sb and (sa == "default" or sb == "default") then assert.are.equal("default", r.stype) end
          end
        end)
      end
    end
  end
end)

-- ------------------------------------------------------------ elementwise

local binops = {
  {name = "+", f = function(a, b) return a + b end, r = function(x, y) return x + y end},
  {name = "-", f = function(a, b) return a - b end, r = function(x, y) return x - y end},
  {name = "*", f = function(a, b) return a * b end, r = function(x, y) return x * y end},
}
local expect_binop_stype = {
  ["csr+csr"] = "csr", ["csr-csr"] = "csr", ["row_sparse+row_sparse"] = "row_sparse",
  ["row_sparse-row_sparse"] = "row_sparse", ["row_sparse*row_sparse"] = "row_sparse",
}

describe("elementwise operators", function()
  it("the tutorial inference: rsp * 2 and rsp + dense", function()
    local rsp = sparse.row_sparse_array{data = {{1, 2}, {3, 4}}, indices = {2, 5}, shape = {6, 2}}
    local r2 = rsp * 2
    assert.are.equal("row_sparse", r2.stype)
    assert.are.same({{0, 0}, {2, 4}, {0, 0}, {0, 0}, {6, 8}, {0, 0}}, r2:totable())
    local rd = rsp + keras.ones({6, 2})
    assert.are.equal("default", rd.stype)
    assert.are.same({{1, 1}, {2, 3}, {1, 1}, {1, 1}, {4, 5}, {1, 1}}, rd:totable())
  end)
  it("csr + csr, csr * number and -csr stay csr", function()
    local a = sparse.csr_matrix({{1, 0}, {0, 2}})
    local b = sparse.csr_matrix({{0, 3}, {0, -2}})
    local s = a + b
    assert.are.equal("csr", s.stype)
    assert.are.same({{1, 3}, {0, 0}}, s:totable())
    assert.are.equal("csr", (a * 3).stype)
    assert.are.same({{3, 0}, {0, 6}}, (3 * a):totable())
    assert.are.equal("csr", (-a).stype)
    assert.are.same({{-1, 0}, {0, -2}}, (-a):totable())
    assert.are.equal("row_sparse", (-(a:tostype("row_sparse"))).stype)
  end)
  for _, dt in ipairs(DTYPES) do
    for _, sa in ipairs(STYPES) do
      for _, sb in ipairs(STYPES) do
        it(string.format("random %s op %s (%s)", sa, sb, dt), function()
          local a, b = mk(S.rand_table(5, 4, 0.5, 41), sa, dt), mk(S.rand_table(5, 4, 0.5, 42), sb, dt)
          for _, op in ipairs(binops) do
            local r = op.f(a, b)
            local key = sa .. op.name .. sb
            if expect_binop_stype[key] then assert.are.equal(expect_binop_stype[key], r.stype, key) end
            if sa == "default" or sb == "default" then assert.are.equal("default", r.stype, key) end
            S.assert_near(r:totable(), S.zip(a:totable(), b:totable(), op.r), S.tol(dt))
          end
          -- division by a positive dense-valued tensor (no 0/0)
          local pos = mk(S.map(S.rand_table(5, 4, 1, 43), function(v) return math.abs(v) + 0.5 end), sb, dt)
          S.assert_near((a / pos):totable(), S.zip(a:totable(), pos:totable(), function(x, y) return x / y end), S.tol(dt))
        end)
      end
      it(string.format("random %s with numbers (%s)", sa, dt), function()
        local a = mk(S.rand_table(5, 4, 0.5, 44), sa, dt)
        local at = a:totable()
        local cases = {
          {a * 2.5, function(x) return x * 2.5 end, true},
          {2.5 * a, function(x) return x * 2.5 end, true},
          {a / 4, function(x) return x / 4 end, false},
          {-a, function(x) return -x end, true},
          {a + 1, function(x) return x + 1 end, false},
          {1 + a, function(x) return x + 1 end, false},
          {a - 1, function(x) return x - 1 end, false},
          {3 - a, function(x) return 3 - x end, false},
        }
        for i, c in ipairs(cases) do
          if c[3] then assert.are.equal(sa, c[1].stype, "case " .. i) end
          S.assert_near(c[1]:totable(), S.map(at, c[2]), S.tol(dt))
        end
        local pos = mk(S.map(S.rand_table(5, 4, 1, 45), function(v) return math.abs(v) + 0.5 end), sa, dt)
        S.assert_near((2 / pos):totable(), S.map(pos:totable(), function(x) return 2 / x end), S.tol(dt))
      end)
    end
  end
end)

-- ------------------------------------------------------------ unary

local function softmax_rows(t)
  local out = {}
  for i, row in ipairs(t) do
    local m = -math.huge
    for _, v in ipairs(row) do m = math.max(m, v) end
    local s, r = 0, {}
    for j, v in ipairs(row) do r[j] = math.exp(v - m); s = s + r[j] end
    for j = 1, #r do r[j] = r[j] / s end
    out[i] = r
  end
  return out
end

local unaries = {
  {"square", function(x) return x * x end, true},
  {"abs", math.abs, true},
  {"relu", function(x) return x > 0 and x or 0 end, true},
  {"exp", math.exp, false},
  {"sigmoid", function(x) return 1 / (1 + math.exp(-x)) end, false},
  {"tanh", function(x) return (math.exp(x) - math.exp(-x)) / (math.exp(x) + math.exp(-x)) end, false},
}

describe("unary ops", function()
  it("exact small cases", function()
    local a = sparse.csr_matrix({{-2, 0}, {0, 3}})
    assert.are.same({{4, 0}, {0, 9}}, K.square(a):totable())
    assert.are.same({{2, 0}, {0, 3}}, K.abs(a):totable())
    assert.are.same({{0, 0}, {0, 3}}, K.relu(a):totable())
    assert.are.same({{2, 3}}, K.sqrt(keras.array({{4, 9}})):totable())
    assert.are.same({{0, 1}}, K.log(keras.array({{1, math.exp(1)}}, {dtype = "float64"})):totable())
    assert.are.same({{0.5, 0.5}}, K.softmax(keras.array({{3, 3}})):totable())
  end)
  for _, dt in ipairs(DTYPES) do
    for _, st in ipairs(STYPES) do
      it(string.format("random %s (%s) against the dense reference", st, dt), function()
        local x = mk(S.rand_table(6, 5, 0.5, 51), st, dt)
        local xt = x:totable()
        for _, u in ipairs(unaries) do
          local r = K[u[1]](x)
          if u[3] then assert.are.equal(st, r.stype, u[1]) else assert.are.equal("default", r.stype, u[1]) end
          S.assert_near(r:totable(), S.map(xt, u[2]), S.tol(dt))
        end
        local nonneg = K.abs(x)
        local sq = K.sqrt(nonneg)
        assert.are.equal(st, sq.stype)
        S.assert_near(sq:totable(), S.map(nonneg:totable(), math.sqrt), S.tol(dt))
        local pos = mk(S.map(S.rand_table(6, 5, 1, 52), function(v) return math.abs(v) + 0.1 end), st, dt)
        S.assert_near(K.log(pos):totable(), S.map(pos:totable(), math.log), S.tol(dt))
        local sm = K.softmax(x)
        assert.are.equal("default", sm.stype)
        S.assert_near(sm:totable(), softmax_rows(xt), S.tol(dt))
        S.assert_near(K.softmax(x, -1):totable(), softmax_rows(xt), S.tol(dt))
        S.assert_near(K.softmax(x, 2):totable(), softmax_rows(xt), S.tol(dt))
      end)
      it(string.format("transpose of %s (%s)", st, dt), function()
        local x = mk(S.rand_table(4, 7, 0.5, 53), st, dt)
        local r = K.transpose(x)
        if st == "csr" then assert.are.equal("csr", r.stype) end
        assert.are.same({7, 4}, r.shape)
        S.assert_near(r:totable(), S.transpose(x:totable()), 0)
      end)
    end
  end
end)

-- ------------------------------------------------------------ introspection and values

describe("K helpers", function()
  it("is_sparse, to_dense, int_shape, ndim, dtype, eval", function()
    local c = sparse.csr_matrix({{0, 1}})
    assert.is_true(K.is_sparse(c))
    assert.is_false(K.is_sparse(keras.zeros({2})))
    local d = K.to_dense(c)
    assert.are.equal("default", d.stype)
    assert.are.same({{0, 1}}, d:totable())
    assert.are.same({1, 2}, K.int_shape(c))
    assert.are.equal(2, K.ndim(c))
    assert.are.equal("float32", K.dtype(c))
    assert.are.equal(c, K.eval(c))
  end)
  it("constant and variable", function()
    assert.are.same({{1, 2}}, K.constant({{1, 2}}):totable())
    assert.are.same({{3, 3}, {3, 3}}, K.constant(3, {shape = {2, 2}}):totable())
    assert.are.equal("float64", K.constant({1}, {dtype = "float64"}).dtype)
    local src = keras.ones({3, 2})
    local v = K.variable(src, {stype = "row_sparse", name = "w"})
    assert.are.equal("row_sparse", v.stype)
    assert.are.equal("w", v._name)
    assert.are.same(src:totable(), v:totable())
    assert.are_not.equal(src, K.variable(src))
  end)
end)

-- ------------------------------------------------------------ fallback warnings

describe("storage fallback warning", function()
  it("is printed once per op and stype combination", function()
    local script = S.write_script([[
      local keras = require("keras")
      local s = keras.sparse
      local c = s.csr_matrix({{1, 0}, {0, 2}})
      local r = s.row_sparse_array(keras.array({{1, 0}, {0, 2}}))
      for _ = 1, 3 do local _ = c + r end
      for _ = 1, 2 do local _ = r + c end
      print("done")
    ]])
    local ok, _, out = S.run_lua(script)
    os.remove(script)
    assert.is_true(ok, out)
    local n1 = select(2, out:gsub("add%(csr, row_sparse%)", ""))
    local n2 = select(2, out:gsub("add%(row_sparse, csr%)", ""))
    assert.are.equal(1, n1, out)
    assert.are.equal(1, n2, out)
  end)
  it("with KERAS_LUA_STYPE_VERBOSE=1 every fallback warns", function()
    local script = S.write_script([[
      local keras = require("keras")
      local s = keras.sparse
      local c = s.csr_matrix({{1, 0}, {0, 2}})
      local r = s.row_sparse_array(keras.array({{1, 0}, {0, 2}}))
      for _ = 1, 3 do local _ = c + r end
    ]])
    local ok, _, out = S.run_lua(script, "KERAS_LUA_STYPE_VERBOSE=1")
    os.remove(script)
    assert.is_true(ok, out)
    assert.are.equal(3, select(2, out:gsub("add%(csr, row_sparse%)", "")), out)
  end)
end)
