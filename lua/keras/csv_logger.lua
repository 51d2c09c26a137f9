-- keras/csv_logger.lua: the CSVLogger callback (Keras 2's columns and number format), installed
-- into keras.callbacks by require("keras.csv_logger").install(callbacks).
local M = {}

-- Python's repr of a float (the shortest digits that read back the same; exponent form
-- below 1e-4 and from 1e16 on; "1.0" for integral values), so that a CSV written here reads
-- like Keras' own. Lua integers are written as integers.
function M.format_number(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  if v == 0 then return (1 / v < 0) and "-0.0" or "0.0" end
  local s
  for p = 0, 16 do
    s = string.format("%." .. p .. "e", v)
    if tonumber(s) == v then break end
  end
  local sign, d1, rest, e = s:match("^(-?)(%d)%.?(%d*)e([-+]%d+)$")
  local digits = (d1 .. rest):gsub("0+$", "")
  if digits == "" then digits = "0" end
  local exp10 = tonumber(e)
  local decpt = exp10 + 1 -- the decimal point sits after `decpt` digits
  if decpt <= -4 or decpt > 16 then
    local mant = digits:sub(1, 1)
    if #digits > 1 then mant = mant .. "." .. digits:sub(2) end
    return string.format("%s%se%s%02d", sign, mant, exp10 < 0 and "-" or "+", math.abs(exp10))
  end
  if decpt <= 0 then return sign .. "0." .. string.rep("0", -decpt) .. digits end
  if decpt >= #digits then return sign .. digits .. string.rep("0", decpt - #digits) .. ".0" end
  return sign .. digits:sub(1, decpt) .. "." .. digits:sub(decpt + 1)
end

-- A CSV field: numbers as above, lists as Keras' "[a, b]", strings quoted when they hold the
-- separator, a quote or a line break (Python csv's QUOTE_MINIMAL).
local function field(v, sep)
  local s
  if type(v) == "number" then
    s = M.format_number(v)
  elseif type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = type(x) == "number" and M.format_number(x) or tostring(x) end
    s = "[" .. table.concat(parts, ", ") .. "]"
  else
    s = tostring(v)
  end
  if s:find(sep, 1, true) or s:find('"', 1, true) or s:find("[\r\n]") then
    s = '"' .. s:gsub('"', '""') .. '"'
  end
  return s
end

local function file_is_nonempty(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local b = f:read(1)
  f:close()
  return b ~= nil
end

-- install(callbacks): defines callbacks.CSVLogger on the Callback base class of callbacks
-- and returns it.
--
-- CSVLogger{filename=, separator=",", append=false}: one row per epoch, as Keras 2:
-- the header is "epoch" then the log keys sorted (fixed by the first epoch's logs); a key
-- missing from a later epoch's logs is written "NA". Epochs are written as this API numbers
-- them, from 1 (Keras' files start at 0). append=true keeps an existing file and writes the
-- header only when the file is new or empty. Lines end with "\n" (Keras' csv.excel writes
-- "\r\n"; CSV readers accept both). The file is flushed after each row and closed at the end
-- of training.
function M.install(callbacks)
  local Callback = assert(callbacks.Callback, "csv_logger.install: callbacks.Callback missing")
  local CSVLogger = setmetatable({}, {__index = Callback})
  CSVLogger.__index = CSVLogger
  CSVLogger._name = "CSVLogger"

  setmetatable(CSVLogger, {__index = Callback, __call = function(cls, opts)
    local fn = "CSVLogger"
    if type(opts) == "string" then opts = {filename = opts} end
    if type(opts) ~= "table" then
      error(fn .. ": expected an options table {filename=, separator=, append=}", 0)
    end
    for k in pairs(opts) do
      if k ~= "filename" and k ~= "separator" and k ~= "append" then
        error(fn .. ": unknown option '" .. tostring(k) .. "'", 0)
      end
    end
    if type(opts.filename) ~= "string" or opts.filename == "" then
      error(fn .. ": filename must be a non-empty string. Received: filename=" ..
        tostring(opts.filename), 0)
    end
    local sep = opts.separator == nil and "," or opts.separator
    if type(sep) ~= "string" or sep == "" or sep:find('["\r\n]') then
      error(fn .. ": separator must be a non-empty string without quotes or line breaks. " ..
        "Received: separator=" .. tostring(sep), 0)
    end
    local append = opts.append
    if append == nil then append = false end
    if type(append) ~= "boolean" then
      error(fn .. ": append must be true or false. Received: append=" .. tostring(append), 0)
    end
    return setmetatable({filename = opts.filename, sep = sep, append = append}, cls)
  end})

  function CSVLogger:on_train_begin()
    self:_close()
    self.write_header = not (self.append and file_is_nonempty(self.filename))
    local f, err = io.open(self.filename, self.append and "a" or "w")
    if not f then error("CSVLogger: cannot open '" .. self.filename .. "': " .. tostring(err), 0) end
    self.file, self.keys = f, nil
  end

  function CSVLogger:on_epoch_end(epoch, logs)
    logs = callbacks.hook_logs(self, "on_epoch_end", logs)
    if not self.file then self:on_train_begin() end -- used outside fit: open on first use
    if not self.keys then
      self.keys = {}
      for k in pairs(logs) do
        if type(k) == "string" then self.keys[#self.keys + 1] = k end
      end
      table.sort(self.keys)
      if self.write_header then
        local head = {field("epoch", self.sep)}
        for _, k in ipairs(self.keys) do head[#head + 1] = field(k, self.sep) end
        self.file:write(table.concat(head, self.sep), "\n")
      end
    end
    local row = {field(epoch, self.sep)}
    for _, k in ipairs(self.keys) do
      local v = logs[k]
      row[#row + 1] = v == nil and "NA" or field(v, self.sep)
    end
    local ok, err = self.file:write(table.concat(row, self.sep), "\n")
    if not ok then error("CSVLogger: cannot write '" .. self.filename .. "': " .. tostring(err), 0) end
    self.file:flush()
  end

  function CSVLogger:_close()
    if self.file then
      self.file:close()
      self.file = nil
    end
  end
  CSVLogger.on_train_end = CSVLogger._close

  callbacks.CSVLogger = CSVLogger
  return CSVLogger
end

return M
