-- spec/model_file_spec.lua: core.save_tensors/load_tensors and keras.json: round trips, errors by message.
local keras = require("keras")
local core = keras.core
local json = require("keras.json")

local tmp = os.tmpname()
os.remove(tmp)
local function path(name) return tmp .. "_" .. name end

local function bytes(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function write(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

local function same(a, b)
  assert.are.equal(a.stype, b.stype)
  assert.are.equal(a.dtype, b.dtype)
  assert.are.same(a.shape, b.shape)
  assert.are.same(a:totable(), b:totable())
  if a.stype ~= "default" then
    assert.are.same(a.indices:totable(), b.indices:totable())
    assert.are.same(a.data:totable(), b.data:totable())
  end
  if a.stype == "csr" then assert.are.same(a.indptr:totable(), b.indptr:totable()) end
end

describe("core.save_tensors / core.load_tensors", function()
  it("round-trips every dtype and stype bit for bit, with metadata", function()
    keras.random.seed(7)
    local ts = {
      {"dense_1/kernel", keras.random.normal({3, 4})},
      {"f64", keras.array({{1 / 3, -2.5e-300}, {0, 1e300}}, {dtype = "float64"})},
      {"ids", keras.array({1, -2, -123456789012345}, {dtype = "int64"})},
      {"scalar", keras.array(0.1, {dtype = "float64"})},
      {"csr", keras.sparse.csr_matrix({{0, 1.5, 0}, {0, 0, 0}, {2, 0, 3}})},
      {"rsp", keras.sparse.row_sparse_array{data = {{1, 2}, {3, 4}}, indices = {2, 5}, shape = {6, 2}}},
    }
    local meta = {architecture = '{"a": [1, 2]}', ["weird key \"\n"] = "caf\u{e9}\ttab"}
    local p = path("rt.kl")
    core.save_tensors(p, ts, meta)
    local list, m = core.load_tensors(p)
    assert.are.equal(#ts, #list)
    for i, e in ipairs(ts) do
      assert.are.equal(e[1], list[i][1])
      same(e[2], list[i][2])
    end
    assert.are.same(meta, m)
    assert.are.equal(-123456789012345, list[3][2]:get(3))
    os.remove(p)
  end)

  it("writes a safetensors header Python can parse: length, JSON, offsets", function()
    local p = path("hdr.kl")
    core.save_tensors(p, {{"w", keras.array({{1, 2}})}}, {})
    local s = bytes(p)
    local n = string.unpack("<I8", s)
    assert.are.equal(0, n % 8)
    local h = json.decode(s:sub(9, 8 + n))
    assert.are.equal("F32", h.w.dtype)
    assert.are.same({1, 2}, h.w.shape)
    assert.are.same({0, 8}, h.w.data_offsets)
    assert.is_string(h.__metadata__["kl.crc32:w"])
    assert.are.equal(8 + n + 8, #s)
    local a, b = string.unpack("<ff", s, 9 + n)
    assert.are.same({1.0, 2.0}, {a, b})
    os.remove(p)
  end)

  it("refuses a truncated or flipped file with the path and the reason", function()
    local p = path("bad.kl")
    core.save_tensors(p, {{"dense_1/kernel", keras.array({{1, 2}, {3, 4}})}}, {k = "v"})
    local s = bytes(p)
    for _, cut in ipairs({0, 5, 8, 20, #s - 1}) do
      write(p, s:sub(1, cut))
      local ok, err = pcall(core.load_tensors, p)
      assert.is_false(ok)
      assert.matches("^load_model: " .. p:gsub("%p", "%%%0") .. ": ", err)
    end
    local last = #s
    write(p, s:sub(1, last - 1) .. string.char(s:byte(last) ~ 1))
    local ok, err = pcall(core.load_tensors, p)
    assert.is_false(ok)
    assert.are.equal("load_model: " .. p .. ": crc mismatch for tensor 'dense_1/kernel'", err)
    write(p, string.pack("<I8", 123456789) .. string.rep(" ", 392))
    ok, err = pcall(core.load_tensors, p)
    assert.are.equal("load_model: " .. p .. ": header length 123456789 exceeds file size 400", err)
    ok, err = pcall(core.load_tensors, path("missing.kl"))
    assert.matches("cannot open: No such file", err)
    os.remove(p)
  end)

  it("checks its arguments", function()
    local p = path("args.kl")
    local t = keras.array({1})
    local ok, err = pcall(core.save_tensors, p, {{"w", {1, 2}}})
    assert.are.equal("save_tensors: entry 1 ('w') holds no open keras.Tensor", err)
    ok, err = pcall(core.save_tensors, p, {{1, t}})
    assert.are.equal("save_tensors: the name of entry 1 must be a string (got number)", err)
    ok, err = pcall(core.save_tensors, p, {{"w", t}}, {k = 1})
    assert.are.equal("save_tensors: a metadata value must be a string (got number)", err)
    ok, err = pcall(core.save_tensors, p, {{"w", t}}, {["kl.x"] = "1"})
    assert.matches("metadata key 'kl.x' is reserved", err)
    ok, err = pcall(core.save_tensors, p, {{"w", t}, {"w", t}})
    assert.matches("two tensors are stored as 'w'", err)
    ok, err = pcall(core.save_tensors, p, {{"a\0b", t}})
    assert.are.equal("save_tensors: the name of entry 1 contains a NUL byte", err)
    assert.is_nil(io.open(p, "rb"))
  end)
end)

describe("keras.json", function()
  it("encodes with sorted keys and exact numbers", function()
    assert.are.equal('{"a":[1,2.5,0.1],"b":"x\\"\\n","c":true,"d":{}}',
      json.encode({c = true, b = 'x"\n', a = {1, 2.5, 0.1}, d = json.object()}))
    for _, x in ipairs({0.1, 1 / 3, 1e-300, -2.5, 123456789.125, 1.0}) do
      assert.are.equal(x, json.decode(json.encode(x)))
      assert.are.equal("float", math.type(json.decode(json.encode(x))))
    end
    assert.are.equal(9007199254740993, json.decode(json.encode(9007199254740993)))
  end)

  it("decodes strict JSON and reports positions", function()
    local v = json.decode(' {"a": [1, -2.5e1, "\\u00e9\\ud83d\\ude00"], "n": null, "t": false} ')
    assert.are.same({1, -25.0, "\u{e9}\u{1F600}"}, v.a)
    assert.are.equal(json.null, v.n)
    assert.is_false(v.t)
    local cases = {
      {'{"a" 1}', "json.decode: expected ':' at position 6"},
      {"[1,]", "json.decode: unexpected character ']' at position 4"},
      {"01", "json.decode: leading zero in number at position 1"},
      {'"abc', "json.decode: unterminated string at position 1"},
      {"[1] x", "json.decode: trailing characters at position 5"},
      {'{"a":1,"a":2}', "json.decode: duplicate key 'a' at position 13"},
      {'"\\q"', "json.decode: bad escape '\\q' at position 2"},
      {"", "json.decode: unexpected end at position 1"},
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(json.decode, c[1])
      assert.is_false(ok)
      assert.are.equal(c[2], err)
    end
    local ok, err = pcall(json.encode, {x = {0 / 0}})
    assert.is_false(ok)
    assert.matches("json.encode: cannot encode .*nan at %$.x%[1%]", err)
    ok, err = pcall(json.encode, {1, a = 2})
    assert.matches("non%-string key", err)
  end)
end)
