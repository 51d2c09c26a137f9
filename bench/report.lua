-- report.lua: turns the harness's RESULT/MEM/LOSS lines into the markdown results table.
-- usage: lua5.4 bench/report.lua RAW.txt OUT.md COMMANDS.txt MODE (one harness command a line)
local raw_path, out_path, cmd_path, mode = arg[1], arg[2], arg[3], arg[4]
local cmds = {}
for l in io.lines(cmd_path) do cmds[#cmds + 1] = "`" .. l .. "`" end

-- Targets of issue 5 (ratio = peer time / our time), by workload and peer.
local targets = {
  ["W1-b64"] = {pattern = "^pytorch", min = 10},
  ["W2-tutorial"] = {pattern = "^pytorch", min = 20},
  ["W3-V1e4"] = {pattern = "^pytorch", min = 5},
  ["W3-V1e7"] = {pattern = "^pytorch", min = 5},
  ["W4a-csr.dense"] = {pattern = "^pytorch", min = 1.5},
  ["W4b-csrT.dense"] = {pattern = "^pytorch", min = 20},
  ["W4c-rcv1.dense"] = {pattern = "^scipy", min = 3},
  ["W6-load_svmlight"] = {pattern = "^sklearn", min = 5},
}

local function is_ours(impl) return impl:match("^keras%-lua") ~= nil end

local results, order, seen, mems, losses = {}, {}, {}, {}, {}
for line in io.lines(raw_path) do
  local kind, rest = line:match("^(%u+) (.*)$")
  if kind == "RESULT" then
    local wl, impl, th, t, runs, note = rest:match("^(%S+) (%S+) (%d+) (%S+) (%d+) ?(.*)$")
    if wl then
      -- a later line for the same workload, implementation and threads (bench/run --append)
      -- replaces the earlier one
      for i = #results, 1, -1 do
        local r = results[i]
        if r.wl == wl and r.impl == impl and r.threads == tonumber(th) then table.remove(results, i) end
      end
      results[#results + 1] = {wl = wl, impl = impl, threads = tonumber(th), t = tonumber(t),
                               runs = tonumber(runs), note = note}
      if not seen[wl] then seen[wl] = true; order[#order + 1] = wl end
    end
  elseif kind == "MEM" then
    local wl, impl, floor, rss, what = rest:match("^(%S+) (%S+) (%S+) (%S+) ?(.*)$")
    if wl then
      for i = #mems, 1, -1 do -- as for RESULT lines: a later run replaces an earlier one
        if mems[i].wl == wl and mems[i].impl == impl then table.remove(mems, i) end
      end
      mems[#mems + 1] = {wl = wl, impl = impl, floor = tonumber(floor), rss = tonumber(rss), what = what}
    end
  elseif kind == "LOSS" then
    local wl, impl, th, loss, note = rest:match("^(%S+) (%S+) (%d+) (%S+) ?(.*)$")
    if wl then losses[#losses + 1] = {wl = wl, impl = impl, threads = tonumber(th), loss = loss, note = note} end
  end
end

local function fmt_t(t)
  if t >= 1 then return string.format("%.3f s", t) end
  if t >= 1e-3 then return string.format("%.2f ms", t * 1e3) end
  return string.format("%.1f us", t * 1e6)
end

local function machine()
  local model, cores, mem = "?", 0, "?"
  for l in io.lines("/proc/cpuinfo") do
    local m = l:match("^model name%s*:%s*(.*)$")
    if m then model = m; cores = cores + 1 end
  end
  for l in io.lines("/proc/meminfo") do
    local kb = l:match("^MemTotal:%s*(%d+)")
    if kb then mem = string.format("%.1f GiB", tonumber(kb) / 1048576) end
  end
  return string.format("%s, %d logical CPUs, %s RAM", model, cores, mem)
end

local out = {}
local function w(s) out[#out + 1] = s end
w("# keras-lua benchmark results" .. (mode == "quick" and " (QUICK MODE: tiny sizes, not figures)" or ""))
w("")
w("Produced by " .. table.concat(cmds, ", then ") .. "; table written " ..
  os.date("!%Y-%m-%d %H:%M UTC") .. ".")
w("Machine: " .. machine() .. ". Workloads, commands and floors: [README.md](README.md).")
w("")
w("ratio = peer time / our time (> 1: keras-lua is faster). Times are medians of `runs` runs,")
w("measured in the same run as the peer. A peer marked (1t) is single-threaded and ran once at")
w("1 thread; its time is compared with ours at each thread count. A `floor` row is a measured")
w("lower bound (ratio = floor time / our time: 1.0 means at the floor).")
w("")
w("| workload | peer | threads | peer time | ours | ratio | target | met | runs | notes |")
w("|---|---|---|---|---|---|---|---|---|---|")
for _, wl in ipairs(order) do
  local ours, peers = {}, {}
  for _, r in ipairs(results) do
    if r.wl == wl then
      if is_ours(r.impl) then ours[#ours + 1] = r else peers[#peers + 1] = r end
    end
  end
  for _, o in ipairs(ours) do
    for _, p in ipairs(peers) do
      local same = p.threads == o.threads
      local single = p.threads == 1 and not same
      local other_at_t = false
      for _, q in ipairs(peers) do
        if q.impl == p.impl and q.threads == o.threads then other_at_t = true end
      end
      if same or (single and not other_at_t) then
        local ratio = p.t / o.t
        local tg = targets[wl]
        local target, met = "", ""
        if tg and p.impl:match(tg.pattern) then
          target = string.format(">= %gx", tg.min)
          met = ratio >= tg.min and "yes" or "**no**"
        end
        local pname = p.impl .. (single and " (1t)" or "")
        if o.impl ~= "keras-lua" then pname = pname .. " vs " .. o.impl end
        local notes = {}
        if p.note ~= "" then notes[#notes + 1] = "peer: " .. p.note end
        if o.note ~= "" then notes[#notes + 1] = "ours: " .. o.note end
        w(string.format("| %s | %s | %d | %s | %s | %.2f | %s | %s | %d/%d | %s |", wl, pname,
                        o.threads, fmt_t(p.t), fmt_t(o.t), ratio, target, met, p.runs, o.runs,
                        table.concat(notes, "; ")))
      end
    end
    if #peers == 0 then
      w(string.format("| %s | (none ran) | %d | | %s | | | | %d | %s |", wl, o.threads,
                      fmt_t(o.t), o.runs, o.note))
    end
  end
end

if #losses > 0 then
  w("")
  w("## Model quality (W5: training-set log-loss after the timed training)")
  w("")
  w("| workload | implementation | threads | log-loss | notes |")
  w("|---|---|---|---|---|")
  for _, l in ipairs(losses) do
    w(string.format("| %s | %s | %d | %s | %s |", l.wl, l.impl, l.threads, l.loss, l.note))
  end
end

if #mems > 0 then
  w("")
  w("## Memory (peak RSS by /usr/bin/time -v, 1 thread)")
  w("")
  w("floor = data + weights + optimizer state, counted by the workload script. Target: RSS <= 1.2 x floor.")
  w("")
  w("| workload | implementation | peak RSS | floor | RSS / floor | met | floor counts |")
  w("|---|---|---|---|---|---|---|")
  for _, m in ipairs(mems) do
    local r = m.rss / m.floor
    local met = is_ours(m.impl) and (r <= 1.2 and "yes" or "**no**") or ""
    w(string.format("| %s | %s | %.1f MiB | %.1f MiB | %.2f | %s | %s |", m.wl, m.impl,
                    m.rss / 1048576, m.floor / 1048576, r, met, m.what))
  end
end

local f = assert(io.open(out_path, "w"))
f:write(table.concat(out, "\n"), "\n")
f:close()
