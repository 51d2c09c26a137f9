-- w6.lua: W6, keras.data_utils.load_svmlight_file on a LibSVM file (median of runs).
-- usage: lua5.4 bench/lua/w6.lua WORKLOAD FILE N_FEATURES RUNS
local keras = require("keras")
local B = require("benchutil")
local workload, path, nf, runs = arg[1], arg[2], math.tointeger(tonumber(arg[3])), math.tointeger(tonumber(arg[4]))
local X
local t = B.median_time(function()
  X = nil
  collectgarbage()
  X = keras.data_utils.load_svmlight_file(path, {n_features = nf})
end, runs)
B.result(workload, "keras-lua", t, runs, "nnz=" .. X.nnz)
-- Leave without lua_close: closing the state dlcloses core.so (and with it libgomp) while
-- OpenMP worker threads live, which crashes at exit with OMP_NUM_THREADS > 1 (see README).
os.exit(0, false)
