-- spec/mpi/resume.lua: a distributed run checkpointed by rank 0 (ModelCheckpoint) and
-- resumed from that file reproduces the uninterrupted run: the weights, the optimizer
-- states, the step count and the random generator (whose draws seed each epoch's shuffle)
-- are in the file. Modes:
--   (none)          ctest's np = 2 / 3 runs: interrupt and resume within one job, the same
--                   np: bit for bit.
--   save DIR        the uninterrupted run (its weights to DIR/full.txt) and a checkpoint
--                   after 2 of 4 epochs (DIR/ckpt.model)
--   resume DIR      resume DIR/ckpt.model (at another np) and compare with DIR/full.txt:
--                   the same within float summation order (relative 1e-4).
local keras = require("keras")
local K, L, D = keras.backend, keras.layers, keras.distributed
local mode, dir = arg[1], arg[2]
local r = D.init()
local N, C, E = 90, 40, 4
local X = keras.sparse.rand({N, C}, "csr", 0.15, {seed = 21})
local Y = K.dot(X, keras.random.uniform({C, 1}, {seed = 22}))

local function build()
  keras.random.seed(5) -- the same generator state at the start of fit in every run
  local inp = L.Input{shape = {C}, sparse = true}
  local h = L.Dense{units = 3, sparse_weight = true, activation = "tanh"}(inp)
  local m = keras.Model{inputs = inp, outputs = L.Dense{units = 1}(h)}
  m:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.02}, loss = "mse", distributed = true}
  return m
end
local function flat(m)
  local out = {}
  for _, w in ipairs(m:get_weight_tensors()) do
    local function walk(v) if type(v) == "table" then for _, x in ipairs(v) do walk(x) end else out[#out + 1] = v end end
    walk(w:tostype("default"):totable())
  end
  return out
end
local fails = 0
local function check(c, what) if not c then fails = fails + 1; io.stderr:write("rank " .. r .. ": FAIL " .. what .. "\n") end end

local function uninterrupted()
  local m = build()
  m:fit(X, Y, {batch_size = 12, epochs = E, verbose = 0})
  return flat(m)
end
local function checkpointed(path)
  local m = build()
  m:fit(X, Y, {batch_size = 12, epochs = 2, verbose = 0,
    callbacks = {keras.callbacks.ModelCheckpoint{filepath = path}}})
  D.barrier() -- rank 0 has written it
end
local function resumed(path)
  keras.random.seed(12345) -- a new process: whatever state
  K.clear_session()
  local m = keras.models.load_model(path, {resume = true})
  check(m.epoch == 2, "the file says 2 epochs were done (got " .. tostring(m.epoch) .. ")")
  m:fit(X, Y, {batch_size = 12, epochs = E, initial_epoch = m.epoch, verbose = 0})
  return flat(m)
end

if mode == nil then
  local path = os.tmpname()
  path = D._broadcast_number(r == 0 and tonumber(path:match("(%d+)$") or "0") or 0, 0)
  path = "/tmp/kl_resume_" .. path .. ".model"
  local full = uninterrupted()
  checkpointed(path)
  local again = resumed(path)
  local same = #full == #again
  for i = 1, #full do same = same and full[i] == again[i] end
  check(same, "resumed == uninterrupted, bit for bit")
  -- and without resume = true the shuffles differ (the test can fail)
  D.barrier()
  keras.random.seed(777)
  K.clear_session()
  local m = keras.models.load_model(path)
  m:fit(X, Y, {batch_size = 12, epochs = E, initial_epoch = m.epoch, verbose = 0})
  local other, differs = flat(m), false
  for i = 1, #full do differs = differs or full[i] ~= other[i] end
  check(differs, "a resume without the generator's state shuffles differently")
  D.barrier()
  if r == 0 then os.remove(path) end
elseif mode == "save" then
  local full = uninterrupted()
  checkpointed(dir .. "/ckpt.model")
  if r == 0 then
    local f = assert(io.open(dir .. "/full.txt", "w"))
    for _, v in ipairs(full) do f:write(string.format("%.17g\n", v)) end
    f:close()
  end
elseif mode == "resume" then
  local again = resumed(dir .. "/ckpt.model")
  local full = {}
  for line in io.lines(dir .. "/full.txt") do full[#full + 1] = tonumber(line) end
  local worst = 0
  for i = 1, #full do worst = math.max(worst, math.abs(full[i] - again[i]) / math.max(1, math.abs(full[i]))) end
  check(#full == #again and worst < 1e-4, string.format("resumed at np=%d vs uninterrupted: rel %.3g", D.size(), worst))
end
if fails > 0 then os.exit(1) end
if r == 0 then print("resume " .. (mode or "") .. ": np=" .. D.size() .. " ok") end
