-- spec/bad_input_extremes_spec.lua: integer extremes (math.mininteger / math.maxinteger) as
-- indices, pointers and row numbers: a clean "out of range" error, and no signed overflow in
-- the 1-based -> 0-based conversion (tools/test-asan runs this under UBSan).
local keras = require("keras")
local sparse = keras.sparse

local function fails_with(sub, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert(tostring(err):find(sub, 1, true), string.format("message %q lacks %q", tostring(err), sub))
end

local base = {data = {7, 8, 9}, indices = {1, 3, 2}, indptr = {1, 3, 3, 4}, shape = {3, 5}}
local function csr(f)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(f) do t[k] = v end
  return sparse.csr_matrix(t)
end

describe("integer extremes", function()
  local min, max = math.mininteger, math.maxinteger
  it("csr indices and indptr", function()
    fails_with("csr_matrix: indices[1] = ", function() return csr{indices = {min, 3, 2}} end)
    fails_with("csr_matrix: indptr[1] = ", function() return csr{indptr = {min, 3, 3, 4}} end)
    fails_with("out of range for 5 columns", function() return csr{indices = {1, 3, max}} end)
  end)
  it("row_sparse indices", function()
    fails_with("out of range for 6 rows", function()
      return sparse.row_sparse_array{data = {{1, 2}, {3, 4}}, indices = {min, 5}, shape = {6, 2}}
    end)
  end)
  it("coo rows and columns", function()
    fails_with("coo_matrix: col[1] = ", function()
      return sparse.coo_matrix{data = {1, 2}, row = {1, 2}, col = {min, 2}, shape = {2, 2}}
    end)
  end)
  it("retain, slice and get", function()
    local R = keras.array({{1, 2}, {3, 4}}):tostype("row_sparse")
    fails_with("retain: indices[1] = ", function() return sparse.retain(R, {min}) end)
    fails_with("slice: rows ", function() return R:slice(min, 2) end)
    fails_with("get: index 1 = ", function() return R:get(min, 1) end)
  end)
  -- fuzz_svmlight finding (spec/fuzz/regressions/svmlight/index_too_large_for_rows): an index
  -- that fits alone but makes rows x columns exceed 2^48 got the CSR constructor's message
  it("a LibSVM index too large for the number of rows", function()
    local p = os.tmpname()
    local f = assert(io.open(p, "w"))
    f:write("-2 277777007777000:8\n-1 26:3\n")
    f:close()
    local du = keras.data_utils
    fails_with("load_svmlight_file: " .. p .. ":1: index 277777007777000 makes the matrix too large " ..
      "(2 rows x 277777007777000 columns is more than 2^48 elements)", function() return du.load_svmlight_file(p) end)
    fails_with("load_svmlight_file: " .. p .. ": n_features=281474976710656 for 2 rows makes the matrix too large",
      function() return du.load_svmlight_file(p, {n_features = 1 << 48}) end)
    os.remove(p)
  end)
end)
