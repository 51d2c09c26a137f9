-- keras/sparse.lua: keras.sparse, like mx.nd.sparse: CSR and row_sparse constructors and ops.
local core = require("keras.core")

local sparse = {}

-- csr_matrix{data=, indices=, indptr=, shape={r, c}, dtype=} with 1-based indices and
-- pointers (#indptr == rows + 1, indptr[1] == 1), or csr_matrix(dense tensor or table).
sparse.csr_matrix = core.csr_matrix
-- coo_matrix{data=, row=, col=, shape=, dtype=}: a CSR; duplicates are summed.
sparse.coo_matrix = core.coo_matrix
-- row_sparse_array{data=, indices=, shape=, dtype=}: rows indices (1-based, increasing).
sparse.row_sparse_array = core.row_sparse_array
-- zeros(stype, shape[, {dtype=}])
sparse.zeros = core.sparse_zeros
-- rand(shape, stype, density[, {seed=, dtype=}]): like mx.test_utils.rand_ndarray.
sparse.rand = core.sparse_rand
-- retain(rsp, indices): the rows of rsp listed in indices (1-based), as row_sparse.
sparse.retain = core.retain
-- cast_storage(x, stype): x converted to "default", "csr" or "row_sparse".
sparse.cast_storage = core.cast_storage
-- check_format(x): true, or an error naming the broken invariant.
sparse.check_format = core.check_format

-- array(x[, {dtype=}]): a copy that keeps x's stype (a table gives a dense tensor).
function sparse.array(x, opts)
  return core.array(x, opts)
end

-- dot(a, b, {transpose_a=false, transpose_b=false}), with storage-type inference.
local dot_opts = {transpose_a = true, transpose_b = true}
function sparse.dot(a, b, opts)
  if opts ~= nil then
    if type(opts) ~= "table" then error("dot: options must be a table (got " .. type(opts) .. ")", 0) end
    for k in pairs(opts) do
      if not dot_opts[k] then error("dot: unknown option '" .. tostring(k) .. "'", 0) end
    end
  end
  return require("keras.backend").dot(a, b, opts)
end

return sparse
