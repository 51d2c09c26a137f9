-- examples/sparse_tour.lua: a tour of keras-lua's sparse tensors: CSR and row_sparse
-- construction (1-based, as everything in Lua), conversions, and the sparse ops.
--   LUA_PATH='build/lua/?.lua;build/lua/?/init.lua;;' LUA_CPATH='build/lua/?.so;;' lua5.4 examples/sparse_tour.lua
local keras = require("keras")
local sparse = keras.sparse
local K = keras.backend

-- Prints a tensor: its tostring, then its rows as a dense table.
local function show(name, t)
  print(string.format("%s = %s", name, tostring(t)))
  local v = t:totable()
  if type(v) == "number" then
    print(string.format("    %g", v))
    return
  end
  if type(v[1]) == "number" then v = {v} end -- a 1-d tensor prints as one row
  for _, row in ipairs(v) do
    local cells = {}
    for j, x in ipairs(row) do cells[j] = string.format("%6g", x) end
    print("    " .. table.concat(cells, " "))
  end
end

print("-- a CSR matrix: row r holds entries indptr[r] .. indptr[r+1]-1 (1-based)")
local a = sparse.csr_matrix{data = {7, 8, 9}, indices = {1, 3, 2}, indptr = {1, 3, 3, 4}, shape = {3, 5}}
show("a", a)
local function list(t)
  local s = {}
  for i, x in ipairs(t:totable()) do s[i] = string.format("%g", x) end
  return "{" .. table.concat(s, ", ") .. "}"
end
print("    a.data    = " .. list(a.data))
print("    a.indices = " .. list(a.indices))
print("    a.indptr  = " .. list(a.indptr))

print("\n-- a row_sparse array: rows 2 and 5 of a 6x2 matrix are stored")
local w = sparse.row_sparse_array{data = {{1, 2}, {3, 4}}, indices = {2, 5}, shape = {6, 2}}
show("w", w)

print("\n-- dot: csr . dense -> dense, csr^T . dense -> row_sparse (only the touched rows)")
show("dot(a, ones(5, 2))", K.dot(a, keras.ones({5, 2})))
local g = sparse.dot(a, keras.ones({3, 2}), {transpose_a = true})
show("dot(a^T, ones(3, 2))", g)
print("    stored rows: " .. list(g.indices))

print("\n-- storage-type inference of the operators")
print("    (w * 2).stype       = " .. (w * 2).stype)
print("    (w + dense).stype   = " .. (w + keras.zeros({6, 2})).stype)
print("    (a + a).stype       = " .. (a + a).stype)
print("    (-a).stype          = " .. (-a).stype)

print("\n-- reductions of sparse tensors give dense results")
show("sum(a)", K.sum(a))
show("sum(a, 1)", K.sum(a, 1))
show("mean(a, 2, keepdims)", K.mean(a, 2, true))

print("\n-- retain, cast_storage, concatenate, slice")
show("retain(w, {5})", sparse.retain(w, {5}))
show("cast_storage(w, 'csr')", sparse.cast_storage(w, "csr"))
show("concatenate({a, a}, 1)", K.concatenate({a, a}, 1))
show("a:slice(2, 3)", a:slice(2, 3))

print("\n-- a random CSR matrix times a dense one, checked against the dense product")
local x = sparse.rand({200, 50}, "csr", 0.05, {seed = 1})
local y = keras.random.uniform({50, 4}, {seed = 2})
local sparse_result = K.dot(x, y)
local dense_result = K.dot(x:tostype("default"), y)
local diff = K.sum(K.abs(sparse_result - dense_result)):item()
print(string.format("    nnz = %d, |sparse - dense| = %g", x.data.shape[1], diff))
assert(diff < 1e-3, "sparse and dense products differ")

print("\n-- bad input is a Lua error naming the function and the value")
local ok, err = pcall(sparse.csr_matrix, {data = {1}, indices = {7}, indptr = {1, 2}, shape = {1, 5}})
print("    " .. tostring(ok) .. ": " .. err)
