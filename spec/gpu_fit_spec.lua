-- gpu_fit_spec.lua: a model on a GPU (issue 17): compile{device = keras.gpu(0)} moves the
-- weights there in place and makes the optimizer states there; fit streams batches from
-- host tensors and iterators; evaluate, predict, train_on_batch, get_weights, save,
-- load_model{device =} work from the device model (save and get_weights copy to the host);
-- compile{device = keras.cpu()} brings the weights back; a distributed model (or a sharded
-- Embedding) on a GPU is refused. Each result is compared with the same model trained on
-- the CPU.
--
-- Tolerance: relative 1e-4 on float32 losses, metrics, weights and predictions (against
-- max(1, |value|)): a device's kernels may sum in another order than the CPU's (a loss's
-- mean, a segmented row sum), and training carries such differences along; where an op has
-- no device kernel it runs on the host and gives the CPU's bits. On this machine the device
-- is the emulated one (keras.cuda built for the host: the lua-emu/* ctests), where every
-- comparison here was exact when written (KL_GPU_FIT_VERBOSE=1 prints the worst difference
-- of each). Without a device (keras.num_gpus() == 0) it reports itself pending with the
-- reason, never passed.
local keras = require("keras")
local gs = require("gpu_support")
local K = keras.backend
local L = keras.layers

local RTOL = 1e-4

local tmp = os.tmpname()
os.remove(tmp)
local function path(name) return tmp .. "_gpu_fit_" .. name end

-- |a - b| <= RTOL * max(1, |b|) elementwise (tensors or numbers).
local function close(a, b, what)
  local worst = gs.close(a, b, RTOL, what)
  if os.getenv("KL_GPU_FIT_VERBOSE") then io.stderr:write(string.format("%s: worst relative %.3g\n", what, worst)) end
end

local function weights_close(g, c, what)
  local wg, wc = g:get_weights(), c:get_weights()
  assert.are.equal(#wc, #wg)
  for i = 1, #wg do
    assert.are.equal("cpu(0)", wg[i].device) -- get_weights copies to the host
    assert.are.equal(wc[i].stype, wg[i].stype)
    close(wg[i], wc[i], (what or "weight") .. " " .. i)
  end
end

if gs.pending_without_device(_ENV, "a model on a GPU", "trains, evaluates, predicts, saves and loads") then return end

-- The sparse linear regression tutorial (examples/sparse_linear_regression.lua): 1000 x 100
-- CSR at density 0.01, y = X . (1..100), Dense(1) with a row_sparse kernel, SGD momentum.
local function slr_data()
  keras.random.seed(42)
  local X = keras.sparse.rand({1000, 100}, "csr", 0.01, {seed = 42})
  local y = K.dot(X, keras.range(1, 100):reshape({100, 1}))
  return X, y
end

local function slr_model(device, metrics)
  keras.random.seed(7)
  local m = keras.Sequential{
    L.Input{shape = {100}, sparse = true},
    L.Dense{units = 1, sparse_weight = true, use_bias = false,
      kernel_initializer = keras.initializers.Normal{stddev = 0.01}},
  }
  m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.05, momentum = 0.9}, loss = "mse",
    metrics = metrics, device = device}
  return m
end

-- An Embedding -> mean -> Dense classifier (W3's shape, small): ids with padding, lazy Adam.
local function emb_data()
  keras.random.seed(3)
  local n, len, vocab = 256, 6, 50
  local ids = keras.zeros({n, len})
  local y = keras.zeros({n, 1})
  local r = keras.random.uniform({n, len}):totable()
  local ids_t, y_t = {}, {}
  for i = 1, n do
    ids_t[i] = {}
    local s = 0
    for j = 1, len do
      local id = math.floor(r[i][j] * (vocab + 1))
      ids_t[i][j] = id
      s = s + id
    end
    y_t[i] = {s % 2}
  end
  ids, y = keras.array(ids_t), keras.array(y_t)
  return ids, y, vocab, len
end

local function emb_model(device, vocab, len)
  keras.random.seed(5)
  local m = keras.Sequential{
    L.Input{shape = {len}},
    L.Embedding{input_dim = vocab, output_dim = 8, input_length = len, sparse_grad = true},
    L.GlobalAveragePooling1D{},
    L.Dense{units = 4, activation = "relu"},
    L.Dropout{rate = 0.25, seed = 9},
    L.Dense{units = 1, activation = "sigmoid"},
  }
  m:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.01}, loss = "binary_crossentropy",
    metrics = {"accuracy"}, device = device}
  return m
end

describe("compile{device = keras.gpu(0)}", function()
  it("moves the weights to the device in place, and back with keras.cpu()", function()
    local m = slr_model(nil)
    local w = m.layers[1].weights[1]
    assert.are.equal("cpu(0)", w.device)
    local before = w:totable()
    m:compile{optimizer = "sgd", loss = "mse", device = keras.gpu(0)}
    assert.are.equal("gpu(0)", w.device) -- the same handle, moved
    assert.are.equal(m.layers[1].weights[1], w)
    assert.are.same(before, w:totable()) -- totable reads a host copy
    m:compile{optimizer = "sgd", loss = "mse", device = keras.cpu()}
    assert.are.equal("cpu(0)", w.device)
    assert.are.same(before, w:totable())
  end)

  it("fits the sparse linear regression example as the CPU does (host tensors)", function()
    local X, y = slr_data()
    local c, g = slr_model(nil, {"mae"}), slr_model(keras.gpu(0), {"mae"})
    keras.random.seed(11) -- the same shuffles for both
    local hc = c:fit(X, y, {batch_size = 10, epochs = 3, verbose = 0, shuffle = true})
    keras.random.seed(11)
    local hg = g:fit(X, y, {batch_size = 10, epochs = 3, verbose = 0, shuffle = true})
    for e = 1, 3 do
      close(hg.history.loss[e], hc.history.loss[e], "loss of epoch " .. e)
      close(hg.history.mae[e], hc.history.mae[e], "mae of epoch " .. e)
    end
    assert.is_true(hg.history.loss[3] < hg.history.loss[1])
    assert.are.equal("gpu(0)", g.layers[1].weights[1].device)
    weights_close(g, c)
    local lc, mc = c:evaluate(X, y, {batch_size = 100})
    local lg, mg = g:evaluate(X, y, {batch_size = 100})
    close(lg, lc, "evaluate loss")
    close(mg.mae, mc.mae, "evaluate mae")
    local pc, pg = c:predict(X), g:predict(X, {batch_size = 64})
    assert.are.equal("cpu(0)", pg.device) -- predict returns host tensors
    close(pg, pc, "predict")
    local bc, bg = c:predict_on_batch(X:slice(1, 5)), g:predict_on_batch(X:slice(1, 5))
    assert.are.equal("cpu(0)", bg.device)
    close(bg, bc, "predict_on_batch")
  end)

  it("fits an Embedding model with dropout as the CPU does, with validation data", function()
    local ids, y, vocab, len = emb_data()
    local c, g = emb_model(nil, vocab, len), emb_model(keras.gpu(0), vocab, len)
    local opts = {batch_size = 32, epochs = 3, verbose = 0, validation_split = 0.25}
    keras.random.seed(12)
    local hc = c:fit(ids, y, opts)
    keras.random.seed(12)
    local hg = g:fit(ids, y, opts)
    for e = 1, 3 do
      close(hg.history.loss[e], hc.history.loss[e], "loss of epoch " .. e)
      close(hg.history.accuracy[e], hc.history.accuracy[e], "accuracy of epoch " .. e)
      close(hg.history.val_loss[e], hc.history.val_loss[e], "val_loss of epoch " .. e)
    end
    weights_close(g, c)
    for _, w in ipairs(g.weights) do assert.are.equal("gpu(0)", w.device) end
    close(g:predict(ids), c:predict(ids), "predict")
  end)

  -- W3's model (Embedding(V, D, sparse_grad) -> GlobalAveragePooling1D -> Dense(1), mse, lazy
  -- Adam), and with mask_zero (the mean over the ids that are not 0): the device plan fuses
  -- the Embedding with its mean as the CPU's does (k_embedding.cu's fused kernels, the (n, L,
  -- D) output never made), which cuda.fused_calls() counts: one forward and one backward a
  -- step, one forward a predict batch. On the emulated device every loss, weight and
  -- prediction is the CPU's bits.
  it("fuses Embedding -> GlobalAveragePooling1D as the CPU does (W3's model, lazy Adam)", function()
    local cuda = require("keras.cuda")
    local ids, y, vocab, len = emb_data()
    local rtol = cuda.device_info(0).emulated and 0 or RTOL
    for _, mask_zero in ipairs{false, true} do
      local function w3(device)
        keras.random.seed(6)
        local m = keras.Sequential{
          L.Input{shape = {len}, dtype = "int64"},
          L.Embedding{input_dim = vocab, output_dim = 16, input_length = len, sparse_grad = true,
            mask_zero = mask_zero},
          L.GlobalAveragePooling1D{},
          L.Dense{units = 1},
        }
        m:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.01, lazy_update = true},
          loss = "mse", device = device}
        return m
      end
      local what = mask_zero and "masked " or ""
      local c, g = w3(nil), w3(keras.gpu(0))
      local opts = {batch_size = 32, epochs = 2, verbose = 0, shuffle = false}
      local hc = c:fit(ids, y, opts)
      local f0 = cuda.fused_calls()
      local hg = g:fit(ids, y, opts)
      local f1 = cuda.fused_calls()
      local steps = 2 * math.ceil(ids.shape[1] / 32)
      assert.are.equal(steps, f1.embedding_mean - f0.embedding_mean, what .. "fused forwards")
      assert.are.equal(steps, f1.embedding_mean_backward - f0.embedding_mean_backward, what .. "fused backwards")
      for e = 1, 2 do gs.close(hg.history.loss[e], hc.history.loss[e], rtol, what .. "loss of epoch " .. e) end
      local wg, wc = g:get_weights(), c:get_weights()
      for i = 1, #wc do gs.close(wg[i], wc[i], rtol, what .. "weight " .. i) end
      gs.close(g:predict(ids, {batch_size = 64}), c:predict(ids, {batch_size = 64}), rtol, what .. "predict")
      assert.are.equal(f1.embedding_mean + math.ceil(ids.shape[1] / 64), cuda.fused_calls().embedding_mean,
        what .. "fused predict forwards")
    end
  end)

  it("fits from an iterator and by train_on_batch (metrics read through host copies)", function()
    local X, y = slr_data()
    local c, g = slr_model(nil, {"mse", "mae"}), slr_model(keras.gpu(0), {"mse", "mae"})
    local function iter() return keras.data_utils.ArrayIterator{data = X, label = y, batch_size = 50} end
    local hc = c:fit(iter(), nil, {epochs = 2, verbose = 0})
    local hg = g:fit(iter(), nil, {epochs = 2, verbose = 0})
    close(hg.history.loss[2], hc.history.loss[2], "iterator loss")
    close(hg.history.mae[2], hc.history.mae[2], "iterator mae")
    local lc, mc = c:train_on_batch(X:slice(1, 20), y:slice(1, 20))
    local lg, mg = g:train_on_batch(X:slice(1, 20), y:slice(1, 20))
    close(lg, lc, "train_on_batch loss")
    close(mg.mae, mc.mae, "train_on_batch mae")
    local tc, tmc = c:test_on_batch(X:slice(21, 40), y:slice(21, 40))
    local tg, tmg = g:test_on_batch(X:slice(21, 40), y:slice(21, 40))
    close(tg, tc, "test_on_batch loss")
    close(tmg.mse, tmc.mse, "test_on_batch mse")
    local ec, emc = c:evaluate(iter(), nil, {steps = 5})
    local eg, emg = g:evaluate(iter(), nil, {steps = 5})
    close(eg, ec, "iterator evaluate")
    close(emg.mae, emc.mae, "iterator evaluate mae")
    weights_close(g, c)
  end)

  it("takes sample and class weights", function()
    local ids, y, vocab, len = emb_data()
    local sw = keras.random.uniform({ids.shape[1]})
    local c, g = emb_model(nil, vocab, len), emb_model(keras.gpu(0), vocab, len)
    local opts = {batch_size = 64, epochs = 2, verbose = 0, shuffle = false, sample_weight = sw,
      class_weight = {[0] = 1, [1] = 2}}
    local hc, hg = c:fit(ids, y, opts), g:fit(ids, y, opts)
    close(hg.history.loss[2], hc.history.loss[2], "weighted loss")
    weights_close(g, c)
  end)

  it("saves from the device (copies to the host) and load_model{device =} resumes there", function()
    local X, y = slr_data()
    local g = slr_model(keras.gpu(0), {"mae"})
    g:fit(X, y, {batch_size = 20, epochs = 1, verbose = 0, shuffle = false})
    local p = path("m.kl")
    g:save(p)
    local pw = path("w.kl")
    g:save_weights(pw)
    assert.are.equal("gpu(0)", g.layers[1].weights[1].device) -- save left them there
    -- on the host: the same weights and predictions
    local h = keras.models.load_model(p)
    assert.are.equal("cpu(0)", h.layers[1].weights[1].device)
    weights_close(g, h, "loaded weight")
    close(h:predict(X), g:predict(X), "predict after load")
    -- on the device: the optimizer state came along, training continues as the original
    local d = keras.models.load_model(p, {device = keras.gpu(0)})
    assert.are.equal("gpu(0)", d.layers[1].weights[1].device)
    close(d:predict(X), g:predict(X), "predict after load on the device")
    local hd = d:fit(X, y, {batch_size = 20, epochs = 1, verbose = 0, shuffle = false})
    local hg = g:fit(X, y, {batch_size = 20, epochs = 1, verbose = 0, shuffle = false})
    close(hd.history.loss[1], hg.history.loss[1], "loss after resuming")
    weights_close(d, g, "resumed weight")
    -- load_weights into a device model, then compile after load
    local w = slr_model(keras.gpu(0))
    w:load_weights(pw)
    assert.are.equal("gpu(0)", w.layers[1].weights[1].device)
    close(w:predict(X), h:predict(X), "predict after load_weights")
    local e = keras.models.load_model(p)
    e:compile{optimizer = "sgd", loss = "mse", device = keras.gpu(0)}
    close(e:predict(X), h:predict(X), "predict after compile on the device")
    os.remove(p)
    os.remove(pw)
  end)

  it("set_weights and get_weights work across the devices", function()
    local ids, _, vocab, len = emb_data()
    local g = emb_model(keras.gpu(0), vocab, len)
    local c = emb_model(nil, vocab, len)
    local ws = c:get_weights()
    for i, w in ipairs(ws) do ws[i] = w * 0.5 end
    g:set_weights(ws)
    c:set_weights(ws)
    for _, w in ipairs(g.weights) do assert.are.equal("gpu(0)", w.device) end
    weights_close(g, c)
    close(g:predict(ids), c:predict(ids), "predict after set_weights")
  end)

  it("refuses a distributed model and a sharded Embedding on a GPU", function()
    local m = slr_model(nil)
    assert.has_error(function()
      m:compile{optimizer = "sgd", loss = "mse", device = keras.gpu(0), distributed = true}
    end, "Model.compile: a distributed model on a GPU is not supported yet (NCCL / CUDA-aware MPI): " ..
      "use device = keras.cpu()")
    assert.are.equal("cpu(0)", m.layers[1].weights[1].device) -- nothing moved
    local ok, err = pcall(function()
      local s = keras.Sequential{L.Input{shape = {3}},
        L.Embedding{input_dim = 10, output_dim = 2, sparse_grad = true, sharded = true}}
      s:compile{optimizer = "sgd", loss = "mse", device = keras.gpu(0)}
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("sharded") and
      (tostring(err):find("not supported yet", 1, true) or tostring(err):find("MPI", 1, true)), err)
    assert.has_error(function()
      m:compile{optimizer = "sgd", loss = "mse", device = {device_type = "tpu", device_id = 0}}
    end, "Model.compile: device must be keras.cpu() or keras.gpu(n). Received: device=a table")
  end)
end)
