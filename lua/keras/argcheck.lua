-- keras/argcheck.lua: argument checks shared by the Lua modules: Keras-style failures
-- ("Dense: units must be a positive integer. Received: units=-3") and a safe rendering of
-- the received value.
local core = require("keras.core")

local A = {}

-- fail(fmt, ...): raises the formatted message without a Lua file position.
function A.fail(fmt, ...) error(string.format(fmt, ...), 0) end

-- Renderers for tables with a metatable (keras.symbolic adds graph nodes): f(v) -> text or nil.
A.describers = {}

-- repr(v): a short rendering of a received value for a message: bounded depth and length,
-- raw access only (no user __index/__len/__tostring runs), cycles cut by the depth bound.
local function repr(v, depth)
  local tv = type(v)
  if tv == "string" then
    if #v > 40 then return string.format("'%s'..(%d bytes)", v:sub(1, 40), #v) end
    return "'" .. v .. "'"
  elseif tv == "number" or tv == "boolean" or tv == "nil" then
    return tostring(v)
  elseif core.is_tensor(v) then
    local ok, sh = pcall(function() return v.shape end)
    if not ok or type(sh) ~= "table" then return "a keras.Tensor" end
    local p = {}
    for i, d in ipairs(sh) do p[i] = tostring(d) end
    return "a keras.Tensor of shape (" .. table.concat(p, ", ") .. (#p == 1 and ",)" or ")")
  elseif tv == "table" then
    if getmetatable(v) ~= nil then
      for _, f in ipairs(A.describers) do
        local ok, s = pcall(f, v)
        if ok and type(s) == "string" then return s end
      end
    end
    if depth >= 2 then return "{...}" end
    local p = {}
    for i = 1, 8 do
      local x = rawget(v, i)
      if x == nil then break end
      p[i] = repr(x, depth + 1)
    end
    if rawget(v, 9) ~= nil then p[#p + 1] = "..." end
    if #p == 0 and next(v) ~= nil then return "a table" end
    return "{" .. table.concat(p, ", ") .. "}"
  end
  return "a " .. tv
end
function A.repr(v) return repr(v, 0) end

-- A table of options (nil gives {}), every key among allowed; fn names the caller.
function A.check_opts(fn, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    A.fail("%s: options must be a table. Received: %s", fn, A.repr(opts))
  end
  for k in next, opts do
    if not allowed[k] then A.fail("%s: unknown option %s", fn, A.repr(k)) end
  end
  return opts
end

-- toint(v): v as a Lua integer when it is a number with an integral value (2^6, 1e4, 64 / 2
-- and 32.0 are floats in Lua 5.4; luaL_checkinteger accepts them too), else nil. Every
-- integer option of the Lua layer goes through it, so a fractional value still fails with
-- the message naming the option.
function A.toint(v)
  if type(v) ~= "number" then return nil end
  return math.tointeger(v)
end

-- int(fn, name, v[, lo[, hi[, what]]]): v as an integer in [lo, hi], or the Keras-style
-- failure "fn: name must be <what>. Received: name=v" (what defaults to "an integer",
-- "a positive integer" with lo = 1, "an integer >= lo" with another lo).
function A.int(fn, name, v, lo, hi, what)
  local iv = A.toint(v)
  if iv == nil or (lo and iv < lo) or (hi and iv > hi) then
    if not what then
      if lo == 1 and not hi then what = "a positive integer"
      elseif lo and hi then what = string.format("an integer in [%d, %d]", lo, hi)
      elseif lo then what = string.format("an integer >= %d", lo)
      else what = "an integer" end
    end
    A.fail("%s: %s must be %s. Received: %s=%s", fn, name, what, name, A.repr(v))
  end
  return iv
end

-- A plain table (no metatable, not a tensor), or a failure naming fn, what and the value.
function A.plain_table(fn, what, v)
  if type(v) ~= "table" or getmetatable(v) ~= nil then
    A.fail("%s: %s must be a table. Received: %s=%s", fn, what, what, A.repr(v))
  end
  return v
end

return A
