-- keras/libsvm.lua: LibSVM/svmlight files for keras.data_utils: load_svmlight_file,
-- dump_svmlight_file and the streaming LibSVMIter (over the C reader, data_utils/svmlight*.c).
local core = require("keras.core")
local A = require("keras.argcheck")

local libsvm = {}

-- ------------------------------------------------------------ option checks
-- Every check raises "fn: option must be .... Received: option=value" (Keras' wording).

local function received(v)
  if type(v) == "string" then return "'" .. v .. "'" end
  return tostring(v)
end

local function check_table(fn, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(string.format("%s: options must be a table (got %s)", fn, type(opts)), 0)
  end
  for k in pairs(opts) do
    if type(k) ~= "string" or not allowed[k] then
      error(string.format("%s: unknown option '%s'", fn, tostring(k)), 0)
    end
  end
  return opts
end

local function check_path(fn, path)
  if type(path) ~= "string" or path == "" then
    error(string.format("%s: path must be a non-empty string. Received: path=%s", fn,
      received(path)), 0)
  end
  return path
end

-- A positive integer option; nil gives def (def nil: the option is required).
local function check_posint(fn, name, v, def)
  if v == nil then
    if def ~= nil then return def end
    error(string.format("%s: %s is required (a positive integer)", fn, name), 0)
  end
  local iv = A.toint(v)
  if iv == nil or iv < 1 then
    error(string.format("%s: %s must be a positive integer. Received: %s=%s", fn, name, name,
      received(v)), 0)
  end
  return iv
end

-- zero_based: "auto" (default), true or false -> the C convention -1, 1, 0.
local function check_zero_based(fn, v)
  if v == nil or v == "auto" then return -1 end
  if v == true then return 1 end
  if v == false then return 0 end
  error(string.format("%s: zero_based must be 'auto', true or false. Received: zero_based=%s",
    fn, received(v)), 0)
end

local function check_dtype(fn, v)
  if v == nil then return "float32" end
  if v ~= "float32" and v ~= "float64" then
    error(string.format("%s: dtype must be 'float32' or 'float64'. Received: dtype=%s", fn,
      received(v)), 0)
  end
  return v
end

local function check_bool(fn, name, v, def)
  if v == nil then return def end
  if type(v) ~= "boolean" then
    error(string.format("%s: %s must be true or false. Received: %s=%s", fn, name, name,
      received(v)), 0)
  end
  return v
end

-- label_map = {[from] = to} and label_offset = k -> a function of y (nil: neither given):
-- labels found in the map become their value, others stay; then + k (public LibSVM sets use
-- -1/+1 for binary and 0..C-1 for multiclass: {[-1] = 0} and label_offset = 1 fit them to
-- binary_crossentropy's 0/1 and sparse_categorical_crossentropy's 1..C).
local function label_mapper(fn, map, offset)
  if map == nil and offset == nil then return nil end
  local from, to = {}, {}
  if map ~= nil then
    A.plain_table(fn, "label_map", map)
    for k, v in pairs(map) do
      if type(k) ~= "number" or type(v) ~= "number" then
        error(string.format("%s: label_map must map labels to labels (numbers). Received: [%s] = %s",
          fn, A.repr(k), A.repr(v)), 0)
      end
      from[#from + 1], to[#to + 1] = k, v
    end
  end
  if offset ~= nil and (type(offset) ~= "number" or offset ~= offset or math.abs(offset) == math.huge) then
    error(string.format("%s: label_offset must be a finite number. Received: label_offset=%s", fn,
      received(offset)), 0)
  end
  offset = offset or 0
  return function(y) return core.map_labels(y, from, to, offset, fn) end
end

-- ------------------------------------------------------------ load / dump

-- load_svmlight_file(path, {n_features=, zero_based="auto", dtype="float32", query_id=false,
--   label_map=, label_offset=})
-- -> X (CSR, rows x n_features), y (dense float, rows)[, qid (int64 dense, rows; nil when
-- the file has no qid:)]. n_features nil: the largest index + 1 (an index past a given
-- n_features is an error). zero_based "auto": one-based unless an index 0 appears anywhere
-- in the file (as scikit-learn). .gz files are read transparently. Errors name the file
-- and line: "load_svmlight_file: data.svm:3: index 0 in a one-based file".
function libsvm.load_svmlight_file(path, opts)
  local fn = "load_svmlight_file"
  check_path(fn, path)
  opts = check_table(fn, opts, {n_features = true, zero_based = true, dtype = true,
    query_id = true, label_map = true, label_offset = true})
  local map = label_mapper(fn, opts.label_map, opts.label_offset)
  local copts = {
    n_features = opts.n_features ~= nil and check_posint(fn, "n_features", opts.n_features) or 0,
    zero_based = check_zero_based(fn, opts.zero_based),
    dtype = check_dtype(fn, opts.dtype),
    want_qid = check_bool(fn, "query_id", opts.query_id, false),
  }
  if not map then return core.svmlight_load(path, copts) end
  local X, y, qid = core.svmlight_load(path, copts)
  y = map(y)
  if copts.want_qid then return X, y, qid end
  return X, y
end

-- dump_svmlight_file(X, y, path, {zero_based=false}): X a CSR or dense 2-d tensor, y a
-- dense tensor (rows, or rows x 1) or a Lua list of numbers. Writes one-based indices
-- unless zero_based=true; values with enough digits to load back bit-identical; a path
-- ending in ".gz" is written gzip-compressed.
function libsvm.dump_svmlight_file(X, y, path, opts)
  local fn = "dump_svmlight_file"
  if not core.is_tensor(X) then
    error(string.format("%s: X must be a tensor (CSR or dense 2-d). Received: %s", fn, type(X)), 0)
  end
  if type(y) == "table" and not core.is_tensor(y) then
    local ok, t = pcall(core.array, y, {dtype = "float64"})
    if not ok then error(fn .. ": y must be a tensor or a list of numbers (" .. tostring(t) .. ")", 0) end
    y = t
  end
  if not core.is_tensor(y) then
    error(string.format("%s: y must be a tensor or a list of numbers. Received: %s", fn, type(y)), 0)
  end
  check_path(fn, path)
  opts = check_table(fn, opts, {zero_based = true})
  local zb = check_bool(fn, "zero_based", opts.zero_based, false)
  core.svmlight_dump(X, y, path, zb)
end

-- ------------------------------------------------------------ LibSVMIter
local LibSVMIter = {}
LibSVMIter.__index = LibSVMIter
libsvm.LibSVMIter_class = LibSVMIter

-- LibSVMIter{path=, n_features=, batch_size=, zero_based="auto", num_parts=1, part_index=1,
-- dtype="float32"}: streams CSR batches (at most batch_size rows) of part part_index
-- (1-based) of num_parts byte ranges of the file; the parts together hold every line once.
-- Memory is bounded by the batch. n_features and batch_size are required.
-- Fields: it.path, it.n_features, it.batch_size, it.num_parts, it.part_index, it.dtype,
-- it.num_samples (nil until a pass has run to its end; then the rows of a pass).
function libsvm.LibSVMIter(opts)
  local fn = "LibSVMIter"
  if type(opts) ~= "table" then
    error(fn .. ": expected an options table {path=, n_features=, batch_size=, ...}", 0)
  end
  check_table(fn, opts, {path = true, n_features = true, batch_size = true, zero_based = true,
    num_parts = true, part_index = true, dtype = true, label_map = true, label_offset = true})
  local self = setmetatable({}, LibSVMIter)
  self._map = label_mapper(fn, opts.label_map, opts.label_offset)
  self.path = check_path(fn, opts.path)
  self.n_features = check_posint(fn, "n_features", opts.n_features)
  self.batch_size = check_posint(fn, "batch_size", opts.batch_size)
  self.zero_based = opts.zero_based == nil and "auto" or opts.zero_based
  local zb = check_zero_based(fn, opts.zero_based)
  self.num_parts = check_posint(fn, "num_parts", opts.num_parts, 1)
  self.part_index = check_posint(fn, "part_index", opts.part_index, 1)
  if self.part_index > self.num_parts then
    error(string.format("%s: part_index must be in [1, num_parts=%d]. Received: part_index=%d",
      fn, self.num_parts, self.part_index), 0)
  end
  self.dtype = check_dtype(fn, opts.dtype)
  self._h = core.svmlight_iter_open(self.path, self.n_features, self.batch_size, zb,
    self.num_parts, self.part_index, self.dtype)
  return self
end

function libsvm.is_libsvm_iter(x) return getmetatable(x) == LibSVMIter end

local function handle(self, what)
  local h = rawget(self, "_h")
  if h == nil or h:is_closed() then
    error("LibSVMIter:" .. what .. ": the iterator is closed", 0)
  end
  return h
end

-- it:batches(): `for x, y, pad in it:batches() do ... end`: x a CSR tensor (n x n_features),
-- y a dense tensor (n), pad always 0 (the last batch of a part is short, never padded).
-- Each call rewinds and starts a new pass; one pass at a time per iterator (a second
-- batches() restarts the stream the first one reads). Batches may be kept: each is a
-- tensor of its own.
function LibSVMIter:batches()
  local h = handle(self, "batches")
  h:reset()
  local rows, finished = 0, false
  return function()
    if finished then return nil end
    local x, y = handle(self, "batches"):next()
    if x == nil then
      finished = true
      self.num_samples = rows
      return nil
    end
    rows = rows + x.shape[1]
    if self._map then y = self._map(y) end
    return x, y, 0
  end
end

-- it:next() -> x, y (the next batch of the current pass) or nil at its end; it:reset()
-- rewinds. batches() is the usual interface; these are MXNet's DataIter style.
function LibSVMIter:next()
  local x, y = handle(self, "next"):next()
  if x ~= nil and self._map then y = self._map(y) end
  return x, y
end
function LibSVMIter:reset() handle(self, "reset"):reset() end

-- it:close(): frees the reader now (also done by the garbage collector); idempotent.
function LibSVMIter:close()
  local h = rawget(self, "_h")
  if h then h:close() end
end
LibSVMIter.__close = LibSVMIter.close

LibSVMIter.__tostring = function(self)
  return string.format("LibSVMIter(%s, n_features=%d, batch_size=%d, part %d/%d)", self.path,
    self.n_features, self.batch_size, self.part_index, self.num_parts)
end

return libsvm
