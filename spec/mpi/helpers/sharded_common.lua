-- spec/mpi/helpers/sharded_common.lua: data and model of spec/mpi/sharded_save.lua, shared
-- with its one-process side (sharded_np1.lua).
local keras = require("keras")
local M = {V = 53, E = 4, LEN = 3, N = 40}

function M.data()
  local g = 9
  local function rnd(m) g = (g * 1103515245 + 12345) % 2147483648; return g % m end
  local ids, y = {}, {}
  for i = 1, M.N do
    ids[i] = {rnd(M.V + 1), rnd(M.V + 1), rnd(M.V + 1)}
    y[i] = {rnd(1000) / 1000}
  end
  return keras.array(ids, {dtype = "int64"}), keras.array(y)
end

function M.model()
  local L = keras.layers
  local inp = L.Input{shape = {M.LEN}, dtype = "int64"}
  local e = L.Embedding{input_dim = M.V, output_dim = M.E, sparse_grad = true, sharded = true, name = "emb"}(inp)
  local m = keras.Model{inputs = inp, outputs = L.Dense{units = 1}(L.GlobalAveragePooling1D{}(e))}
  m:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.02}, loss = "mse", distributed = true}
  return m
end

function M.write_preds(f, p)
  for i = 1, p.shape[1] do f:write(string.format("%.17g\n", p:get(i, 1))) end
end

function M.read_preds(path)
  local r = {}
  for l in io.lines(path) do r[#r + 1] = tonumber(l) end
  return r
end
return M
