-- spec/bad_input_corpus_spec.lua: a corpus of bad inputs to the CSR/row_sparse/COO
-- constructors and to every op entry point (extending spec/bad_input_spec.lua, no case
-- repeated): each must raise a clean Lua error whose message contains the expected text
-- (a string, or a list of strings that must all appear), never crash or return.
local keras = require("keras")
local K, sparse = keras.backend, keras.sparse

local function csr(f)
  local t = {data = {7, 8, 9}, indices = {1, 3, 2}, indptr = {1, 3, 3, 4}, shape = {3, 5}}
  for k, v in pairs(f) do t[k] = v end
  return sparse.csr_matrix(t)
end
local function rsp(f)
  local t = {data = {{1, 2}, {3, 4}}, indices = {2, 5}, shape = {6, 2}}
  for k, v in pairs(f) do t[k] = v end
  return sparse.row_sparse_array(t)
end
local function coo(f)
  local t = {data = {1, 2}, row = {1, 2}, col = {1, 2}, shape = {2, 2}}
  for k, v in pairs(f) do t[k] = v end
  return sparse.coo_matrix(t)
end
local A = keras.array({{1, 0, 2}, {0, 0, 3}})
local C, R = A:tostype("csr"), A:tostype("row_sparse")
local C64 = keras.array({{1, 0}, {0, 2}}, {dtype = "float64"}):tostype("csr")
local I = keras.array({{1, 0}, {0, 2}}, {dtype = "int64"})

-- {description, function, expected message substring(s)}
local cases = {
  {"csr neg shape", function() return csr{shape = {3, -5}} end,
    "csr_matrix: shape[2] = -5 must be >= 0"},
  {"csr frac shape", function() return csr{shape = {3, 5.5}} end,
    "csr_matrix: shape[2] = 5.5 is not an integer"},
  {"csr string shape", function() return csr{shape = {3, "5"}} end,
    "csr_matrix: shape[2] is a string, expected an integer"},
  {"csr data string", function() return csr{data = {7, "x", 9}} end,
    "csr_matrix: data[2] is a string, expected a number"},
  {"csr indptr string", function() return csr{indptr = "1,3,3,4"} end,
    "csr_matrix: indptr must be a table of numbers or a 1-d tensor (got string)"},
  {"csr indices maxint", function() return csr{indices = {math.maxinteger, 3, 2}} end,
    "csr_matrix: indices[1] = 9223372036854775807 out of range for 5 columns"},
  {"csr indptr maxint", function() return csr{indptr = {1, math.maxinteger, 3, 4}} end,
    "csr_matrix: indptr must be non-decreasing: indptr[3] = 3 < indptr[2] = 9223372036854775807"},
  {"csr indptr first 0", function() return csr{indptr = {0, 3, 3, 4}} end,
    "csr_matrix: indptr[1] = 0 must be 1"},
  {"csr indptr last 5", function() return csr{indptr = {1, 3, 3, 5}} end,
    "csr_matrix: indptr[4] = 5 must be 4 (the number of values + 1)"},
  {"csr indptr nested", function() return csr{indptr = {{1}, 3, 3, 4}} end,
    "csr_matrix: indptr[1] is a table, expected an integer"},
  {"csr data nested", function() return csr{data = {{7}, 8, 9}} end,
    "csr_matrix: data[1] is a table, expected a number"},
  {"csr missing data", function() return sparse.csr_matrix{indices = {1}, indptr = {1, 2}, shape = {1, 2}} end,
    "csr_matrix: missing field 'data'"},
  {"csr missing indices", function() return sparse.csr_matrix{data = {1}, indptr = {1, 2}, shape = {1, 2}} end,
    "csr_matrix: missing field 'indices'"},
  {"csr huge shape", function() return csr{shape = {3, 2^62}} end,
    "csr_matrix: shape[2] = 4611686018427387904 makes the tensor too large (more than 2^48 elements)"},
  {"csr nil", function() return sparse.csr_matrix(nil) end,
    "csr_matrix: expected a table of fields, a tensor or a nested table (got nil)"},
  {"csr string", function() return sparse.csr_matrix("a") end,
    "csr_matrix: expected a table of fields, a tensor or a nested table (got string)"},
  {"csr dtype number", function() return csr{dtype = 5} end,
    "csr_matrix: option 'dtype' must be a string (got number)"},
  {"csr ragged dense", function() return sparse.csr_matrix({{1, 2}, {3}}) end,
    "csr_matrix: ragged nested table: element [2] has 1 elements, expected 2"},
  {"csr indices nan", function() return csr{indices = {0/0, 3, 2}} end,
    {"csr_matrix: indices[1] = ", "is not an integer"}},
  {"csr indptr inf", function() return csr{indptr = {1, math.huge, 3, 4}} end,
    "csr_matrix: indptr[2] = inf is not an integer"},
  {"csr shape nil 3 dims 0", function() return csr{shape = {}} end,
    "csr_matrix: shape must have 2 dimensions (got 0)"},
  {"csr shape string", function() return csr{shape = "3x5"} end,
    "csr_matrix: shape must be a table of integers (got string)"},
  {"rsp neg index", function() return rsp{indices = {-1, 5}} end,
    "row_sparse_array: indices[1] = -1 out of range for 6 rows"},
  {"rsp maxint", function() return rsp{indices = {2, math.maxinteger}} end,
    "row_sparse_array: indices[2] = 9223372036854775807 out of range for 6 rows"},
  {"rsp neg shape", function() return rsp{shape = {-6, 2}} end,
    "row_sparse_array: shape[1] = -6 must be >= 0"},
  {"rsp data number", function() return rsp{data = 5} end,
    "row_sparse_array: data must have at least 1 dimension"},
  {"rsp missing indices", function() return sparse.row_sparse_array{data = {{1, 2}}, shape = {6, 2}} end,
    "row_sparse_array: missing field 'indices'"},
  {"rsp 9 dims", function() return rsp{shape = {6, 2, 1, 1, 1, 1, 1, 1, 1}} end,
    "row_sparse_array: shape has 9 dimensions, at most 8 are supported"},
  {"rsp 3d mismatch", function() return rsp{shape = {6, 2, 2}} end,
    "row_sparse_array: data of shape 2 x 2 does not fit shape 6 x 2 x 2"},
  {"rsp shape string", function() return rsp{shape = "6x2"} end,
    "row_sparse_array: shape must be a table of integers (got string)"},
  {"rsp 0-d shape", function() return rsp{shape = {}} end,
    "row_sparse_array: shape must have at least 1 dimension"},
  {"rsp nil", function() return sparse.row_sparse_array(nil) end,
    "row_sparse_array: expected a table of fields, a tensor or a nested table (got nil)"},
  {"rsp index nan", function() return rsp{indices = {0/0, 5}} end,
    {"row_sparse_array: indices[1] = ", "is not an integer"}},
  {"rsp dtype int64 frac", function() return rsp{data = {{1, 2.5}, {3, 4}}, dtype = "int64"} end,
    "row_sparse_array: element [1][2] = 2.5 is not an integer (dtype int64)"},
  {"coo neg row", function() return coo{row = {-1, 2}} end,
    "coo_matrix: row[1] = -1 out of range for 2 rows"},
  {"coo neg shape", function() return coo{shape = {-2, 2}} end,
    "coo_matrix: shape[1] = -2 must be >= 0"},
  {"coo missing data", function() return sparse.coo_matrix{row = {1}, col = {1}, shape = {2, 2}} end,
    "coo_matrix: missing field 'data'"},
  {"coo data string", function() return coo{data = {1, "a"}} end,
    "coo_matrix: data[2] is a string, expected a number"},
  {"coo 3d shape", function() return coo{shape = {2, 2, 2}} end,
    "coo_matrix: shape must have 2 dimensions (got 3)"},
  {"zeros csc", function() return sparse.zeros("csc", {2, 2}) end,
    "sparse.zeros: unknown stype 'csc' (expected default, csr or row_sparse)"},
  {"zeros rsp neg", function() return sparse.zeros("row_sparse", {-1, 2}) end,
    "sparse.zeros: shape[1] = -1 must be >= 0"},
  {"zeros rsp 0d", function() return sparse.zeros("row_sparse", {}) end,
    "sparse.zeros: row_sparse needs at least 1 dimension"},
  {"rand density neg", function() return sparse.rand({2, 2}, "csr", -0.1) end,
    "rand: density = -0.1 must be in [0, 1]"},
  {"rand density nan", function() return sparse.rand({2, 2}, "csr", 0/0) end,
    {"rand: density = ", "must be in [0, 1]"}},
  {"rand stype foo", function() return sparse.rand({2, 2}, "foo", 0.5) end,
    "rand: unknown stype 'foo' (expected default, csr or row_sparse)"},
  {"dot csrT mismatch", function() return K.dot(C, keras.zeros({3, 2}), {transpose_a = true}) end,
    "dot: shape mismatch (2 x 3)^T . (3 x 2)"},
  {"dot rsp rsp mismatch", function() return K.dot(R, R) end,
    "dot: shape mismatch (2 x 3) . (2 x 3)"},
  {"dot csr int64", function() return K.dot(I:tostype("csr"), I) end,
    "dot: a has dtype int64, expected float32 or float64"},
  {"dot csr float64 vs float32", function() return K.dot(C64, keras.zeros({2, 2})) end,
    "dot: dtype mismatch float64 . float32"},
  {"sum rsp axis 3", function() return K.sum(R, 3) end,
    "sum: axis 3 out of range for a 2-d tensor"},
  {"mean axis string", function() return K.mean(C, "1") end,
    "mean: axis must be an integer (got string)"},
  {"sum keepdims number", function() return K.sum(C, 1, 1) end,
    "sum: keepdims must be a boolean (got number)"},
  {"concat csr dense dtype", function() return K.concatenate({C, keras.zeros({2, 3}, {dtype = "float64"})}, 1) end,
    "concatenate: dtype mismatch: input 2 is float64, input 1 is float32"},
  {"concat csr rsp shape", function() return K.concatenate({C, keras.zeros({3, 2}):tostype("row_sparse")}, 1) end,
    "concatenate: shape mismatch (3 x 2) at input 2 vs (2 x 3) at input 1: sizes must agree except on axis 1"},
  {"concat non-tensor elem", function() return K.concatenate({C, 5}) end,
    "bad argument #2 to 'concatenate' (keras.Tensor expected, got number)"},
  {"add csr shape", function() return C + keras.zeros({3, 2}):tostype("csr") end,
    "add: shapes (2 x 3) and (3 x 2) are not broadcastable"},
  {"mul rsp shape", function() return R * keras.zeros({3, 3}):tostype("row_sparse") end,
    "multiply: shapes (2 x 3) and (3 x 3) are not broadcastable"},
  {"sub dtype csr", function() return C - C64 end,
    "subtract: dtype mismatch (float32 vs float64)"},
  {"exp int64 csr", function() return K.exp(I:tostype("csr")) end,
    "exp: int64 is not supported (use float32 or float64)"},
  {"sqrt int64 rsp", function() return K.sqrt(I:tostype("row_sparse")) end,
    "sqrt: int64 is not supported (use float32 or float64)"},
  {"relu nil", function() return K.relu(nil) end,
    "bad argument #1 to 'relu' (keras.Tensor expected, got nil)"},
  {"softmax 0d", function() return K.softmax(keras.array(1)) end,
    "softmax: needs at least 1 dimension, got a scalar"},
  {"transpose table", function() return K.transpose({}) end,
    "bad argument #1 to 'transpose' (keras.Tensor expected, got table)"},
  {"retain dense", function() return sparse.retain(A, {1}) end,
    "retain: expected a row_sparse tensor (got default)"},
  {"retain string", function() return sparse.retain(R, "1") end,
    "retain: indices must be a table of numbers or a 1-d tensor (got string)"},
  {"retain frac", function() return sparse.retain(R, {1.5}) end,
    "retain: indices[1] = 1.5 is not an integer"},
  {"slice frac", function() return C:slice(1.5, 2) end,
    "slice: first = 1.5 is not an integer"},
  {"cast_storage nontensor", function() return sparse.cast_storage({}, "csr") end,
    "bad argument #1 to 'cast_storage' (keras.Tensor expected, got table)"},
  {"tostype csr 1d", function() return keras.zeros({3}):tostype("csr") end,
    "tostype: csr needs a 2-d tensor, got 1-d"},
  {"astype csr bad", function() return C:astype("int8") end,
    "astype: unknown dtype 'int8'"},
  {"sparse.dot number", function() return sparse.dot(C, 3) end,
    "bad argument #2 to 'dot' (keras.Tensor expected, got number)"},
  {"dot rsp csr mismatch", function() return K.dot(R, C) end,
    "dot: shape mismatch (2 x 3) . (2 x 3)"},
  {"copyto csr rsp", function() return C:copyto(keras.zeros({3, 2}):tostype("row_sparse")) end,
    "copyto: shape mismatch (2 x 3) vs (3 x 2)"},
  {"get csr oor", function() return C:get(3, 1) end,
    "get: index 1 = 3 out of range for dimension 1 of size 2"},
  {"square table", function() return K.square({1}) end,
    "bad argument #1 to 'square' (keras.Tensor expected, got table)"},
  {"log int64", function() return K.log(I:tostype("row_sparse")) end,
    "log: int64 is not supported (use float32 or float64)"},
  {"sigmoid string", function() return K.sigmoid("x") end,
    "bad argument #1 to 'sigmoid' (keras.Tensor expected, got string)"},
  {"tanh int64 csr", function() return K.tanh(I:tostype("csr")) end,
    "tanh: int64 is not supported (use float32 or float64)"},
  {"abs nil", function() return K.abs() end,
    "bad argument #1 to 'abs' (keras.Tensor expected, got nil)"},
  {"negative table", function() return K.negative({}) end,
    "bad argument #1 to 'negative' (keras.Tensor expected, got table)"},
  {"sum csr axis -3", function() return K.sum(C, -3) end,
    "sum: axis -3 out of range for a 2-d tensor"},
  {"mean rsp axis 1.5", function() return K.mean(R, 1.5) end,
    "mean: axis must be an integer (got 1.5)"},
  {"concat axis 0 csr", function() return K.concatenate({C, C}, 0) end,
    "concatenate: axis 0 out of range for a 2-d tensor"},
  {"add scalar string", function() return C + "a" end,
    "bad argument #2 to 'add' (keras.Tensor or number expected, got string)"},
  {"mul scalar table", function() return R * {} end,
    "bad argument #2 to 'multiply' (keras.Tensor or number expected, got table)"},
  {"dot transpose_b string", function() return K.dot(C, C, {transpose_b = "yes"}) end,
    "dot: option 'transpose_b' must be a boolean (got string)"},
  {"check_format nil", function() return sparse.check_format(nil) end,
    "bad argument #1 to 'check_format' (keras.Tensor expected, got nil)"},
  {"to_dense number", function() return K.to_dense(1) end,
    "bad argument #1 to 'to_dense' (keras.Tensor expected, got number)"},
  {"cast_storage rsp 0-d", function() return sparse.cast_storage(keras.array(1), "row_sparse") end,
    "cast_storage: row_sparse needs a tensor of at least 1 dimension"},
  {"take rows?", function() return C:slice(2, 5) end,
    "slice: rows 2..5 out of range for a tensor of 2 rows"},
}

describe("bad-input corpus: constructors and op entry points", function()
  it("has at least 60 cases", function() assert.is_true(#cases >= 60) end)
  for _, c in ipairs(cases) do
    it(c[1], function()
      local ok, err = pcall(c[2])
      assert.is_false(ok, c[1] .. ": no error raised")
      assert.are.equal("string", type(err))
      local want = type(c[3]) == "table" and c[3] or {c[3]}
      for _, w in ipairs(want) do
        assert(err:find(w, 1, true), string.format("%s: message %q lacks %q", c[1], err, w))
      end
    end)
  end
end)
