-- spec/support.lua: helpers shared by the specs: approximate comparison, dense references,
-- deterministic random tables, running a Lua script in a child process.
local M = {}

-- Compares two numbers or nested tables within a relative+absolute tolerance. Returns
-- true, or false and a message naming the first differing position.
function M.near(a, b, tol, path)
  tol = tol or 0
  path = path or ""
  if type(a) == "number" and type(b) == "number" then
    if a == b or math.abs(a - b) <= tol * (1 + math.abs(b)) then return true end
    return false, string.format("at %s: %.17g vs %.17g (tol %g)", path == "" and "value" or path, a, b, tol)
  end
  if type(a) ~= "table" or type(b) ~= "table" then
    return false, string.format("at %s: %s vs %s", path, type(a), type(b))
  end
  if #a ~= #b then
    return false, string.format("at %s: length %d vs %d", path == "" and "top" or path, #a, #b)
  end
  for i = 1, #a do
    local ok, msg = M.near(a[i], b[i], tol, path .. "[" .. i .. "]")
    if not ok then return false, msg end
  end
  return true
end

-- Asserts near(a, b, tol), failing with the position.
function M.assert_near(a, b, tol)
  local ok, msg = M.near(a, b, tol)
  assert(ok, msg)
end

-- Tolerance for a dtype, as the issue fixes it.
function M.tol(dtype) return dtype == "float64" and 1e-12 or 1e-5 end

-- ------------------------------------------------------------ dense references on tables

function M.zeros(r, c)
  local t = {}
  for i = 1, r do
    t[i] = {}
    for j = 1, c do t[i][j] = 0 end
  end
  return t
end

function M.transpose(a)
  local r, c = #a, (a[1] and #a[1] or 0)
  local t = M.zeros(c, r)
  for i = 1, r do for j = 1, c do t[j][i] = a[i][j] end end
  return t
end

-- a (n x k) . b (k x m); ncols gives m when b has no rows.
function M.matmul(a, b, ncols)
  local n, k = #a, #b
  local m = ncols or (b[1] and #b[1] or 0)
  local out = M.zeros(n, m)
  for i = 1, n do
    for j = 1, m do
      local s = 0
      for p = 1, k do s = s + a[i][p] * b[p][j] end
      out[i][j] = s
    end
  end
  return out
end

-- Applies f elementwise to a nested table (or number).
function M.map(a, f)
  if type(a) == "number" then return f(a) end
  local t = {}
  for i = 1, #a do t[i] = M.map(a[i], f) end
  return t
end

-- Elementwise f(a, b) of two nested tables of the same shape.
function M.zip(a, b, f)
  if type(a) == "number" then return f(a, b) end
  local t = {}
  for i = 1, #a do t[i] = M.zip(a[i], b[i], f) end
  return t
end

-- A deterministic pseudo-random r x c table with about density of its entries non-zero
-- (values in [-1, 1)); uses its own LCG so specs do not depend on math.random's algorithm.
function M.rand_table(r, c, density, seed)
  local state = seed or 1
  local function rnd()
    state = (state * 1103515245 + 12345) % 2147483648
    return state / 2147483648
  end
  local t = M.zeros(r, c)
  for i = 1, r do
    for j = 1, c do
      if rnd() < density then t[i][j] = rnd() * 2 - 1 end
    end
  end
  return t
end

-- ------------------------------------------------------------ child processes

-- The LUA_PATH/LUA_CPATH prefix that makes a child lua5.4 find the built module.
function M.lua_env()
  local build = os.getenv("KL_BUILD_DIR") or "build"
  return string.format("LUA_PATH_5_4='%s/lua/?.lua;%s/lua/?/init.lua;;' LUA_CPATH_5_4='%s/lua/?.so;;'",
    build, build, build)
end

-- Runs `lua5.4 <args>` with the module on its path; returns ok, exit code, output
-- (stdout and stderr together).
function M.run_lua(args, extra_env)
  local cmd = string.format("%s %s lua5.4 %s 2>&1", M.lua_env(), extra_env or "", args)
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, code, out
end

-- Writes a temporary Lua script and returns its path.
function M.write_script(src)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  return path
end

-- ------------------------------------------------------------ files and errors

-- The whole content of the file at path p (binary).
function M.slurp(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- A new empty temporary directory (mktemp -d); the caller removes it.
function M.mktemp_dir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

-- The error message of f(...), or fails when f succeeds.
function M.err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  return e
end

return M
