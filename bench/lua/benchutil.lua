-- benchutil.lua: shared helpers of the Lua workloads: clock, median, result lines, RSS.
local M = {}

local clock = require("benchclock") -- bench/src/lclock.c, built by bench/run

-- Monotonic wall-clock seconds.
M.now = clock.now

function M.median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return 0.5 * (s[n // 2] + s[n // 2 + 1])
end

function M.threads()
  return tonumber(os.getenv("OMP_NUM_THREADS") or "1") or 1
end

-- RESULT <workload> <impl> <threads> <median seconds> <runs> [note]
function M.result(workload, impl, med, runs, note)
  io.write(string.format("RESULT %s %s %d %.6g %d %s\n", workload, impl, M.threads(), med, runs,
                         note or ""))
  io.flush()
end

-- MEM <workload> <impl> <floor bytes> <what>: the (data + weights + optimizer state) floor;
-- the harness adds the measured peak RSS (/usr/bin/time -v).
function M.mem(workload, impl, floor_bytes, what)
  io.write(string.format("MEM %s %s %.0f %s\n", workload, impl, floor_bytes, what or ""))
  io.flush()
end

-- Median time of fn() over runs calls after one warm-up call.
function M.median_time(fn, runs, warmup)
  for _ = 1, (warmup or 1) do fn() end
  local ts = {}
  for i = 1, runs do
    local t0 = M.now()
    fn()
    ts[i] = M.now() - t0
  end
  return M.median(ts)
end

-- This process's VmRSS and VmHWM (peak) in bytes, from /proc/self/status.
function M.rss()
  local rss, hwm = 0, 0
  for l in io.lines("/proc/self/status") do
    local k, v = l:match("^(Vm%u+):%s*(%d+)")
    if k == "VmRSS" then rss = tonumber(v) * 1024 elseif k == "VmHWM" then hwm = tonumber(v) * 1024 end
  end
  return rss, hwm
end

-- Prints where the memory stands (stderr: goes to the harness log).
function M.rss_note(what)
  local rss, hwm = M.rss()
  io.stderr:write(string.format("rss %-28s VmRSS %8.1f MiB  VmHWM %8.1f MiB\n", what, rss / 1048576,
                                hwm / 1048576))
end

-- Bytes held by a tensor's storage (values, indices, indptr).
function M.tensor_bytes(t)
  local es = t.dtype == "float64" and 8 or (t.dtype == "int64" and 8 or 4)
  if t.stype == "csr" then return t.nnz * (es + 8) + (t.shape[1] + 1) * 8 end
  local n = 1
  for _, d in ipairs(t.shape) do n = n * d end
  if t.stype == "row_sparse" then
    return t.nnz * (n // t.shape[1]) * es + t.nnz * 8
  end
  return n * es
end

return M
