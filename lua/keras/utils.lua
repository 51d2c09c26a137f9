-- keras/utils.lua: keras.utils: plot_history (training curves as PNG through gnuplot, or SVG
-- through gnuplot or a built-in writer).
local utils = {}

-- Where warnings go (a function of one string; tests replace it).
utils.warn = function(msg) io.stderr:write("Warning: ", tostring(msg), "\n") end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The environment prefix of a helper process: a sanitizer runtime preloaded into this one
-- (tools/asan-lua5.4) is not passed on, or LeakSanitizer would fail gnuplot for its own leaks.
local function child_env()
  local pre = os.getenv("LD_PRELOAD")
  if pre and pre:find("libasan", 1, true) then return "LD_PRELOAD= " end
  return ""
end

-- Whether gnuplot is on the PATH (KERAS_LUA_GNUPLOT=0 pretends it is not).
function utils.have_gnuplot()
  if os.getenv("KERAS_LUA_GNUPLOT") == "0" then return false end
  local ok = os.execute(child_env() .. "command -v gnuplot >/dev/null 2>&1")
  return ok == true or ok == 0
end

-- ------------------------------------------------------------ the curves of a history

-- The curves of history (a History callback, or a table name -> list of numbers), ordered
-- as Keras prints them: loss first, each metric followed by its val_ twin. Returns
-- {x = {epochs}, series = {{name=, values={...}}, ...}}.
local function curves(fn, history)
  if type(history) ~= "table" then
    error(string.format("%s: history must be a History or a table of lists. Received: %s", fn,
      type(history)), 0)
  end
  local h = type(history.history) == "table" and history.history or history
  -- the lists read raw (a __len or __index of the caller's tables does not run), copied
  local names, lists, n = {}, {}, 0
  for k, v in pairs(h) do
    if type(k) == "string" and type(v) == "table" and rawlen(v) > 0 then
      local list = {}
      for i = 1, rawlen(v) do
        list[i] = rawget(v, i)
        if type(list[i]) ~= "number" then
          error(string.format("%s: history['%s'][%d] is a %s, not a number", fn, k, i, type(list[i])), 0)
        end
      end
      names[#names + 1], lists[k] = k, list
      if #list > n then n = #list end
    end
  end
  if #names == 0 then error(fn .. ": the history holds no curves (train with fit first)", 0) end
  local function rank(name)
    local base = name:gsub("^val_", "")
    return (base == "loss" and "0" or "1" .. base) .. (name:find("^val_") and "1" or "0")
  end
  table.sort(names, function(a, b) return rank(a) < rank(b) end)
  local x = {}
  local ep = history.history and history.epoch
  for i = 1, n do
    x[i] = (type(ep) == "table" and rawlen(ep) == n and type(rawget(ep, i)) == "number") and rawget(ep, i) or i
  end
  local series = {}
  for i, name in ipairs(names) do series[i] = {name = name, values = lists[name]} end
  return {x = x, series = series}
end

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

-- ------------------------------------------------------------ built-in SVG writer

local PALETTE = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"}

local function xml_escape(s)
  return (tostring(s):gsub("[&<>\"']", {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
    ['"'] = "&quot;", ["'"] = "&apos;"}))
end

-- Tick positions covering [lo, hi] with about `count` steps of 1, 2 or 5 x 10^k.
local function ticks(lo, hi, count)
  local raw = (hi - lo) / count
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step = mag
  for _, m in ipairs({1, 2, 5, 10}) do
    if m * mag >= raw then step = m * mag; break end
  end
  local t = {}
  local v = math.ceil(lo / step - 1e-9) * step
  while v <= hi + step * 1e-9 do
    t[#t + 1] = math.abs(v) < step * 1e-9 and 0 or v
    v = v + step
  end
  return t
end

local function tick_label(v)
  if math.abs(v) >= 1e5 or (v ~= 0 and math.abs(v) < 1e-3) then return string.format("%.2g", v) end
  return (string.format("%.4f", v):gsub("0+$", ""):gsub("%.$", ""))
end

-- The SVG text of the curves (one <g class="series"> per curve holding a <polyline> and one
-- <circle> per finite point; non-finite values are left out).
local function svg_text(c, title, W, H)
  local L, R, T, B = 70, 170, title and 40 or 20, 50
  local pw, ph = W - L - R, H - T - B
  local xmin, xmax = c.x[1], c.x[#c.x]
  if xmax == xmin then xmin, xmax = xmin - 1, xmax + 1 end
  local ymin, ymax = math.huge, -math.huge
  for _, s in ipairs(c.series) do
    for _, v in ipairs(s.values) do
      if finite(v) then ymin, ymax = math.min(ymin, v), math.max(ymax, v) end
    end
  end
  if ymin > ymax then ymin, ymax = 0, 1 end
  if ymax == ymin then
    local d = ymin == 0 and 1 or math.abs(ymin) * 0.1
    ymin, ymax = ymin - d, ymax + d
  end
  local pad = (ymax - ymin) * 0.05
  ymin, ymax = ymin - pad, ymax + pad
  local function px(x) return L + (x - xmin) / (xmax - xmin) * pw end
  local function py(y) return T + (ymax - y) / (ymax - ymin) * ph end
  local o = {}
  local function add(fmt, ...) o[#o + 1] = string.format(fmt, ...) end
  add('<?xml version="1.0" encoding="UTF-8"?>\n')
  add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" ' ..
    'font-family="sans-serif" font-size="12">\n', W, H, W, H)
  add('<rect x="0" y="0" width="%d" height="%d" fill="white"/>\n', W, H)
  if title then
    add('<text class="title" x="%.1f" y="24" text-anchor="middle" font-size="16">%s</text>\n',
      L + pw / 2, xml_escape(title))
  end
  -- grid, ticks and tick labels
  add('<g class="axes" stroke="#000" stroke-width="1">\n')
  for _, v in ipairs(ticks(ymin, ymax, 6)) do
    add('<line x1="%d" y1="%.2f" x2="%d" y2="%.2f" stroke="#ddd"/>\n', L, py(v), L + pw, py(v))
    add('<text x="%d" y="%.2f" text-anchor="end" stroke="none">%s</text>\n', L - 6, py(v) + 4,
      tick_label(v))
  end
  local xt = ticks(xmin, xmax, math.min(10, math.max(1, xmax - xmin)))
  for _, v in ipairs(xt) do
    if v == math.floor(v) or (xmax - xmin) < 3 then
      add('<line x1="%.2f" y1="%d" x2="%.2f" y2="%d" stroke="#ddd"/>\n', px(v), T, px(v), T + ph)
      add('<text x="%.2f" y="%d" text-anchor="middle" stroke="none">%s</text>\n', px(v),
        T + ph + 18, tick_label(v))
    end
  end
  add('<rect x="%d" y="%d" width="%d" height="%d" fill="none"/>\n', L, T, pw, ph)
  add('</g>\n')
  add('<text class="xlabel" x="%.1f" y="%d" text-anchor="middle">epoch</text>\n', L + pw / 2, H - 12)
  add('<text class="ylabel" x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">' ..
    'value</text>\n', T + ph / 2, T + ph / 2)
  -- curves
  for i, s in ipairs(c.series) do
    local color = PALETTE[(i - 1) % #PALETTE + 1]
    local dash = s.name:find("^val_") and ' stroke-dasharray="6,3"' or ""
    add('<g class="series" data-name="%s" stroke="%s" fill="%s">\n', xml_escape(s.name), color, color)
    local pts = {}
    for k, v in ipairs(s.values) do
      if finite(v) and c.x[k] then pts[#pts + 1] = string.format("%.2f,%.2f", px(c.x[k]), py(v)) end
    end
    if #pts >= 2 then
      add('<polyline fill="none" stroke-width="2"%s points="%s"/>\n', dash, table.concat(pts, " "))
    end
    for k, v in ipairs(s.values) do
      if finite(v) and c.x[k] then
        add('<circle cx="%.2f" cy="%.2f" r="3" stroke="none"/>\n', px(c.x[k]), py(v))
      end
    end
    add('</g>\n')
  end
  -- legend
  add('<g class="legend">\n')
  for i, s in ipairs(c.series) do
    local color = PALETTE[(i - 1) % #PALETTE + 1]
    local y = T + 10 + (i - 1) * 20
    local dash = s.name:find("^val_") and ' stroke-dasharray="6,3"' or ""
    add('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>\n', L + pw + 12, y,
      L + pw + 40, y, color, dash)
    add('<text x="%d" y="%d">%s</text>\n', L + pw + 46, y + 4, xml_escape(s.name))
  end
  add('</g>\n</svg>\n')
  return table.concat(o)
end

local function write_file(fn, path, text)
  local f, err = io.open(path, "wb")
  if not f then error(string.format("%s: cannot write '%s': %s", fn, path, tostring(err)), 0) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then error(string.format("%s: cannot write '%s': %s", fn, path, tostring(werr)), 0) end
end

-- ------------------------------------------------------------ gnuplot

local function gp_string(s) return "'" .. tostring(s):gsub("'", "''") .. "'" end

local function run_gnuplot(fn, c, path, kind, title, W, H)
  local base = os.tmpname()
  local data, script, errf = base .. ".dat", base .. ".gp", base .. ".err"
  os.remove(base)
  local rows = {}
  for k = 1, #c.x do
    local r = {string.format("%.17g", c.x[k])}
    for _, s in ipairs(c.series) do
      local v = s.values[k]
      r[#r + 1] = (v ~= nil and finite(v)) and string.format("%.17g", v) or "NaN"
    end
    rows[k] = table.concat(r, " ")
  end
  write_file(fn, data, table.concat(rows, "\n") .. "\n")
  local function attempt(terminal)
    local plots = {}
    for i, s in ipairs(c.series) do
      local dt = s.name:find("^val_") and " dashtype 2" or ""
      plots[i] = string.format("%s using 1:%d with linespoints pt 7 ps 0.6 lw 2%s title %s",
        i == 1 and gp_string(data) or "''", i + 1, dt, gp_string(s.name))
    end
    local lines = {
      string.format("set terminal %s size %d,%d noenhanced", terminal, W, H),
      "set output " .. gp_string(path),
      "set datafile missing 'NaN'",
      title and ("set title " .. gp_string(title)) or "unset title",
      "set xlabel 'epoch'", "set ylabel 'value'", "set grid", "set key outside right top",
      #c.x <= 20 and "set xtics 1" or "set xtics",
      "plot " .. table.concat(plots, ", "), "unset output",
    }
    write_file(fn, script, table.concat(lines, "\n") .. "\n")
    os.remove(path)
    local ok = os.execute(child_env() .. "gnuplot " .. shell_quote(script) .. " 2>" .. shell_quote(errf))
    local f = io.open(errf)
    local msg = f and f:read("a") or ""
    if f then f:close() end
    local out = io.open(path, "rb")
    local size = out and out:seek("end") or 0
    if out then out:close() end
    return (ok == true or ok == 0) and size > 0, msg
  end
  local ok, msg
  if kind == "png" then
    ok, msg = attempt("pngcairo")
    if not ok then ok, msg = attempt("png") end
  else
    ok, msg = attempt("svg")
  end
  os.remove(data); os.remove(script); os.remove(errf)
  if not ok then
    error(string.format("%s: gnuplot could not draw '%s': %s", fn, path, (msg:gsub("%s+$", ""))), 0)
  end
end

-- ------------------------------------------------------------ plot_history

-- plot_history(history, path, {title=, engine="auto", width=800, height=500}) -> the path
-- written. history: a History (model:fit's result) or a table name -> list of numbers; one
-- curve per key (loss, every metric, their val_ twins dashed) against the epoch.
-- The format follows the extension: ".svg" or ".png".
-- engine "auto": gnuplot when installed, else the built-in SVG writer; "gnuplot" requires
-- it; "builtin" never runs it. PNG needs gnuplot (pngcairo, else png terminal): without it,
-- the plot is written as SVG next to the requested path (".png" -> ".svg"), a warning says
-- so, and that SVG's path is returned (a PNG rasteriser with fonts is out of scope here).
function utils.plot_history(history, path, opts)
  local fn = "plot_history"
  local c = curves(fn, history)
  if type(path) ~= "string" or path == "" then
    error(fn .. ": path must be a non-empty string. Received: path=" .. tostring(path), 0)
  end
  local ext = (path:match("%.([%w]+)$") or ""):lower()
  if ext ~= "png" and ext ~= "svg" then
    error(fn .. ": path must end in .png or .svg. Received: path=" .. path, 0)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(fn .. ": options must be a table (got " .. type(opts) .. ")", 0)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "title" and k ~= "engine" and k ~= "width" and k ~= "height" then
      error(fn .. ": unknown option '" .. tostring(k) .. "'", 0)
    end
  end
  local title = opts.title
  if title ~= nil and type(title) ~= "string" then
    error(fn .. ": title must be a string. Received: title=" .. tostring(title), 0)
  end
  local engine = opts.engine or "auto"
  if engine ~= "auto" and engine ~= "gnuplot" and engine ~= "builtin" then
    error(fn .. ": engine must be 'auto', 'gnuplot' or 'builtin'. Received: engine=" ..
      tostring(engine), 0)
  end
  local W, H = opts.width or 800, opts.height or 500
  for name, v in pairs({width = W, height = H}) do
    if type(v) ~= "number" or math.tointeger(v) == nil or v < 200 or v > 10000 then
      error(string.format("%s: %s must be an integer in [200, 10000]. Received: %s=%s", fn, name,
        name, tostring(v)), 0)
    end
  end
  local gp = engine ~= "builtin" and utils.have_gnuplot()
  if engine == "gnuplot" and not gp then
    error(fn .. ": engine='gnuplot' but gnuplot is not installed (apt-get install gnuplot-nox)", 0)
  end
  if gp then
    run_gnuplot(fn, c, path, ext, title, W, H)
    return path
  end
  if ext == "png" then
    local svg = path:sub(1, -5) .. ".svg"
    utils.warn(string.format("%s: gnuplot is not installed, so no PNG: wrote the plot as SVG " ..
      "to '%s' instead of '%s'", fn, svg, path))
    path = svg
  end
  write_file(fn, path, svg_text(c, title, W, H))
  return path
end

-- to_categorical(y, num_classes): labels 1..C -> (n, C) float32 one-hot rows (backend_math.lua)
utils.to_categorical = require("keras.backend_math").to_categorical

return utils
