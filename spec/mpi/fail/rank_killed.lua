-- spec/mpi/fail/rank_killed.lua: a rank killed by SIGKILL (no handler runs) in the middle of
-- training: mpirun must end the job, non-zero, before its --timeout.
local keras = require("keras")
local D = keras.distributed
local r = D.init()
local L = keras.layers
local inp = L.Input{shape = {10}, sparse = true}
local m = keras.Model{inputs = inp, outputs = L.Dense{units = 1, sparse_weight = true}(inp)}
m:compile{optimizer = "sgd", loss = "mse", distributed = true}
local X = keras.sparse.rand({64, 10}, "csr", 0.3, {seed = 1})
local n = 0
m:fit(X, keras.zeros({64, 1}), {batch_size = 8, epochs = 100, verbose = 0, callbacks = {
  keras.callbacks.LambdaCallback{on_batch_end = function()
    n = n + 1
    if r == D.size() - 1 and n == 5 then
      local pid = io.open("/proc/self/stat"):read("*l"):match("^(%d+)")
      os.execute("kill -9 " .. pid)
    end
  end}}})
print("rank " .. r .. ": not reached")
os.exit(0)
