-- spec/mpi/example.lua: examples/distributed_libsvm.lua under mpirun (quick size): it trains,
-- the ranks end with the same weights, the model learns, and rank 0's file loads back.
local keras = require("keras")
local D = keras.distributed
local r = D.init()
local dir = "/tmp/kl_dist_example_" .. D._broadcast_number(r == 0 and math.floor(keras.core.now() * 1000) % 1000000000 or 0, 0)
local old = os.getenv
os.getenv = function(k) -- luacheck: ignore
  if k == "KERAS_LUA_EXAMPLE_QUICK" then return "1" end
  if k == "KERAS_LUA_EXAMPLE_OUT" then return dir end
  return old(k)
end
local real_print = print
if r ~= 0 then print = function() end end -- luacheck: ignore
local res = dofile("examples/distributed_libsvm.lua")
print, os.getenv = real_print, old -- luacheck: ignore
local fails = 0
local function check(c, what) if not c then fails = fails + 1; io.stderr:write("rank " .. r .. ": FAIL " .. what .. "\n") end end
check(res.ranks == D.size() and res.epochs == 4, "ranks and epochs")
check(res.last_loss < res.first_loss and res.val_accuracy > 0.7,
  string.format("it learns: loss %.4f -> %.4f, val_accuracy %.4f", res.first_loss, res.last_loss, res.val_accuracy))
check(res.steps > 0 and res.exchanged > 0, "gradients were exchanged")
D.barrier()
if r == 0 then
  local m = keras.models.load_model(res.model)
  check(m:get_weights()[1].shape[1] == 300, "rank 0's file loads")
  os.execute("rm -rf '" .. dir .. "'")
end
if fails > 0 then os.exit(1) end
