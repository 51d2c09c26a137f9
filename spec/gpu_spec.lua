-- gpu_spec.lua: keras.num_gpus / keras.gpu and the CUDA module keras.cuda (gpu/l_cuda.c):
-- loaded on the first GPU request only, core.so free of CUDA libraries, "no CUDA device:
-- <the runtime's reason>" without a device, and the status mapping of the CUDA libraries.
-- What needs a device reports itself pending ("skipped: ...") here, never passed. The same
-- spec runs against the emulated module (lua-emu/gpu_spec: cuda.emulated, one device).
local keras = require("keras")

local build = os.getenv("KL_BUILD_DIR") or "build"
local have_module = package.searchpath("keras.cuda", package.cpath) ~= nil

describe("the CUDA module", function()
  it("is not loaded by require('keras') nor by CPU work", function()
    local x = keras.ones({2, 3}) * 2
    assert.are.same({{2, 2, 2}, {2, 2, 2}}, x:totable())
    assert.is_nil(package.loaded["keras.cuda"])
  end)

  it("core.so links no CUDA library", function()
    local f = assert(io.popen("readelf -d " .. build .. "/lua/keras/core.so 2>&1"))
    local out = f:read("a")
    f:close()
    assert.truthy(out:find("NEEDED", 1, true), out)
    for _, lib in ipairs{"cudart", "cublas", "cusparse", "libcuda"} do
      assert.is_nil(out:find(lib, 1, true), lib)
    end
  end)
end)

describe("keras.num_gpus and keras.gpu", function()
  it("agree with the module's device count", function()
    local n = keras.num_gpus()
    assert.are.equal("integer", math.type(n))
    if not have_module then
      assert.are.equal(0, n)
      assert.is_nil(package.loaded["keras.cuda"])
      assert.has_error(function() keras.gpu(0) end,
        "gpu: CUDA is not available (keras-lua was built without CUDA support, or no GPU " ..
        "is present; keras.num_gpus() == 0)")
      return
    end
    assert.is_not_nil(package.loaded["keras.cuda"]) -- num_gpus loaded it
    local count, reason, code = require("keras.cuda").device_count()
    assert.are.equal(n, count)
    if n == 0 then
      assert.are.equal("KL_ENODEV", code)
      assert.truthy(reason:find("^no CUDA device: "), reason)
      assert.has_error(function() keras.gpu(0) end, "gpu: " .. reason)
    else
      assert.are.equal("gpu(0)", tostring(keras.gpu(0)))
      assert.has_error(function() keras.gpu(n) end,
        string.format("gpu: device %d out of range (%d GPU(s) present)", n, n))
    end
    assert.has_error(function() keras.gpu(-1) end, "gpu: device id must be an integer >= 0 (got -1)")
  end)
end)

describe("keras.cuda", function()
  if not have_module then
    it("is built", function() pending("skipped: keras-lua was built without CUDA (KL_CUDA=OFF or no nvcc)") end)
    return
  end
  local cuda = require("keras.cuda")

  it("maps the runtime's no-device codes 35, 34, 100 to KL_ENODEV with its own string", function()
    local want = {
      [35] = "no CUDA device: CUDA driver version is insufficient for CUDA runtime version",
      [34] = "no CUDA device: CUDA driver is a stub library",
      [100] = "no CUDA device: no CUDA-capable device is detected",
    }
    for code, msg in pairs(want) do
      local st, m = cuda.error_message("runtime", code)
      assert.are.equal("KL_ENODEV", st)
      assert.are.equal(msg, m)
    end
  end)

  it("maps out-of-memory to KL_ENOMEM and other failures to KL_EDEVICE, naming the call", function()
    assert.are.same({"KL_ENOMEM", "op: CUDA out of memory: out of memory"},
      {cuda.error_message("runtime", 2)})
    assert.are.same({"KL_EDEVICE", "op: CUDA error 999: unknown error"},
      {cuda.error_message("runtime", 999)})
    -- the emulated module has no cuBLAS / cuSPARSE: their statuses say so
    local emu = cuda.emulated and " (emulated)" or ""
    assert.are.same({"KL_ENOMEM", "op: cuBLAS error 3: the resource allocation failed" .. emu},
      {cuda.error_message("cublas", 3)})
    local st, m = cuda.error_message("cusparse", 2)
    assert.are.equal("KL_ENOMEM", st)
    assert.truthy(m:find("^op: cuSPARSE error 2: "), m)
    assert.are.same({"KL_OK", ""}, {cuda.error_message("runtime", 0)})
    assert.has_error(function() cuda.error_message("cufft", 1) end)
  end)

  it("reports its versions and architectures", function()
    local v = cuda.versions()
    assert.are.equal(cuda.emulated, v.emulated)
    assert.are.equal("integer", math.type(v.driver))
    if cuda.emulated then
      assert.are.same({0, 0, "emulated"}, {v.runtime, v.driver, v.architectures})
    else
      assert.is_true(v.runtime >= 12000)
      assert.truthy(v.architectures:find("%d%d"))
    end
  end)

  it("queries a device, or fails with the no-device message", function()
    if cuda.device_count() == 0 then
      local _, reason = cuda.device_count()
      assert.has_error(function() cuda.device_info(0) end, reason)
      assert.has_error(function() cuda.alloc_probe(0, 1000) end, reason)
      pending("skipped: " .. reason)
      return
    end
    local info = cuda.device_info(0)
    assert.is_true(info.total_memory > 0 and #info.name > 0)
    assert.are.equal(cuda.emulated, info.emulated)
    if cuda.emulated then assert.are.equal("keras-lua emulated device", info.name) end
    local s = cuda.alloc_probe(0, 1000, 5000, 3145728)
    assert.are.equal(3, s.dev_mallocs) -- the second round came from the cache
    assert.are.equal(3, s.cache_hits)
  end)
end)
