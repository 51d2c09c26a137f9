-- spec/mpi/helpers/sharded_np1.lua PATH_IN PATH_OUT PRED_OUT: the one-process side of
-- spec/mpi/sharded_save.lua (started by its rank 0 outside the MPI world). Loads the model
-- saved at np ranks (its Embedding is then an ordinary one), writes its predictions, trains
-- one more epoch as the ranks do, and saves the result for them to load.
local keras = require("keras")
local common = dofile(arg[0]:gsub("helpers/sharded_np1.lua$", "helpers/sharded_common.lua"))
local pin, pout, pred = arg[1], arg[2], arg[3]
assert(keras.distributed.size() == 1, "expected a world of one")
local m = keras.models.load_model(pin)
local X, Y = common.data()
local f = assert(io.open(pred, "w"))
common.write_preds(f, m:predict(X))
m:fit(X, Y, {batch_size = 16, epochs = 1, verbose = 0, shuffle = false})
common.write_preds(f, m:predict(X))
f:close()
m:save(pout)
