-- spec/plot_spec.lua: keras.utils.plot_history: the built-in SVG (well-formed, one point per
-- epoch and curve), PNG and SVG through gnuplot (skipped without it), the PNG fallback, errors.
local keras = require("keras")
local utils = keras.utils

local tmp = os.tmpname()
os.remove(tmp)
local function out(name) return tmp .. "_" .. name end

local support = require("support")
local slurp, err_of = support.slurp, support.err_of

-- A strict-enough XML well-formedness check: one root, balanced and properly nested tags,
-- quoted attributes, no stray '<' or '&'. Returns true or false, message.
local function well_formed(s)
  s = s:gsub("^<%?xml[^>]*%?>%s*", "")
  local stack, pos, roots = {}, 1, 0
  while true do
    local a, b = s:find("<", pos, true)
    local text = s:sub(pos, (a or #s + 1) - 1)
    if text:find("&") then
      for ent in text:gmatch("&([^;]*);?") do
        if not (ent == "amp" or ent == "lt" or ent == "gt" or ent == "quot" or ent == "apos") then
          return false, "bad entity &" .. ent
        end
      end
    end
    if #stack == 0 and text:find("%S") then return false, "text outside the root" end
    if not a then break end
    local close = s:find(">", b, true)
    if not close then return false, "unterminated tag" end
    local tag = s:sub(a + 1, close - 1)
    if tag:sub(1, 1) == "/" then
      local name = tag:sub(2):match("^([%w:_-]+)%s*$")
      if not name or stack[#stack] ~= name then return false, "mismatched </" .. tostring(name) .. ">" end
      stack[#stack] = nil
    else
      local selfclose = tag:sub(-1) == "/"
      if selfclose then tag = tag:sub(1, -2) end
      local name, attrs = tag:match("^([%w:_-]+)(.*)$")
      if not name then return false, "bad tag <" .. tag .. ">" end
      local rest = attrs:gsub('%s+[%w:_-]+="[^"<]*"', "")
      if rest:find("%S") then return false, "bad attributes in <" .. name .. ">: " .. rest end
      if #stack == 0 then roots = roots + 1 end
      if not selfclose then stack[#stack + 1] = name end
    end
    pos = close + 1
  end
  if #stack > 0 then return false, "unclosed <" .. stack[#stack] .. ">" end
  if roots ~= 1 then return false, roots .. " root elements" end
  return true
end

local function have_python()
  local ok = os.execute("command -v python3 >/dev/null 2>&1")
  return ok == true or ok == 0
end

-- (a sanitizer runtime preloaded into this process is not passed on to python3)
local function python_parses(path)
  local pre = os.getenv("LD_PRELOAD")
  local envp = (pre and pre:find("libasan", 1, true)) and "LD_PRELOAD= " or ""
  local ok = os.execute(envp .. "python3 -c \"import sys, xml.dom.minidom as m; m.parse(sys.argv[1])\" '" ..
    path .. "' 2>/dev/null")
  return ok == true or ok == 0
end

-- The points of each series of a built-in SVG: name -> {circles = n, polyline = n}.
local function series_points(svg)
  local r, order = {}, {}
  for name, body in svg:gmatch('<g class="series" data%-name="([^"]*)"[^>]*>(.-)</g>') do
    local _, circles = body:gsub("<circle ", "")
    local pts = body:match('points="([^"]*)"')
    local np = 0
    if pts then for _ in pts:gmatch("[-%d.]+,[-%d.]+") do np = np + 1 end end
    r[name] = {circles = circles, polyline = np}
    order[#order + 1] = name
  end
  return r, order
end

local HIST = {
  history = {
    loss = {0.9, 0.6, 0.45, 0.4, 0.38},
    val_loss = {1.0, 0.7, 0.55, 0.5, 0.52},
    accuracy = {0.5, 0.7, 0.8, 0.83, 0.85},
    val_accuracy = {0.45, 0.65, 0.75, 0.78, 0.77},
  },
  epoch = {1, 2, 3, 4, 5},
}

describe("plot_history (built-in SVG)", function()
  it("writes well-formed SVG with one point per epoch for every curve, loss first", function()
    local p = out("h.svg")
    assert.are.equal(p, utils.plot_history(HIST, p, {engine = "builtin", title = "a <b> & 'c'"}))
    local svg = slurp(p)
    assert.is_true(well_formed(svg))
    if have_python() then assert.is_true(python_parses(p)) end
    local pts, order = series_points(svg)
    assert.are.same({"loss", "val_loss", "accuracy", "val_accuracy"}, order)
    for _, name in ipairs(order) do
      assert.are.same({circles = 5, polyline = 5}, pts[name])
    end
    assert.truthy(svg:find("a &lt;b&gt; &amp; &apos;c&apos;", 1, true))
    -- legend entries
    for _, name in ipairs(order) do assert.truthy(svg:find(">" .. name .. "</text>", 1, true)) end
    os.remove(p)
  end)

  it("takes a plain table, leaves out non-finite values, draws a single epoch", function()
    local p = out("plain.svg")
    utils.plot_history({loss = {1, 0 / 0, 0.5, math.huge}, mse = {3, 2, 1, 0.5}}, p, {engine = "builtin"})
    local svg = slurp(p)
    assert.is_true(well_formed(svg))
    local pts = series_points(svg)
    assert.are.same({circles = 2, polyline = 2}, pts.loss)
    assert.are.same({circles = 4, polyline = 4}, pts.mse)
    utils.plot_history({loss = {0.7}}, p, {engine = "builtin"})
    svg = slurp(p)
    assert.is_true(well_formed(svg))
    assert.are.same({circles = 1, polyline = 0}, series_points(svg).loss)
    -- a flat curve still gets a y range
    utils.plot_history({loss = {2, 2, 2}}, p, {engine = "builtin"})
    svg = slurp(p)
    assert.is_true(well_formed(svg))
    assert.is_nil(svg:find("nan", 1, true))
    assert.is_nil(svg:find("inf", 1, true))
    os.remove(p)
  end)

  it("the checker itself rejects broken XML", function()
    assert.is_false((well_formed("<svg><g></svg>")))
    assert.is_false((well_formed("<svg><text>a & b</text></svg>")))
    assert.is_false((well_formed("<svg x=1></svg>")))
    assert.is_false((well_formed("<svg/><svg/>")))
    assert.is_true((well_formed("<svg><g a=\"1\"/></svg>")))
  end)

  it("a PNG without gnuplot becomes an SVG next to it, with a warning", function()
    local saved_have, saved_warn = utils.have_gnuplot, utils.warn
    local warned
    utils.have_gnuplot = function() return false end
    utils.warn = function(m) warned = m end
    local ok, res = pcall(utils.plot_history, HIST, out("fallback.png"))
    utils.have_gnuplot, utils.warn = saved_have, saved_warn
    assert.is_true(ok, res)
    assert.are.equal(out("fallback.svg"), res)
    assert.matches("gnuplot is not installed", warned)
    assert.is_true(well_formed(slurp(res)))
    assert.is_nil(io.open(out("fallback.png")))
    os.remove(res)
  end)

  it("refuses bad arguments", function()
    local p = out("e.svg")
    assert.are.equal("plot_history: path must end in .png or .svg. Received: path=x.jpg",
      err_of(utils.plot_history, HIST, "x.jpg"))
    assert.are.equal("plot_history: path must be a non-empty string. Received: path=nil",
      err_of(utils.plot_history, HIST))
    assert.are.equal("plot_history: the history holds no curves (train with fit first)",
      err_of(utils.plot_history, {history = {}, epoch = {}}, p))
    assert.are.equal("plot_history: history must be a History or a table of lists. Received: nil",
      err_of(utils.plot_history, nil, p))
    assert.are.equal("plot_history: history['loss'][2] is a string, not a number",
      err_of(utils.plot_history, {loss = {1, "x"}}, p))
    assert.are.equal("plot_history: unknown option 'titel'",
      err_of(utils.plot_history, HIST, p, {titel = "x"}))
    assert.are.equal("plot_history: title must be a string. Received: title=3",
      err_of(utils.plot_history, HIST, p, {title = 3}))
    assert.are.equal("plot_history: engine must be 'auto', 'gnuplot' or 'builtin'. Received: engine=tex",
      err_of(utils.plot_history, HIST, p, {engine = "tex"}))
    assert.are.equal("plot_history: width must be an integer in [200, 10000]. Received: width=10",
      err_of(utils.plot_history, HIST, p, {width = 10}))
    assert.matches("^plot_history: cannot write '/nonexistent%-dir/x.svg': ",
      err_of(utils.plot_history, HIST, "/nonexistent-dir/x.svg", {engine = "builtin"}))
    local saved = utils.have_gnuplot
    utils.have_gnuplot = function() return false end
    local e = err_of(utils.plot_history, HIST, p, {engine = "gnuplot"})
    utils.have_gnuplot = saved
    assert.are.equal("plot_history: engine='gnuplot' but gnuplot is not installed (apt-get install gnuplot-nox)", e)
  end)

  it("reads the lists raw: a lying __len is not called (lua_api_fuzz seeds 231, 427: 'attempt to " ..
     "compare number with string' in utils.lua)", function()
    local p = out("len.svg")
    local lying = setmetatable({0.5, 0.25}, {__len = function() return "x" end})
    assert.are.equal(p, utils.plot_history({loss = lying}, p, {engine = "builtin"}))
    local svg = slurp(p)
    assert.truthy(svg:find("<svg", 1, true))
    os.remove(p)
    local huge = setmetatable({1, "x"}, {__len = function() return 1e300 end})
    assert.are.equal("plot_history: history['loss'][2] is a string, not a number",
      err_of(utils.plot_history, {loss = huge}, p))
  end)
end)

describe("plot_history (gnuplot)", function()
  it("writes a PNG (PNG signature) and a well-formed SVG", function()
    if not utils.have_gnuplot() then
      pending("gnuplot is not installed")
      return
    end
    local p = out("g.png")
    assert.are.equal(p, utils.plot_history(HIST, p, {title = "loss"}))
    local png = slurp(p)
    assert.are.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    assert.is_true(#png > 1000)
    os.remove(p)
    p = out("g.svg")
    assert.are.equal(p, utils.plot_history(HIST, p, {engine = "gnuplot"}))
    local svg = slurp(p)
    assert.truthy(svg:find("<svg", 1, true))
    if have_python() then assert.is_true(python_parses(p)) end
    os.remove(p)
  end)
end)
