-- keras/data_utils.lua: keras.data_utils: batch trimming for sparse data (Keras-MXNet's
-- prepare_sliced_sparse_data) and ArrayIterator (like mx.io.NDArrayIter), dense or CSR.
local core = require("keras.core")
local A = require("keras.argcheck")

local data_utils = {}
local is_tensor = core.is_tensor

-- Where warnings go (a function of one string; tests replace it).
data_utils.warn = function(msg) io.stderr:write("Warning: ", tostring(msg), "\n") end

local function check_batch_size(fn, bs)
  local ib = A.toint(bs)
  if ib == nil or ib < 1 then
    error(string.format("%s: batch_size must be a positive integer. Received: batch_size=%s",
      fn, tostring(bs)), 0)
  end
  return ib
end

local function nrows(fn, x, what)
  if not is_tensor(x) then
    error(string.format("%s: %s must be a tensor (got %s)", fn, what, type(x)), 0)
  end
  if x.ndim == 0 then error(string.format("%s: %s is a 0-d tensor; rows expected", fn, what), 0) end
  return x.shape[1]
end

-- prepare_sliced_sparse_data(x, batch_size): x (CSR or dense) trimmed to the largest whole
-- number of batches, keeping its stype (1000 rows, batch 32 -> 992). Fewer rows than one
-- batch: a warning, and x itself is returned.
function data_utils.prepare_sliced_sparse_data(x, batch_size)
  local fn = "prepare_sliced_sparse_data"
  local n = nrows(fn, x, "x")
  batch_size = check_batch_size(fn, batch_size)
  if n < batch_size then
    data_utils.warn(string.format("%s: x has %d rows, fewer than batch_size=%d; returning it " ..
      "unchanged", fn, n, batch_size))
    return x
  end
  local keep = n - n % batch_size
  if keep == n then return x end
  return x:slice(1, keep)
end

-- ------------------------------------------------------------ ArrayIterator
local ArrayIterator = {}
ArrayIterator.__index = ArrayIterator

local handles = {pad = true, discard = true, roll_over = true}

-- ArrayIterator{data=, label=, batch_size=1, shuffle=false, last_batch_handle="pad"}:
-- data a tensor (dense or CSR) or a list of tensors; label a tensor or nil.
function data_utils.ArrayIterator(opts)
  local fn = "ArrayIterator"
  if type(opts) ~= "table" then error(fn .. ": expected an options table", 0) end
  local allowed = {data = true, label = true, batch_size = true, shuffle = true,
    last_batch_handle = true}
  for k in pairs(opts) do
    if not allowed[k] then error(fn .. ": unknown option '" .. tostring(k) .. "'", 0) end
  end
  local data = opts.data
  if is_tensor(data) then data = {data} end
  if type(data) ~= "table" or #data == 0 then error(fn .. ": data must be a tensor or a list of tensors", 0) end
  local n = nrows(fn, data[1], "data")
  for i = 2, #data do
    local m = nrows(fn, data[i], "data[" .. i .. "]")
    if m ~= n then
      error(string.format("%s: data[%d] has %d rows, data[1] has %d", fn, i, m, n), 0)
    end
  end
  if opts.label ~= nil then
    local m = nrows(fn, opts.label, "label")
    if m ~= n then
      error(string.format("%s: data and label have different numbers of rows: %d and %d", fn, n, m), 0)
    end
  end
  local bs = check_batch_size(fn, opts.batch_size or 1)
  local h = opts.last_batch_handle or "pad"
  if not handles[h] then
    error(fn .. ": last_batch_handle must be 'pad', 'discard' or 'roll_over'. Received: " ..
      "last_batch_handle=" .. tostring(h), 0)
  end
  return setmetatable({data = data, single = is_tensor(opts.data), label = opts.label,
    batch_size = bs, shuffle = opts.shuffle or false, last_batch_handle = h, num_data = n,
    carry = {}}, ArrayIterator)
end
data_utils.is_iterator = function(x) return getmetatable(x) == ArrayIterator end

-- The row order of a new pass: the rows carried over from the last pass (roll_over) first.
function ArrayIterator:_order()
  local idx = {}
  for i = 1, self.num_data do idx[i] = i end
  if self.shuffle and self.num_data > 1 then
    local u = core.random_uniform({self.num_data}, {dtype = "float64"}):totable()
    for i = self.num_data, 2, -1 do
      local j = math.floor(u[i] * i) + 1
      if j > i then j = i end
      idx[i], idx[j] = idx[j], idx[i]
    end
  end
  local order = {}
  for _, r in ipairs(self.carry) do order[#order + 1] = r end
  for _, r in ipairs(idx) do order[#order + 1] = r end
  self.carry = {}
  return order
end

local function take(t, rows, contiguous)
  if contiguous then return t:slice(rows[1], rows[#rows]) end
  return core.take_rows(t, rows)
end

-- it:batches(): for x, y, pad in it:batches() do ... end. One pass per call (reshuffled);
-- pad: how many rows of a padded last batch repeat rows from the start of the pass.
function ArrayIterator:batches()
  local order = self:_order()
  local total, bs, pos = #order, self.batch_size, 0
  return function()
    if pos >= total then return nil end
    local rows, pad = {}, 0
    local last = pos + bs
    if last > total then
      local h = self.last_batch_handle
      if h == "discard" then pos = total; return nil end
      if h == "roll_over" then
        for i = pos + 1, total do self.carry[#self.carry + 1] = order[i] end
        pos = total
        return nil
      end
      pad = last - total
    end
    for i = pos + 1, math.min(last, total) do rows[#rows + 1] = order[i] end
    for i = 1, pad do rows[#rows + 1] = order[(i - 1) % total + 1] end
    pos = last
    local contiguous = pad == 0
    for i = 2, #rows do
      if rows[i] ~= rows[i - 1] + 1 then contiguous = false; break end
    end
    local xs = {}
    for i, d in ipairs(self.data) do xs[i] = take(d, rows, contiguous) end
    local y = self.label and take(self.label, rows, contiguous) or nil
    if self.single then return xs[1], y, pad end
    return xs, y, pad
  end
end

-- it:reset(): forgets rows carried over by roll_over.
function ArrayIterator:reset() self.carry = {} end

-- Number of batches a pass yields (without carried rows).
function ArrayIterator:num_batches()
  local n, bs = self.num_data, self.batch_size
  if self.last_batch_handle == "pad" then return (n + bs - 1) // bs end
  return n // bs
end

-- The svmlight reader/writer and LibSVMIter: keras/libsvm.lua (over the C reader).
local libsvm = require("keras.libsvm")
for _, name in ipairs({"load_svmlight_file", "dump_svmlight_file", "LibSVMIter"}) do
  data_utils[name] = libsvm[name]
end

return data_utils
