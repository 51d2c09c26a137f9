-- keras/json.lua: a small JSON encoder/decoder for model configs (sorted keys, exact numbers).
local json = {}

-- json.null: the value decoded from `null` (nil cannot sit in a Lua list).
json.null = setmetatable({}, {__tostring = function() return "json.null" end})

local escapes = {['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t"}

local function enc_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- The shortest of %.15g/%.16g/%.17g that reads back as the same double.
local function enc_number(x, path)
  if math.type(x) == "integer" then return string.format("%d", x) end
  if x ~= x or x == math.huge or x == -math.huge then
    error("json.encode: cannot encode " .. tostring(x) .. " at " .. path, 0)
  end
  for _, f in ipairs({"%.15g", "%.16g", "%.17g"}) do
    local s = string.format(f, x)
    if tonumber(s) == x then
      -- keep it a float when decoded: 1.0 is written "1.0", not "1"
      if not s:find("[%.eEn]") then s = s .. ".0" end
      return s
    end
  end
end

-- Whether t is a list: keys exactly 1..n (an empty table is a list).
local function is_list(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
  end
  for i = 1, n do if t[i] == nil then return false end end
  return true
end

local function encode(v, path, seen, out)
  local tv = type(v)
  if v == json.null or v == nil then out[#out + 1] = "null"
  elseif tv == "boolean" then out[#out + 1] = tostring(v)
  elseif tv == "number" then out[#out + 1] = enc_number(v, path)
  elseif tv == "string" then out[#out + 1] = enc_string(v)
  elseif tv == "table" then
    if seen[v] then error("json.encode: a cycle at " .. path, 0) end
    seen[v] = true
    if is_list(v) and (next(v) ~= nil or getmetatable(v) ~= json.object_mt) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], path .. "[" .. i .. "]", seen, out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then
          error("json.encode: a table mixes list entries and keys, or has a non-string key (" ..
            tostring(k) .. ") at " .. path, 0)
        end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = enc_string(k)
        out[#out + 1] = ":"
        encode(v[k], path .. "." .. k, seen, out)
      end
      out[#out + 1] = "}"
    end
    seen[v] = nil
  else
    error("json.encode: cannot encode a " .. tv .. " at " .. path, 0)
  end
end

-- json.object_mt: set it on an empty table to encode it as {} instead of [].
json.object_mt = {}
function json.object(t) return setmetatable(t or {}, json.object_mt) end

-- json.encode(value) -> string: keys sorted, numbers exact (integers as integers, floats
-- with the fewest digits that read back identically). Errors name the path ("$.layers[2]").
function json.encode(v)
  local out = {}
  encode(v, "$", {}, out)
  return table.concat(out)
end

-- ------------------------------------------------------------ decoder
local function derr(s, i, msg)
  error(string.format("json.decode: %s at position %d", msg, i), 0)
end

local function skip(s, i)
  return s:find("[^ \t\r\n]", i) or #s + 1
end

local decode_value

local function utf8_char(cp) return utf8.char(cp) end

local function dec_string(s, i)
  local out, j = {}, i + 1
  while true do
    local a, b = s:find('["\\%c]', j)
    if not a then derr(s, i, "unterminated string") end
    out[#out + 1] = s:sub(j, a - 1)
    local c = s:sub(a, a)
    if c == '"' then return table.concat(out), a + 1 end
    if c ~= "\\" then derr(s, a, "control character in string") end
    local e = s:sub(a + 1, a + 1)
    if e == "u" then
      local hex = s:match("^%x%x%x%x", a + 2)
      if not hex then derr(s, a, "bad \\u escape") end
      local cp = tonumber(hex, 16)
      local nexti = a + 6
      if cp >= 0xD800 and cp <= 0xDBFF then
        local lo = s:match("^\\u(%x%x%x%x)", nexti)
        lo = lo and tonumber(lo, 16)
        if not lo or lo < 0xDC00 or lo > 0xDFFF then derr(s, a, "unpaired surrogate") end
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
        nexti = nexti + 6
      elseif cp >= 0xDC00 and cp <= 0xDFFF then
        derr(s, a, "unpaired surrogate")
      end
      out[#out + 1] = utf8_char(cp)
      j = nexti
    else
      local map = {['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
        r = "\r", t = "\t"}
      if not map[e] then derr(s, a, "bad escape '\\" .. e .. "'") end
      out[#out + 1] = map[e]
      j = a + 2
    end
    local _ = b
  end
end

local function dec_number(s, i)
  local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
  if not num then derr(s, i, "bad number") end
  local int, rest = num:match("^-?(%d+)(.*)$")
  if #int > 1 and int:sub(1, 1) == "0" then derr(s, i, "leading zero in number") end
  if rest ~= "" and not rest:match("^%.%d+$") and not rest:match("^[eE][-+]?%d+$") and
     not rest:match("^%.%d+[eE][-+]?%d+$") then
    derr(s, i, "bad number '" .. num .. "'")
  end
  local v = tonumber(num)
  if rest == "" then
    v = math.tointeger(v) or v -- beyond int64: a float, as Lua reads it
  else
    v = v + 0.0
  end
  return v, i + #num
end

function decode_value(s, i, depth)
  if depth > 200 then derr(s, i, "nesting too deep") end
  i = skip(s, i)
  local c = s:sub(i, i)
  if c == "{" then
    local t = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "}" then return json.object(t), i + 1 end
    while true do
      i = skip(s, i)
      if s:sub(i, i) ~= '"' then derr(s, i, "expected a string key") end
      local k
      k, i = dec_string(s, i)
      i = skip(s, i)
      if s:sub(i, i) ~= ":" then derr(s, i, "expected ':'") end
      local v
      v, i = decode_value(s, i + 1, depth + 1)
      if t[k] ~= nil then derr(s, i, "duplicate key '" .. k .. "'") end
      t[k] = v
      i = skip(s, i)
      c = s:sub(i, i)
      if c == "}" then return t, i + 1 end
      if c ~= "," then derr(s, i, "expected ',' or '}'") end
      i = i + 1
    end
  elseif c == "[" then
    local t = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "]" then return t, i + 1 end
    while true do
      local v
      v, i = decode_value(s, i, depth + 1)
      t[#t + 1] = v
      i = skip(s, i)
      c = s:sub(i, i)
      if c == "]" then return t, i + 1 end
      if c ~= "," then derr(s, i, "expected ',' or ']'") end
      i = i + 1
    end
  elseif c == '"' then return dec_string(s, i)
  elseif c == "-" or c:match("%d") then return dec_number(s, i)
  elseif s:sub(i, i + 3) == "true" then return true, i + 4
  elseif s:sub(i, i + 4) == "false" then return false, i + 5
  elseif s:sub(i, i + 3) == "null" then return json.null, i + 4
  elseif c == "" then derr(s, i, "unexpected end")
  end
  derr(s, i, "unexpected character '" .. c .. "'")
end

-- json.decode(string) -> value: objects and arrays become tables (empty objects carry
-- json.object_mt), null is json.null. Errors: "json.decode: expected ':' at position 12".
function json.decode(s)
  if type(s) ~= "string" then error("json.decode: expected a string (got " .. type(s) .. ")", 0) end
  local v, i = decode_value(s, 1, 0)
  i = skip(s, i)
  if i <= #s then derr(s, i, "trailing characters") end
  return v
end

return json
