-- spec/mpi/collectives.lua: keras.distributed's collectives under mpirun (ctest runs it at
-- np = 2 and 3, see CMakeLists.txt). Exact values; any failed check exits non-zero, which
-- makes mpirun end the job with that status.
local keras = require("keras")
local D = keras.distributed
local r, n = D.init()
assert(D.is_mpi(), "started by mpirun: the MPI world")
assert(n >= 2 and D.rank() == r and D.size() == n and D.local_rank() >= 0)

local fails = 0
local function check(cond, what)
  if not cond then
    fails = fails + 1
    io.stderr:write(string.format("rank %d: FAIL %s\n", r, what))
  end
end
local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  if #a ~= #b then return false end
  for i = 1, #a do if not same(a[i], b[i]) then return false end end
  return true
end

-- dense, every op and dtype: rank r holds r + 1 everywhere
local tri = n * (n + 1) // 2
for _, dt in ipairs({"float32", "float64", "int64"}) do
  local t = keras.full({2, 3}, r + 1, {dtype = dt})
  check(D.allreduce(t, {op = "sum"}):get(2, 3) == tri, dt .. " sum")
  check(D.allreduce(t, {op = "max"}):get(1, 1) == n, dt .. " max")
  check(D.allreduce(t, {op = "min"}):get(1, 2) == 1, dt .. " min")
  if dt ~= "int64" then check(D.allreduce(t, {op = "mean"}):get(1, 1) == tri / n, dt .. " mean") end
  check(t:get(1, 1) == r + 1, dt .. " input untouched")
end
check(math.type(D.allreduce(keras.full({1}, 2, {dtype = "int64"})):get(1)) == "integer", "int64 stays integer")

-- row_sparse sum: rank r stores rows r+1 and n+1 (shared); the union is 1..n+1
local rs = keras.sparse.row_sparse_array{data = keras.full({2, 2}, r + 1), indices = {r + 1, n + 1},
  shape = {n + 2, 2}}
local u = D.allreduce(rs)
check(u.stype == "row_sparse", "rsp stays rsp")
local want_idx = {}
for i = 1, n + 1 do want_idx[i] = i end
check(same(u.indices:totable(), want_idx), "rsp union rows")
local dense = u:tostype("default"):totable()
for i = 1, n do check(dense[i][1] == i and dense[i][2] == i, "rsp row " .. i) end
check(dense[n + 1][1] == tri, "rsp shared row summed")
check(dense[n + 2][1] == 0, "rsp untouched row")
check(D.allreduce(rs, {op = "mean"}):tostype("default"):get(n + 1, 2) == tri / n, "rsp mean")

-- broadcast from the last rank, dense and csr
local b = D.broadcast(keras.full({3}, 10 * (r + 1)), n - 1)
check(same(b:totable(), {10 * n, 10 * n, 10 * n}), "broadcast dense")
local c = keras.sparse.csr_matrix{data = {r + 1}, indices = {r + 1}, indptr = {1, 1, 2}, shape = {2, n}}
local cb = D.broadcast(c, 0)
check(cb.stype == "csr" and cb:get(2, 1) == 1 and cb:get(2, 2) == 0, "broadcast csr")
local w = keras.full({2, 2}, r)
D._broadcast_into(w, 1)
check(same(w:totable(), {{1, 1}, {1, 1}}), "broadcast_into")

-- allgather: rank r gives r + 1 rows of value r
local g = D.allgather(keras.full({r + 1, 2}, r))
check(same(g.shape, {tri, 2}), "allgather shape")
local row = 0
for q = 0, n - 1 do
  for _ = 1, q + 1 do row = row + 1; check(g:get(row, 2) == q, "allgather row " .. row) end
end
local cg = D.allgather(keras.sparse.csr_matrix{data = {r + 1}, indices = {r + 1}, indptr = {1, 2},
  shape = {1, n}})
check(cg.stype == "csr" and same(cg.shape, {n, n}), "allgather csr shape")
for q = 1, n do check(cg:get(q, q) == q, "allgather csr diag " .. q) end

-- digests: the same bits on every rank, or not (every rank gets the same verdict)
local dg = keras.full({3, 2}, 1.5)
check(D._same_everywhere({dg, keras.ones({2})}, 7) == true, "same_everywhere: equal")
local dg2 = keras.full({3, 2}, r == n - 1 and 1.25 or 1.5)
check(D._same_everywhere({dg2}) == false, "same_everywhere: one rank differs")
check(D._same_everywhere({dg}, r) == false, "same_everywhere: the integer differs")
local rsd = keras.sparse.row_sparse_array{data = keras.ones({1, 2}), indices = {r == 0 and 1 or 2}, shape = {3, 2}}
check(D._same_everywhere({rsd}) == false, "same_everywhere: other stored rows")

-- numbers
check(D._allreduce_number(r + 0.5) == tri - n + n * 0.5, "allreduce_number")
check(D._broadcast_number(r == 0 and 7 or 0) == 7, "broadcast_number")
check(math.type(D._broadcast_number(r == 0 and 7 or 0)) == "integer", "broadcast_number integer")

-- errors agreed on every rank: a layout that differs on one rank, a bad op
local ok, err = pcall(D.allreduce, keras.full({r == n - 1 and 3 or 2}, 1))
check(not ok, "mismatch refused")
if r == n - 1 then
  check(tostring(err):find("allreduce: rank " .. r .. " has a float32 default tensor of shape (3,), " ..
    "rank 0 one of float32 default (2,)", 1, true), "mismatch message: " .. tostring(err))
else
  check(tostring(err) == "allreduce: rank " .. (n - 1) .. " refused its input (see its message)",
    "mismatch message elsewhere: " .. tostring(err))
end
ok, err = pcall(D.allreduce, keras.ones({2}), {op = "prod"})
check(not ok and tostring(err):find("op must be 'sum', 'mean', 'max' or 'min'", 1, true), "bad op")
ok, err = pcall(D.allreduce, keras.sparse.csr_matrix{data = {1}, indices = {1}, indptr = {1, 2}, shape = {1, 1}})
check(not ok and tostring(err):find("cannot be reduced", 1, true), "csr allreduce refused")
ok, err = pcall(D.broadcast, keras.ones({1}), n)
check(not ok and tostring(err):find("root must be a rank in 0.." .. (n - 1), 1, true), "bad root")
-- still in step after the errors
D.barrier()
check(D.allreduce(keras.ones({1})):get(1) == n, "collectives after errors")

if fails > 0 then os.exit(1) end
if r == 0 then print(string.format("collectives: np=%d ok", n)) end
D.finalize()
