-- spec/load_weights_interop_spec.lua: model:load_weights reads safetensors files written by
-- Python (safetensors' numpy writer when installed, else the same bytes from numpy + json):
-- tensors matched by name, F16/BF16 widened, F64 cast, no checksums needed; mismatches name
-- the tensor; load_model still wants keras-lua's checksums. And Python reads keras-lua's
-- files in place: every tensor's offset is a multiple of its element size (8 for 8-byte ones).
local keras = require("keras")
local L = keras.layers

local PY = "/usr/bin/python3"
local tmp = os.tmpname()
os.remove(tmp)
local function path(name) return tmp .. "_" .. name end

-- A sanitizer runtime preloaded into this process is not for python3.
local function python(script, ...)
  local sp = path("script.py")
  local f = assert(io.open(sp, "w"))
  f:write(script)
  f:close()
  local pre = os.getenv("LD_PRELOAD")
  local envp = (pre and pre:find("libasan", 1, true)) and "LD_PRELOAD= " or ""
  local args = {}
  for i, a in ipairs({...}) do args[i] = "'" .. a .. "'" end
  local p = assert(io.popen(envp .. PY .. " " .. sp .. " " .. table.concat(args, " ") .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  os.remove(sp)
  assert(ok, "python failed: " .. out)
  return out
end

-- write(path, [(name, array, tag)], metadata): safetensors' layout (sorted by element size,
-- then name; the header padded with spaces to a multiple of 8).
local WRITER = [[
import json, struct, sys
import numpy as np
def write(path, tensors, metadata=None):
    try:
        from safetensors.numpy import save_file
        if all(tag in ("F32", "F64", "F16", "I32") for _, _, tag in tensors):
            save_file({n: a for n, a, _ in tensors}, path, metadata=metadata)
            return
    except ImportError:
        pass
    hdr = {} if metadata is None else {"__metadata__": metadata}
    off, blobs = 0, []
    for name, arr, tag in sorted(tensors, key=lambda t: (-t[1].dtype.itemsize, t[0])):
        b = np.ascontiguousarray(arr).tobytes()
        hdr[name] = {"dtype": tag, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
def bf16(values):
    return (np.array(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
]]

local function model()
  keras.random.seed(1)
  return keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 2, name = "d1"},
    L.Dense{units = 1, name = "d2"}}
end

local function f32(x) return (string.unpack("<f", string.pack("<f", x))) end

describe("model:load_weights of a safetensors file written by Python", function()
  it("matches tensors by name, widens F16/BF16, casts F64, ignores other tensors", function()
    local p = path("py.safetensors")
    python(WRITER .. [==[
k1 = (np.arange(6, dtype=np.float32) / 4).reshape(3, 2)
write(sys.argv[1], [("d1/kernel", k1, "F32"), ("d1/bias", np.array([1.5, -2], np.float16), "F16"),
    ("d2/kernel", bf16([[3.0], [-0.5]]).reshape(2, 1), "BF16"), ("d2/bias", np.array([0.1]), "F64"),
    ("step", np.array([7], np.int32), "I32")], {"format": "pt"})
]==], p)
    local m = model()
    m:load_weights(p)
    local w = m:get_weights()
    assert.are.same({{0, 0.25}, {0.5, 0.75}, {1, 1.25}}, w[1]:totable())
    assert.are.same({1.5, -2}, w[2]:totable())
    assert.are.same({{3}, {-0.5}}, w[3]:totable())
    assert.are.same({f32(0.1)}, w[4]:totable())
    assert.are.equal("float32", w[4].dtype)
    -- the model computes with them: x = (1, 1, 1) -> d1 = (1.5+1.5, 2.25-2) = (3, 0.25)
    -- -> d2 = 3*3 - 0.5*0.25 + 0.1
    local y = m:predict(keras.ones({1, 3}))
    assert.are.equal(f32(f32(9 - 0.125) + f32(0.1)), y:totable()[1][1])
    os.remove(p)
  end)

  it("names the tensor that is missing, mis-shaped or of a dtype keras-lua does not read", function()
    local p = path("bad.safetensors")
    local m = model()
    -- the error of m:load_weights on a file holding only d1/kernel, as Python writes it
    local function error_for(kernel)
      python(WRITER .. "write(sys.argv[1], [(\"d1/kernel\", " .. kernel .. ")])\n", p)
      local ok, err = pcall(m.load_weights, m, p)
      assert.is_false(ok)
      return err
    end
    assert.are.equal("load_weights: " .. p .. ": no tensor 'd1/bias' in the file (it holds 'd1/kernel')",
      error_for('np.zeros((3, 2), np.float32), "F32"'))
    assert.are.equal("load_weights: " .. p .. ": tensor 'd1/kernel' has shape [2,3], the model's " ..
      "weight has shape [3,2]", error_for('np.zeros((2, 3), np.float32), "F32"'))
    assert.are.equal("load_weights: " .. p .. ": tensor 'd1/kernel' has dtype I32 (keras-lua reads " ..
      "F32, F64, I64, F16 and BF16)", error_for('np.zeros((3, 2), np.int32), "I32"'))
    -- the weights were left alone by every failed load
    assert.are.same(model():get_weights()[1]:totable(), m:get_weights()[1]:totable())
    -- load_model wants keras-lua's checksums
    local _, err = pcall(keras.models.load_model, p)
    assert.are.equal("load_model: " .. p .. ": missing __metadata__ (the file has no checksums)", err)
    os.remove(p)
  end)

  it("checks keras-lua's checksums when the file has them", function()
    local p = path("kl.safetensors")
    local m = model()
    m:save_weights(p)
    local f = assert(io.open(p, "r+b"))
    f:seek("end", -1)
    f:write("\255")
    f:close()
    local ok, err = pcall(m.load_weights, m, p)
    assert.is_false(ok)
    assert.matches("^load_weights: .*: crc mismatch for tensor 'd", err)
    os.remove(p)
  end)
end)

describe("keras-lua's files read in place by numpy", function()
  it("align every tensor to its element size, 8-byte ones to 8", function()
    local p = path("aligned.kl")
    keras.random.seed(2)
    local m = keras.Sequential{L.Input{shape = {5}, sparse = true},
      L.Dense{units = 3, sparse_weight = true, name = "s"}, L.Dense{units = 1, name = "o"}}
    m:compile{optimizer = "adam", loss = "mse"}
    m:fit(keras.sparse.rand({8, 5}, "csr", 0.5, {seed = 3}), keras.ones({8, 1}), {verbose = 0, epochs = 1})
    m:save(p)
    local out = python([==[
import json, struct, sys
import numpy as np
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
hdr = json.loads(b[8:8 + n])
size = {"F32": 4, "F64": 8, "I64": 8}
bad, wide = [], 0
for name, e in hdr.items():
    if name == "__metadata__":
        continue
    at = 8 + n + e["data_offsets"][0]
    if at % size[e["dtype"]]:
        bad.append(name)
    wide += size[e["dtype"]] == 8 and at % 8 == 0
    a = np.frombuffer(b, dtype={"F32": np.float32, "F64": np.float64, "I64": np.int64}[e["dtype"]],
                      count=int(np.prod(e["shape"])), offset=at)
    assert a.ctypes.data % a.itemsize == 0
print(len(hdr) - 1, wide, (8 + n) % 8, bad)
]==], p)
    -- s/kernel.data, s/kernel.indices, s/bias, o/kernel, o/bias and Adam's 2 dense states of
    -- each weight: 13 entries; the one 8-byte entry, s/kernel.indices, follows 15 floats in
    -- the caller's order (offset 60): laid out first, it is at a multiple of 8
    assert.are.equal("13 1 0 []\n", out)
    os.remove(p)
  end)
end)
