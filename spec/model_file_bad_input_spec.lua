-- spec/model_file_bad_input_spec.lua: the model-file bad-input corpus through Lua: crafted
-- files (bad JSON, bad metadata and checksums, bad entries, offsets, sizes, sparse parts),
-- each loaded with core.load_tensors and keras.models.load_model / model:load_weights: a clean
-- Lua error "load_model: <path>: <reason>" every time (never a crash, never a return).
-- The cases mirror spec/c/test_model_file.c's crafted headers, with real checksums so each
-- file is wrong in exactly the one way its message names.
local keras = require("keras")
local core = keras.core

-- zlib's crc32
local CRC = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  CRC[i] = c
end
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = CRC[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return string.format("%08x", c ~ 0xFFFFFFFF)
end

-- The data area: "a" F32 [2] = {1, 2} at [0, 8), "b" I64 [1] = {7} at [8, 16), then for the
-- sparse cases "s.data" F32 [1] = {5} at [16, 20), "s.indices" I64 {5} at [20, 28),
-- "s.indptr" I64 {0, 1} at [28, 44).
local DATA = string.pack("<ff", 1, 2) .. string.pack("<i8", 7) .. string.pack("<f", 5) ..
  string.pack("<i8", 5) .. string.pack("<i8i8", 0, 1)
local SEG = {0, 8, 16, 20, 28, 44}

-- A file from a header template: {0}..{4} become the crc32s of the five data parts, and a
-- "kl.header_crc32":"00000000" gets the header's real crc (computed with its digits zeroed).
local function file_of(tmpl, data_len)
  local hdr = tmpl:gsub("{(%d)}", function(d)
    local s = tonumber(d)
    return crc32(DATA:sub(SEG[s + 1] + 1, SEG[s + 2]))
  end)
  hdr = hdr .. string.rep(" ", (8 - #hdr % 8) % 8)
  local at = hdr:find('"kl.header_crc32":"00000000"', 1, true)
  if at then
    local c = crc32(hdr)
    hdr = hdr:sub(1, at + 18) .. c .. hdr:sub(at + 27)
  end
  return string.pack("<I8", #hdr) .. hdr .. DATA:sub(1, data_len)
end

local A_OK = '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
local B_OK = '"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}'
local HC = '"kl.header_crc32":"00000000"'
local CRCS = '"kl.crc32:a":"{0}","kl.crc32:b":"{1}"'
local function META(extra) return '"__metadata__":{' .. CRCS .. "," .. (extra or "") .. HC .. "}" end
local SP_OK = '"s.data":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},' ..
  '"s.indices":{"dtype":"I64","shape":[1],"data_offsets":[20,28]},' ..
  '"s.indptr":{"dtype":"I64","shape":[2],"data_offsets":[28,44]}'
local SP_CRCS = '"kl.crc32:s.data":"{2}","kl.crc32:s.indices":"{3}","kl.crc32:s.indptr":"{4}",'
local function SPARSE(desc) return SP_CRCS .. '"kl.sparse:' .. desc .. '",' end
local AB = "{" .. A_OK .. "," .. B_OK .. ","
local function entry_a(fields) return '{"a":{' .. fields .. "}," .. B_OK .. "," .. META() .. "}" end

local CASES = {
  -- the header's JSON
  {"hello", 16, "header: unexpected character 'h' at byte 0"},
  {"[1,2]", 16, "header must be a JSON object (got array)"},
  {'{"a":', 16, "header: unexpected end, expected a value"},
  {'{"a":{}} x', 16, "header: trailing character 'x'"},
  {'{"a":1.5}', 16, "header: only integers are allowed"},
  {'{"a":true}', 16, "header: unexpected character 't'"},
  {'{"a":01}', 16, "header: leading zero in number"},
  {'{"a":99999999999999999999}', 16, "header: integer out of range"},
  {'{"a\\q":1}', 16, "header: bad escape '\\q'"},
  {'{"a\1":1}', 16, "header: control character 0x01 in string"},
  {'{"\\ud800x":1}', 16, "header: unpaired surrogate"},
  {'{"\\u0000":1}', 16, "header: \\u0000 in string"},
  {'{"a":1,"a":2}', 16, 'header: duplicate key "a"'},
  {'{"a":' .. string.rep("[", 18) .. "1" .. string.rep("]", 18) .. "}", 16, "header: nesting deeper than 16"},
  {'{"a" 1}', 16, "header: expected ':' at byte 5"},
  {'{"a":[1 2]}', 16, "header: expected ',' or ']'"},
  {'{"a":"abc', 16, "header: unterminated string"},
  -- metadata and checksums
  {"{" .. A_OK .. "," .. B_OK .. "}", 16, "missing __metadata__ (the file has no checksums)"},
  {AB .. '"__metadata__":[]}', 16, "__metadata__ must be an object"},
  {AB .. '"__metadata__":{' .. CRCS .. "}}", 16, "missing 'kl.header_crc32'"},
  {AB .. '"__metadata__":{' .. CRCS .. ',"kl.header_crc32":"0000000g"}}', 16,
    "'kl.header_crc32' is not 8 lowercase hex digits"},
  {AB .. '"__metadata__":{' .. CRCS .. ',"kl.header_crc32":"12345678"}}', 16,
    "header crc mismatch (stored 12345678"},
  {AB .. META('"x":[],') .. "}", 16, "__metadata__ value of 'x' is not a string"},
  {AB .. META('"kl.foo":"1",') .. "}", 16, "unknown reserved metadata key 'kl.foo'"},
  {AB .. META('"kl.format":"keras-lua/9",') .. "}", 16, 'unknown format "keras-lua/9"'},
  {AB .. '"__metadata__":{"kl.crc32:a":"{0}",' .. HC .. "}}", 16, "missing crc32 for tensor 'b'"},
  {AB .. '"__metadata__":{"kl.crc32:a":"{1}","kl.crc32:b":"{1}",' .. HC .. "}}", 16,
    "crc mismatch for tensor 'a'"},
  {AB .. META('"kl.crc32:c":"00000000",') .. "}", 16, "crc32 given for unknown tensor 'c'"},
  {AB .. '"__metadata__":{"kl.crc32:a":"{0}","kl.crc32:b":"1234",' .. HC .. "}}", 16,
    "crc32 of tensor 'b' is not 8 lowercase hex digits"},
  -- tensor entries, offsets and sizes
  {'{"a":[],' .. B_OK .. "," .. META() .. "}", 16, "tensor 'a': entry must be an object"},
  {entry_a('"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1'), 16, "tensor 'a': unknown field 'x'"},
  {entry_a('"shape":[2],"data_offsets":[0,8]'), 16, "tensor 'a': dtype must be a string"},
  {entry_a('"dtype":"BF16","shape":[2],"data_offsets":[0,8]'), 16, "tensor 'a': unknown dtype \"BF16\""},
  {entry_a('"dtype":"F32","shape":2,"data_offsets":[0,8]'), 16, "tensor 'a': shape must be an array"},
  {entry_a('"dtype":"F32","shape":[-2],"data_offsets":[0,8]'), 16, "tensor 'a': shape[0] = -2 is negative"},
  {entry_a('"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]'), 16,
    "tensor 'a': shape has 9 dims (at most 8)"},
  {entry_a('"dtype":"F32","shape":[16777216,16777216,16777216],"data_offsets":[0,8]'), 16,
    "tensor 'a': shape has more than 2^48 elements"},
  {entry_a('"dtype":"F32","shape":["2"],"data_offsets":[0,8]'), 16, "tensor 'a': shape[0] is not an integer"},
  {entry_a('"dtype":"F32","shape":[2],"data_offsets":[0]'), 16, "tensor 'a': data_offsets must be [begin, end]"},
  {entry_a('"dtype":"F32","shape":[2],"data_offsets":[8,0]'), 16, "tensor 'a': bad data_offsets [8, 0]"},
  {entry_a('"dtype":"F32","shape":[2],"data_offsets":[-8,0]'), 16, "tensor 'a': bad data_offsets [-8, 0]"},
  {entry_a('"dtype":"F32","shape":[2],"data_offsets":[0,8]'), 12,
    "tensor 'b': data_offsets end 16 beyond the data area (12 bytes)"},
  {entry_a('"dtype":"F32","shape":[3],"data_offsets":[0,8]'), 16,
    "tensor 'a': data_offsets [0, 8] hold 8 bytes, shape and dtype need 12"},
  {'{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],' ..
    '"data_offsets":[4,12]},' .. META() .. "}", 16, "tensor 'b' data_offsets [4, 12] overlap tensor 'a'"},
  {entry_a('"dtype":"F32","shape":[1],"data_offsets":[0,4]'), 16, "gap of 4 bytes before tensor 'b'"},
  {AB .. META() .. "}", 20, "data area holds 20 bytes but the tensors cover 16"},
  -- sparse tensors
  {AB .. SP_OK .. "," .. META(SPARSE('s":"{\\"stype\\":\\"csr\\",\\"shape\\":[1,3]}')) .. "}", 44,
    "sparse tensor 's': check_format: indices[0] = 5 out of range for 3 columns"},
  {AB .. SP_OK .. "," .. META(SPARSE('s":"{\\"stype\\":\\"coo\\",\\"shape\\":[1,3]}')) .. "}", 44,
    "sparse tensor 's': unknown stype \"coo\""},
  {AB .. SP_OK .. "," .. META(SPARSE('s":"{\\"stype\\":\\"csr\\"}')) .. "}", 44,
    "sparse tensor 's': description must be {"},
  {AB .. SP_OK .. "," .. META(SPARSE('s":"{oops')) .. "}", 44, "sparse tensor 's': description: expected a string key"},
  {AB .. SP_OK .. "," .. META(SPARSE('s":"{\\"stype\\":\\"csr\\",\\"shape\\":[3]}')) .. "}", 44,
    "sparse tensor 's': a csr tensor must be 2-d (got 1 dims)"},
  {AB .. SP_OK .. "," .. META(SPARSE('s":"{\\"stype\\":\\"csr\\",\\"shape\\":[2,3]}')) .. "}", 44,
    "sparse tensor 's': part 's.indptr' has the wrong shape"},
  {AB .. SP_OK .. "," .. META(SPARSE('a":"{\\"stype\\":\\"csr\\",\\"shape\\":[1,3]}')) .. "}", 44,
    "sparse tensor 'a': missing part 'a.data'"},
  {AB .. SP_OK .. "," .. META(SPARSE('s":"{\\"stype\\":\\"row_sparse\\",\\"shape\\":[4,2]}')) .. "}", 44,
    "sparse tensor 's': part 's.data' has the wrong shape"},
  {AB .. SP_OK:gsub('"s.indices":{"dtype":"I64","shape":%[1%]', '"s.indices":{"dtype":"F32","shape":[2]') ..
    "," .. META(SPARSE('s":"{\\"stype\\":\\"csr\\",\\"shape\\":[1,3]}')) .. "}", 44,
    "sparse tensor 's': part 's.indices' must be I64"},
}

local tmp = os.tmpname()
os.remove(tmp)
local function write(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

-- err must be a string "load_model: <p>: ..." that contains msg.
local function check_err(ok, err, p, msg, what)
  assert(not ok, what .. ": loaded a bad file")
  assert(type(err) == "string", what .. ": error is not a string")
  local prefix = "load_model: " .. p .. ": "
  assert(err:sub(1, #prefix) == prefix, what .. ": message does not start with the path: " .. err)
  assert(err:find(msg, 1, true), what .. ": wanted '" .. msg .. "' in: " .. err)
end

-- load_weights also reads safetensors files written elsewhere (no checksums, BF16 widened):
-- there these cases are valid files that hold no tensor of the model's (true), or are wrong
-- in another way (the message).
local FOREIGN_OK = {["missing __metadata__ (the file has no checksums)"] = true,
  ["missing 'kl.header_crc32'"] = true,
  ['tensor \'a\': unknown dtype "BF16"'] = "tensor 'a': data_offsets [0, 8] hold 8 bytes, shape and dtype need 4"}

describe("model files: bad input through Lua", function()
  it("the templates' good base files load (so each case is wrong only where it says)", function()
    local p = tmp .. "_good.kl"
    write(p, file_of(AB .. META() .. "}", 16))
    local list = core.load_tensors(p)
    assert.are.same({1, 2}, list[1][2]:totable())
    assert.are.same({7}, list[2][2]:totable())
    write(p, file_of(AB .. SP_OK .. "," .. META(SPARSE('s":"{\\"stype\\":\\"csr\\",\\"shape\\":[1,6]}')) .. "}", 44))
    list = core.load_tensors(p)
    assert.are.equal("csr", list[3][2].stype)
    assert.are.same({{0, 0, 0, 0, 0, 5}}, list[3][2]:totable())
    os.remove(p)
  end)

  it("core.load_tensors refuses every crafted file with its reason (" .. #CASES .. " cases)", function()
    assert.is_true(#CASES >= 50)
    for i, c in ipairs(CASES) do
      local p = tmp .. "_case" .. i .. ".kl"
      write(p, file_of(c[1], c[2]))
      local ok, err = pcall(core.load_tensors, p)
      check_err(ok, err, p, c[3], "case " .. i)
      os.remove(p)
    end
  end)

  it("keras.models.load_model and model:load_weights refuse them the same way", function()
    local m = keras.Sequential{keras.layers.Input{shape = {2}}, keras.layers.Dense{units = 1}}
    for i, c in ipairs(CASES) do
      local p = tmp .. "_model" .. i .. ".kl"
      write(p, file_of(c[1], c[2]))
      local ok, err = pcall(keras.models.load_model, p)
      check_err(ok, err, p, c[3], "load_model case " .. i)
      ok, err = pcall(m.load_weights, m, p)
      if FOREIGN_OK[c[3]] then
        local want = FOREIGN_OK[c[3]] == true and "no tensor '" .. m.layers[1].name ..
          "/kernel' in the file (it holds 'a', 'b')" or FOREIGN_OK[c[3]]
        assert(not ok and err == "load_weights: " .. p .. ": " .. want, "load_weights case " .. i ..
          ": " .. tostring(err))
      else
        assert(not ok and type(err) == "string" and err:find(c[3], 1, true) and err:find(p, 1, true),
          "load_weights case " .. i .. ": " .. tostring(err))
      end
      os.remove(p)
    end
  end)

  it("truncations at every length of a saved model and bit flips are refused", function()
    local p = tmp .. "_trunc.kl"
    local m = keras.Sequential{keras.layers.Input{shape = {3}}, keras.layers.Dense{units = 2}}
    m:save(p)
    local f = assert(io.open(p, "rb"))
    local s = f:read("a")
    f:close()
    local step = math.max(1, #s // 97)
    for cut = 0, #s - 1, step do
      write(p, s:sub(1, cut))
      local ok, err = pcall(keras.models.load_model, p)
      check_err(ok, err, p, "", "cut at " .. cut)
    end
    for at = 9, #s, math.max(1, #s // 61) do
      write(p, s:sub(1, at - 1) .. string.char(s:byte(at) ~ 0x10) .. s:sub(at + 1))
      local ok, err = pcall(keras.models.load_model, p)
      check_err(ok, err, p, "", "flip at " .. at)
    end
    os.remove(p)
  end)
end)
