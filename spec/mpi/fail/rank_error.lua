-- spec/mpi/fail/rank_error.lua: a Lua error on one rank while the others wait in a
-- collective must end the whole job (MPI_Abort from the exiting rank), with a non-zero
-- status, rather than leave them waiting. ctest passes when mpirun ends non-zero before its
-- --timeout (which would exit 110).
local keras = require("keras")
local D = keras.distributed
local r = D.init()
local m
do
  local L = keras.layers
  keras.random.seed(r)
  local inp = L.Input{shape = {10}, sparse = true}
  m = keras.Model{inputs = inp, outputs = L.Dense{units = 1, sparse_weight = true}(inp)}
  m:compile{optimizer = "sgd", loss = "mse", distributed = true}
end
local X = keras.sparse.rand({64, 10}, "csr", 0.3, {seed = 1})
local y = keras.zeros({64, 1})
local n = 0
m:fit(X, y, {batch_size = 8, epochs = 3, verbose = 0, callbacks = {keras.callbacks.LambdaCallback{
  on_batch_end = function()
    n = n + 1
    if r == 1 and n == 3 then error("rank 1 fails on purpose in its third batch") end
  end}}})
print("rank " .. r .. ": not reached")
os.exit(0)
