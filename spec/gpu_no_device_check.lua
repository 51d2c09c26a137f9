-- spec/gpu_no_device_check.lua: the ctest lua-emu/gpu_specs_no_device. It runs each GPU spec
-- (spec/gpu*_spec.lua) under busted's JSON output, with the emulated runtime told to have no
-- device (the ctest sets KERAS_LUA_EMU_DEVICES=0), and checks what every case reported, not
-- only busted's exit status:
--   - no case failed or raised an error, and every spec reported at least one case;
--   - a case passed only if NO_DEVICE below names it (the cases that check the no-device
--     behaviour itself: the module's loading, the no-device messages) or MAY_PASS does (cases
--     that need the real module, not a device: pending with their own "skipped: " reason on
--     the emulated one);
--   - every other case is pending with the no-device reason ("skipped: no CUDA device: ..."):
--     a case that needs a device and reports itself passed without one fails this check;
--   - every case NO_DEVICE names passed (the no-device messages stay checked).
-- Each spec runs in its own busted process, so that a case is attributed to its file (the
-- pending case of gs.pending_without_device is declared in gpu_support.lua).
--
-- usage: lua5.4 spec/gpu_no_device_check.lua LUA BUSTED HELPER SPEC...
--        lua5.4 spec/gpu_no_device_check.lua --self-test
-- The ctest runs the self-test first (the rules on made-up reports: each one must object
-- when broken), then the specs. Exit 0 when every rule holds, 1 otherwise (the problems on
-- stderr).
local json = require("dkjson")

-- file name -> {case full name = true}: must pass without a device
local NO_DEVICE = {
  ["gpu_spec.lua"] = {
    ["the CUDA module is not loaded by require('keras') nor by CPU work"] = true,
    ["the CUDA module core.so links no CUDA library"] = true,
    ["keras.num_gpus and keras.gpu agree with the module's device count"] = true,
    ["keras.cuda maps the runtime's no-device codes 35, 34, 100 to KL_ENODEV with its own string"] = true,
    ["keras.cuda maps out-of-memory to KL_ENOMEM and other failures to KL_EDEVICE, naming the call"] = true,
    ["keras.cuda reports its versions and architectures"] = true,
  },
}
-- file name -> {case full name = true}: may pass, or be pending with a "skipped: " reason
local MAY_PASS = {
  ["gpu_ops_dot_spec.lua"] = {
    ["keras.cuda's cuBLAS and cuSPARSE are not loaded by keras.num_gpus()"] = true,
    ["keras.cuda's cuBLAS and cuSPARSE missing: the status strings fall back to the headers' names, no crash"] = true,
  },
}
local NO_DEVICE_REASON = "^skipped: no CUDA device: "

local function basename(path) return path:match("([^/]+)$") or path end

-- A pending case's reason: its message less busted's "file:line: " prefix.
local function reason_of(msg)
  msg = tostring(msg or "")
  return msg:match("^[^\n]-:%d+: (.*)$") or msg
end

-- The problems (strings) with reports: {[file name] = busted's decoded JSON report, or a
-- string saying why there is none}, for the spec files files (names); rules as above.
local function judge(reports, files, no_device, may_pass)
  local problems = {}
  local function bad(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end
  for _, file in ipairs(files) do
    local r = reports[file]
    if type(r) ~= "table" then
      bad("%s: no report from busted (%s)", file, tostring(r))
    else
      local must, may = no_device[file] or {}, may_pass[file] or {}
      local seen = {}
      for _, kind in ipairs{"failures", "errors"} do
        for _, t in ipairs(r[kind] or {}) do
          bad("%s: %s: %s", file, t.name or "?", tostring(t.message))
        end
      end
      for _, t in ipairs(r.successes or {}) do
        seen[t.name] = "passed"
        if not must[t.name] and not may[t.name] then
          bad("%s: '%s' passed without a device (it must report itself pending, or be listed " ..
              "as a no-device case in spec/gpu_no_device_check.lua)", file, t.name)
        end
      end
      for _, t in ipairs(r.pendings or {}) do
        seen[t.name] = "pending"
        local why = reason_of(t.message)
        if must[t.name] then
          bad("%s: '%s' is pending (%s); it checks the no-device behaviour and must pass", file,
              t.name, why)
        elseif may[t.name] then
          if not why:find("^skipped: ") then bad("%s: '%s' is pending without a reason: %s", file, t.name, why) end
        elseif not why:find(NO_DEVICE_REASON) then
          bad("%s: '%s' is pending for another reason than the missing device: %s", file, t.name, why)
        end
      end
      for name in pairs(must) do
        if not seen[name] then bad("%s: the no-device case '%s' did not run", file, name) end
      end
      if next(seen) == nil then bad("%s: reported no case", file) end
    end
  end
  for file in pairs(no_device) do
    local listed = false
    for _, f in ipairs(files) do listed = listed or f == file end
    if not listed then bad("%s: holds no-device cases but was not run", file) end
  end
  return problems
end

-- Runs one spec under busted -o json: its decoded report, or a string saying what went wrong.
local function run_spec(lua, busted, helper, spec)
  local cmd = string.format("'%s' '%s' --helper='%s' -o json '%s' 2>/dev/null", lua, busted,
    helper, spec)
  local f = assert(io.popen(cmd))
  local out = f:read("a")
  f:close() -- busted's status: judge() reads the report itself
  local last
  for line in out:gmatch("[^\n]+") do
    if line:sub(1, 1) == "{" then last = line end
  end
  if not last then return "no JSON in busted's output: " .. out:sub(1, 300) end
  local r, _, err = json.decode(last)
  return r or ("busted's JSON does not decode: " .. tostring(err))
end

-- The rules on made-up reports: a clean one passes, each broken rule is reported.
local function self_test()
  local nd = {["a_spec.lua"] = {["a ok"] = true}}
  local mp = {["b_spec.lua"] = {["b maybe"] = true}}
  local function case(name, msg) return {name = name, message = msg} end
  local dev = "x/gpu_support.lua:34: skipped: no CUDA device: no CUDA-capable device is detected"
  local function clean()
    return {
      ["a_spec.lua"] = {successes = {case("a ok")}, pendings = {case("a dev", dev)}, failures = {}, errors = {}},
      ["b_spec.lua"] = {successes = {}, pendings = {case("b maybe", "b:3: skipped: no real module"),
        case("b dev", dev)}, failures = {}, errors = {}},
    }
  end
  local files = {"a_spec.lua", "b_spec.lua"}
  local broken = {
    {"a device case passed", function(r) r["b_spec.lua"].successes[1] = case("b dev2") end, "passed without a device"},
    {"a no-device case pending", function(r)
      r["a_spec.lua"].successes = {}
      r["a_spec.lua"].pendings[2] = case("a ok", dev)
    end, "must pass"},
    {"a no-device case missing", function(r) r["a_spec.lua"].successes = {} end, "did not run"},
    {"pending for another reason", function(r) r["b_spec.lua"].pendings[2].message = "b:9: skipped: later" end,
      "another reason"},
    {"a may-pass case pending without a reason", function(r) r["b_spec.lua"].pendings[1].message = "b:3: todo" end,
      "without a reason"},
    {"a failure", function(r) r["b_spec.lua"].failures[1] = case("b f", "boom") end, "b f: boom"},
    {"an error", function(r) r["a_spec.lua"].errors[1] = case("a e", "load") end, "a e: load"},
    {"a spec with no case", function(r) r["b_spec.lua"] = {successes = {}, pendings = {}} end, "reported no case"},
    {"no report", function(r) r["b_spec.lua"] = "busted crashed" end, "no report"},
  }
  local fails = 0
  local p = judge(clean(), files, nd, mp)
  if #p > 0 then
    fails = fails + 1
    io.stderr:write("self-test: a clean report was judged bad: ", table.concat(p, "; "), "\n")
  end
  p = judge(clean(), {"b_spec.lua"}, nd, mp)
  if not table.concat(p, "\n"):find("was not run", 1, true) then
    fails = fails + 1
    io.stderr:write("self-test: a spec holding no-device cases left out was not reported\n")
  end
  for _, b in ipairs(broken) do
    local r = clean()
    b[2](r)
    p = table.concat(judge(r, files, nd, mp), "\n")
    if not p:find(b[3], 1, true) then
      fails = fails + 1
      io.stderr:write(string.format("self-test: %s was not reported (got: %s)\n", b[1], p))
    end
  end
  return fails == 0
end

if arg[1] == "--self-test" then
  local ok = self_test()
  print(ok and "gpu_no_device_check self-test: every rule objects when broken" or "self-test failed")
  os.exit(ok and 0 or 1)
end

local lua, busted, helper = arg[1], arg[2], arg[3]
if not (lua and busted and helper and arg[4]) then
  io.stderr:write("usage: lua5.4 spec/gpu_no_device_check.lua LUA BUSTED HELPER SPEC... | --self-test\n")
  os.exit(2)
end
if not self_test() then os.exit(1) end
local reports, files, counts = {}, {}, {passed = 0, pending = 0}
for i = 4, #arg do
  local file = basename(arg[i])
  files[#files + 1] = file
  reports[file] = run_spec(lua, busted, helper, arg[i])
  if type(reports[file]) == "table" then
    counts.passed = counts.passed + #(reports[file].successes or {})
    counts.pending = counts.pending + #(reports[file].pendings or {})
  end
end
local problems = judge(reports, files, NO_DEVICE, MAY_PASS)
for _, p in ipairs(problems) do io.stderr:write("gpu_specs_no_device: ", p, "\n") end
print(string.format("gpu_specs_no_device: %d specs, %d cases passed, %d pending; %s",
  #files, counts.passed, counts.pending, #problems == 0 and "as expected" or (#problems .. " problem(s)")))
os.exit(#problems == 0 and 0 or 1)
