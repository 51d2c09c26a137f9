-- examples/make_libsvm_data.lua: writes a synthetic binary classification data set as a
-- LibSVM file (gzip-compressed when the name ends in ".gz"), through dump_svmlight_file.
--   lua5.4 examples/make_libsvm_data.lua train.svm.gz [rows=5000] [features=1000] [seed=1]
-- Each row has 5 to 20 nonzero features (values k/64 in (0, 1]); the label is 1 when a hidden
-- sparse linear score plus a little noise is positive, else 0, so a linear classifier can
-- reach about 90% accuracy. The same seed gives the same file.
-- Used as a module: `dofile("examples/make_libsvm_data.lua").make{path=, rows=, features=,
-- seed=, part=0}` returns {path=, rows=, features=, positives=}. seed fixes the hidden rule;
-- part picks other rows under the same rule (part=1 for a validation file, ...).
local keras = require("keras")

local M = {}

-- A small LCG of our own, so the data does not depend on Lua's math.random algorithm.
local function lcg(seed)
  local s = (seed * 2654435761 + 12345) % 4294967296
  return function()
    s = (s * 1664525 + 1013904223) % 4294967296
    return s / 4294967296
  end
end
M.lcg = lcg -- lcg(seed) -> a function giving numbers in [0, 1) (examples/ctr_wide_deep.lua)

function M.make(opts)
  local path = assert(opts.path, "make: path is required")
  local rows, features, seed = opts.rows or 5000, opts.features or 1000, opts.seed or 1
  local rnd = lcg(seed)
  -- the hidden weights: a third of the features matter, with weights in [-2, 2)
  local w = {}
  for j = 1, features do w[j] = rnd() < 1 / 3 and (rnd() * 4 - 2) or 0 end
  rnd = lcg(seed + 1000003 * ((opts.part or 0) + 1)) -- the rows: their own stream per part
  local data, indices, indptr, labels = {}, {}, {1}, {}
  local positives = 0
  for i = 1, rows do
    local k = 5 + math.floor(rnd() * 16)
    local cols, seen = {}, {}
    while #cols < math.min(k, features) do
      local j = 1 + math.floor(rnd() * features)
      if not seen[j] then seen[j] = true; cols[#cols + 1] = j end
    end
    table.sort(cols)
    local score = (rnd() - 0.5) * 0.5
    for _, j in ipairs(cols) do
      local v = (1 + math.floor(rnd() * 64)) / 64 -- exact in binary: short text
      data[#data + 1], indices[#indices + 1] = v, j
      score = score + w[j] * v
    end
    indptr[#indptr + 1] = #data + 1
    labels[i] = score > 0 and 1 or 0
    positives = positives + labels[i]
  end
  local X = keras.sparse.csr_matrix{data = data, indices = indices, indptr = indptr,
    shape = {rows, features}, dtype = "float32"}
  keras.data_utils.dump_svmlight_file(X, labels, path)
  return {path = path, rows = rows, features = features, positives = positives}
end

-- Run as a script: lua5.4 examples/make_libsvm_data.lua out.svm[.gz] [rows] [features] [seed]
if arg and arg[0] and arg[0]:match("make_libsvm_data%.lua$") then
  local function num(i, def)
    if arg[i] == nil then return def end
    local v = math.tointeger(tonumber(arg[i]))
    if not v or v < 1 then
      io.stderr:write("make_libsvm_data: argument ", i, " must be a positive integer, got '",
        arg[i], "'\n")
      os.exit(2)
    end
    return v
  end
  if not arg[1] then
    io.stderr:write("usage: lua5.4 examples/make_libsvm_data.lua out.svm[.gz] [rows] [features] [seed]\n")
    os.exit(2)
  end
  local r = M.make{path = arg[1], rows = num(2, 5000), features = num(3, 1000), seed = num(4, 1)}
  print(string.format("wrote %s: %d rows, %d features, %d positive", r.path, r.rows, r.features,
    r.positives))
end

return M
