-- report.lua: turns the harness's RESULT/MEM/LOSS lines into the markdown results table.
-- usage: lua5.4 bench/report.lua RAW.txt OUT.md COMMANDS.txt MODE (one harness command a line)
--        lua5.4 bench/report.lua --seed RESULTS.md RAW.txt COMMANDS.txt: writes back the raw
--        lines and the commands a report was made from (bench/run --append in a checkout
--        without bench/out/): from the report's embedded raw block when it has one, else by
--        reading its tables (times, RSS and ratios as printed: rounded to what the table shows).
if arg[1] == "--seed" then
  local src, raw_out, cmd_out = arg[2], arg[3], arg[4]
  local text = assert(io.open(src)):read("a")
  local lines, cmds = {}, {}
  local prod = text:match("\nProduced by (.-); table written") or text:match("^[^\n]*\n\nProduced by (.-); table written")
  if prod then for c in prod:gmatch("`([^`]+)`") do cmds[#cmds + 1] = c end end
  local block = text:match("<!%-%- raw lines of this report .-\n(.-)%-%->")
  if block then
    for l in block:gmatch("[^\n]+") do lines[#lines + 1] = l end
  else
    -- A printed time or size stands for an interval (what rounds to it), and a printed ratio
    -- constrains the pair; values are picked inside the intervals so that the regenerated
    -- table prints the same times, sizes and ratios.
    local function interval(s)
      local v, u = s:match("^([%d.]+) (%a+)$")
      local dec = #(v:match("%.(%d+)$") or "")
      local h = 0.499 * 10 ^ -dec
      local k = ({s = 1, ms = 1e-3, us = 1e-6, MiB = 1048576})[u]
      return {lo = (tonumber(v) - h) * k, hi = (tonumber(v) + h) * k}
    end
    local vals, keys = {}, {}          -- key -> {lo, hi}; key -> line template
    local rows = {}                    -- {ours key, peer key, ratio}
    local function val(key, iv)
      if not vals[key] then vals[key] = iv; keys[#keys + 1] = key
      else vals[key].lo = math.max(vals[key].lo, iv.lo); vals[key].hi = math.min(vals[key].hi, iv.hi) end
    end
    local tmpl = {}
    local section = "main"
    local function split_notes(n)
      local peer, ours = "", ""
      if n:match("^ours: ") then ours = n:sub(7)
      else
        local a, b = n:match("^peer: (.-); ours: (.*)$")
        if a then peer, ours = a, b else peer = n:match("^peer: (.*)$") or "" end
      end
      return peer, ours
    end
    for l in text:gmatch("[^\n]+") do
      if l:match("^## Model quality") then section = "loss"
      elseif l:match("^## Memory") then section = "mem"
      elseif l:match("^## ") then section = "other"
      elseif l:match("^| ") and not l:match("^| workload |") then
        local c = {}
        for f in l:sub(2):gmatch("%s*(.-)%s*|") do c[#c + 1] = f end
        if section == "main" and #c >= 10 then
          local wl, pname, th = c[1], c[2], tonumber(c[3])
          local pr, orr = c[9]:match("^(%d+)/(%d+)$")
          local pnote, onote = split_notes(c[10])
          local oimpl = pname:match(" vs (%S+)$") or "keras-lua"
          local pimpl = pname:gsub(" vs %S+$", "")
          local single = pimpl:match(" %(1t%)$") ~= nil
          pimpl = pimpl:gsub(" %(1t%)$", "")
          local ok = "R|" .. wl .. "|" .. oimpl .. "|" .. th
          val(ok, interval(c[5]))
          if pname == "(none ran)" then
            tmpl[ok] = tmpl[ok] or {"RESULT " .. wl .. " " .. oimpl .. " " .. th .. " ", " " .. c[9] .. " " .. c[10]}
          else
            tmpl[ok] = tmpl[ok] or {"RESULT " .. wl .. " " .. oimpl .. " " .. th .. " ", " " .. orr .. " " .. onote}
            local pth = single and 1 or th
            local pk = "R|" .. wl .. "|" .. pimpl .. "|" .. pth
            val(pk, interval(c[4]))
            tmpl[pk] = tmpl[pk] or {"RESULT " .. wl .. " " .. pimpl .. " " .. pth .. " ", " " .. pr .. " " .. pnote}
            rows[#rows + 1] = {ok, pk, tonumber(c[6])}
          end
        elseif section == "loss" and #c >= 5 then
          local k = "L|" .. l
          vals[k] = {lo = 0, hi = 0}; keys[#keys + 1] = k
          tmpl[k] = {string.format("LOSS %s %s %s %s %s", c[1], c[2], c[3], c[4], c[5]), ""}
        elseif section == "mem" and #c >= 7 then
          local fk, rk = "F|" .. c[1], "M|" .. c[1] .. "|" .. c[2]
          val(fk, interval(c[4]))
          val(rk, interval(c[3]))
          tmpl[rk] = {"MEM " .. c[1] .. " " .. c[2] .. " ", " " .. c[7], fk}
          rows[#rows + 1] = {fk, rk, tonumber(c[5])}
        end
      end
    end
    -- each denominator (our time, a floor) at a point of its interval where every ratio it
    -- takes part in leaves its numerator a non-empty interval
    local chosen = {}
    for _, k in ipairs(keys) do
      local mine = {}
      for _, r in ipairs(rows) do if r[1] == k then mine[#mine + 1] = r end end
      if #mine > 0 then
        local iv, best = vals[k], nil
        for i = 0, 400 do
          local o = iv.lo + (iv.hi - iv.lo) * ((i % 2 == 0) and (0.5 + i / 800) or (0.5 - (i + 1) / 800))
          local fit = true
          for _, r in ipairs(mine) do
            local p = vals[r[2]]
            if math.max(p.lo, o * (r[3] - 0.00499)) > math.min(p.hi, o * (r[3] + 0.00499)) then fit = false end
          end
          if fit then best = o; break end
        end
        best = best or 0.5 * (iv.lo + iv.hi)
        chosen[k] = best
        for _, r in ipairs(mine) do
          local p = vals[r[2]]
          local lo, hi = math.max(p.lo, best * (r[3] - 0.00499)), math.min(p.hi, best * (r[3] + 0.00499))
          if lo <= hi then p.lo, p.hi = lo, hi end
        end
      end
    end
    for _, k in ipairs(keys) do
      local t = tmpl[k]
      if t then
        local v = chosen[k] or 0.5 * (vals[k].lo + vals[k].hi)
        if k:sub(1, 1) == "L" then lines[#lines + 1] = t[1]
        elseif k:sub(1, 1) == "M" then
          lines[#lines + 1] = t[1] .. string.format("%.0f %.0f", chosen[t[3]], v) .. t[2]
        else lines[#lines + 1] = t[1] .. string.format("%.9g", v) .. t[2] end
      end
    end
  end
  local f = assert(io.open(raw_out, "w"))
  for _, l in ipairs(lines) do f:write((l:gsub("%s+$", "")), "\n") end
  f:close()
  f = assert(io.open(cmd_out, "w"))
  for _, c in ipairs(cmds) do f:write(c, "\n") end
  f:close()
  return
end
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
  -- issue 18: W7, logistic regression on wide sparse data, against SGDClassifier
  ["W7-epoch"] = {pattern = "^sklearn%-SGD", min = 2},
  ["W7-to-target"] = {pattern = "^sklearn%-SGD", min = 2},
  -- issue 15: the data-parallel step at np = 2 against PyTorch DDP (gloo)
  ["DP-W3-V1e6-np2"] = {pattern = "^pytorch%-DDP", min = 5},
  ["DP-W1-b64-np2"] = {pattern = "^pytorch%-DDP", min = 5},
}

local function is_ours(impl) return impl:match("^keras%-lua") ~= nil end

local results, order, seen, mems, losses, xchgs = {}, {}, {}, {}, {}, {}
local rsss, sxchgs = {}, {} -- SHARD (issue 16): peak RSS per rank, sharded exchange
-- the lines in effect (a later line of a row takes the earlier one's place), for the raw block
local raw_lines, raw_at = {}, {}
-- A LOSS line's row: workload, implementation, threads and note, less a trailing time
-- ("..., 8.34 s"), so that a later run of the same configuration replaces it (--append)
local function loss_key(line)
  local wl, impl, th, note = line:match("^LOSS (%S+) (%S+) (%d+) %S+ ?(.*)$")
  if not wl then return nil end
  return "L|" .. wl .. "|" .. impl .. "|" .. th .. "|" .. note:gsub(",? [%d.]+ s$", "")
end
local function keep_raw(key, line)
  if key and raw_at[key] then raw_lines[raw_at[key]] = line return end
  raw_lines[#raw_lines + 1] = line
  if key then raw_at[key] = #raw_lines end
end
for line in io.lines(raw_path) do
  do
    local k, a, b, c = line:match("^(%u+) (%S+) (%S+) ?(%S*)")
    if k == "RESULT" then keep_raw("R|" .. a .. "|" .. b .. "|" .. c, line)
    elseif k == "MEM" or k == "XCHG" or k == "SXCHG" then keep_raw(k .. "|" .. a .. "|" .. b, line)
    elseif k == "RSS" then keep_raw("RSS|" .. a .. "|" .. b .. "|" .. (line:match("^RSS %S+ %S+ %d+ (%d+)") or ""), line)
    elseif k == "LOSS" then keep_raw(loss_key(line), line) end
  end
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
  elseif kind == "XCHG" then
    -- XCHG <workload> <impl> <ranks> <sent/step> <recv/step> <weight bytes> [note]
    local wl, impl, np, sent, recv, wb, note = rest:match("^(%S+) (%S+) (%d+) (%S+) (%S+) (%S+) ?(.*)$")
    if wl then
      for i = #xchgs, 1, -1 do
        if xchgs[i].wl == wl and xchgs[i].impl == impl then table.remove(xchgs, i) end
      end
      xchgs[#xchgs + 1] = {wl = wl, impl = impl, np = tonumber(np), sent = tonumber(sent),
                           recv = tonumber(recv), wbytes = tonumber(wb), note = note}
    end
  elseif kind == "RSS" then
    -- RSS <workload> <impl> <ranks> <rank> <peak bytes> <floor bytes> [note]
    local wl, impl, np, rk, rss, floor, note = rest:match("^(%S+) (%S+) (%d+) (%d+) (%S+) (%S+) ?(.*)$")
    if wl then
      for i = #rsss, 1, -1 do
        local m = rsss[i]
        if m.wl == wl and m.impl == impl and m.rank == tonumber(rk) then table.remove(rsss, i) end
      end
      rsss[#rsss + 1] = {wl = wl, impl = impl, np = tonumber(np), rank = tonumber(rk), rss = tonumber(rss),
                         floor = tonumber(floor), note = note}
    end
  elseif kind == "SXCHG" then
    -- SXCHG <workload> <impl> <ranks> <sent> <recv> <off-rank sent> <off-rank recv> <W> [note]
    local wl, impl, np, s, r, os_, or_, wb, note =
      rest:match("^(%S+) (%S+) (%d+) (%S+) (%S+) (%S+) (%S+) (%S+) ?(.*)$")
    if wl then
      for i = #sxchgs, 1, -1 do
        if sxchgs[i].wl == wl and sxchgs[i].impl == impl then table.remove(sxchgs, i) end
      end
      sxchgs[#sxchgs + 1] = {wl = wl, impl = impl, np = tonumber(np), sent = tonumber(s), recv = tonumber(r),
                             osent = tonumber(os_), orecv = tonumber(or_), wbytes = tonumber(wb), note = note}
    end
  elseif kind == "LOSS" then
    local wl, impl, th, loss, note = rest:match("^(%S+) (%S+) (%d+) (%S+) ?(.*)$")
    if wl then
      local key = loss_key(line)
      for i = #losses, 1, -1 do -- a later run of the same row replaces it, in its place
        if losses[i].key == key then
          losses[i] = {wl = wl, impl = impl, threads = tonumber(th), loss = loss, note = note, key = key}
          key = nil
          break
        end
      end
      if key then losses[#losses + 1] = {wl = wl, impl = impl, threads = tonumber(th), loss = loss, note = note, key = key} end
    end
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
      -- a floor (a measured bound, not a peer) is shown at its own thread count, against
      -- our main row only
      if p.impl:match("^floor") then single = false; same = same and o.impl == "keras-lua" end
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

local function fmt_b(b)
  if b >= 2^30 then return string.format("%.2f GiB", b / 2^30) end
  if b >= 2^20 then return string.format("%.2f MiB", b / 2^20) end
  if b >= 2^10 then return string.format("%.1f KiB", b / 2^10) end
  return string.format("%d B", math.floor(b + 0.5))
end

if #xchgs > 0 then
  w("")
  w("## Data-parallel gradient exchange (DP rows: bytes per step, per rank)")
  w("")
  w("sent / received: one rank's gradient hook per step, by its counters (`hook_stats`: a")
  w("row_sparse gradient by allgatherv moves 8 B of index + the row's values per row; a dense one")
  w("is counted as 2 x its bytes each way). W = the bytes of all the model's weights; a dense")
  w("ring allreduce of the gradients moves 2 (p-1)/p x W each way per rank (p ranks: W at p = 2,")
  w("-> 2 W as p grows); `2W / received` compares ours with the 2 W of the large-p limit.")
  w("")
  w("| workload | ranks | sent / step | received / step | W (weights) | dense ring 2(p-1)/p W | 2W / received | notes |")
  w("|---|---|---|---|---|---|---|---|")
  for _, x in ipairs(xchgs) do
    w(string.format("| %s | %d | %s | %s | %s | %s | %.1f | %s |", x.wl, x.np, fmt_b(x.sent),
                    fmt_b(x.recv), fmt_b(x.wbytes), fmt_b(2 * (x.np - 1) / x.np * x.wbytes),
                    x.recv > 0 and 2 * x.wbytes / x.recv or 0, x.note))
  end
end

if #rsss > 0 or #sxchgs > 0 then
  w("")
  w("## Sharded Embedding (SHARD rows, issue 16): peak RSS per rank, exchange per step")
  w("")
  w("peak RSS: each process's VmHWM (/proc/self/status) at the end of the run. floor = the rows")
  w("the process holds x 64 x 4 B x 3 (table, Adam / SparseAdam m and v) + its ids and labels.")
  w("`/ np = 1`: this rank's peak over the np = 1 run's (keras-lua rows: over `keras-lua` at")
  w("np = 1; the peer: over its own np = 1 run). Target (issue 16): a sharded rank at np = 2")
  w("<= 0.6 x the np = 1 process.")
  w("")
  w("| workload | implementation | ranks | rank | peak RSS | floor | RSS / floor | / np = 1 | target | met | notes |")
  w("|---|---|---|---|---|---|---|---|---|---|---|")
  local function base(m)
    local wl1 = m.wl:gsub("%-np%d+$", "-np1")
    local impl1 = m.impl:match("^keras%-lua") and "keras-lua" or m.impl
    for _, b in ipairs(rsss) do
      if b.wl == wl1 and b.impl == impl1 and b.np == 1 then return b end
    end
  end
  for _, m in ipairs(rsss) do
    local b = base(m)
    local rel = (b and m.np > 1) and string.format("%.2f", m.rss / b.rss) or ""
    local target, met = "", ""
    if m.impl == "keras-lua-sharded" and m.np > 1 then
      target = "<= 0.6x"
      met = b and (m.rss / b.rss <= 0.6 and "yes" or "**no**") or "(no np = 1 row)"
    end
    w(string.format("| %s | %s | %d | %d | %s | %s | %.2f | %s | %s | %s | %s |", m.wl, m.impl, m.np,
                    m.rank, fmt_b(m.rss), fmt_b(m.floor), m.rss / m.floor, rel, target, met, m.note))
  end
  if #sxchgs > 0 then
    w("")
    w("Exchange, rank 0, per step (timed epochs): the shard's counters (forward: 8 B ids out, 256 B")
    w("rows back; backward: the rows' gradients to their owners; a rank's own ids and rows")
    w("included, as MPI_Alltoallv copies them) plus the data-parallel hook's (the Dense gradient,")
    w("counted 2 x its bytes; for the replicated Embedding also its row_sparse gather). off-rank:")
    w("the part to / from other ranks, counted from the ids. W = table + Dense weights; a dense")
    w("ring allreduce of the gradients would move 2 (p-1)/p x W each way.")
    w("")
    w("| workload | implementation | ranks | sent / step | received / step | off-rank sent | " ..
      "off-rank received | W (weights) | dense ring 2(p-1)/p W | notes |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for _, x in ipairs(sxchgs) do
      w(string.format("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |", x.wl, x.impl, x.np,
                      fmt_b(x.sent), fmt_b(x.recv), fmt_b(x.osent), fmt_b(x.orecv), fmt_b(x.wbytes),
                      fmt_b(2 * (x.np - 1) / x.np * x.wbytes), x.note))
    end
  end
end

if #losses > 0 then
  w("")
  w("## Model quality (W5: training-set log-loss after the timed training; W7: held-out log-loss)")
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

-- the raw lines, so that a later `bench/run --append` in a checkout without bench/out/ adds
-- to this report exactly (report.lua --seed)
w("")
w("<!-- raw lines of this report (bench/report.lua --seed reads them back)")
for _, l in ipairs(raw_lines) do w((l:gsub("%-%-", "- -"))) end
w("-->")

local f = assert(io.open(out_path, "w"))
f:write(table.concat(out, "\n"), "\n")
f:close()
