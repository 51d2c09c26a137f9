-- examples/ctr_wide_deep.lua: click-through-rate prediction from LibSVM files, the way a
-- CTR model starts: a wide & deep network on one-hot categorical features, trained on
-- imbalanced clicks with class weights, scored by ROC AUC, stopped early on the validation
-- AUC, saved, reloaded and checked.
--   lua5.4 examples/ctr_wide_deep.lua [out_dir=ctr_example_out]
-- KERAS_LUA_EXAMPLE_QUICK=1 uses a smaller data set and fewer epochs;
-- KERAS_LUA_EXAMPLE_OUT=dir sets the output folder.
--
-- The data is made here: 10 categorical fields (site, app, device, hour, ...) one-hot encoded
-- as LibSVM features (value 1), a hidden factorization machine (a weight per value plus a
-- dot product of latent vectors per pair of fields) gives each impression its click
-- probability, about 7% on average, and the label is drawn from it. Labels are written as
-- public LibSVM click logs write them, -1 (no click) / +1 (click), and read back with
-- label_map = {[-1] = 0} for binary_crossentropy.
local keras = require("keras")
local L = keras.layers
local du = keras.data_utils

local quick = os.getenv("KERAS_LUA_EXAMPLE_QUICK") == "1"
local out = os.getenv("KERAS_LUA_EXAMPLE_OUT") or (arg and arg[0] and
  arg[0]:match("ctr_wide_deep%.lua$") and arg[1]) or "ctr_example_out"
local train_rows, val_rows = quick and 20000 or 200000, quick and 10000 or 50000
local max_epochs = quick and 6 or 20
os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'")

-- ------------------------------------------------------------------ 1. the data
local FIELDS = {24, 7, 50, 200, 1000, 30, 5, 400, 60, 12} -- values per field
local offset, n_features = {}, 0
for f, c in ipairs(FIELDS) do offset[f], n_features = n_features, n_features + c end

-- make_libsvm_data's small LCG, so the data does not depend on Lua's math.random algorithm.
local here = (debug.getinfo(1, "S").source:sub(2):match("(.*/)")) or "./"
local lcg = dofile(here .. "make_libsvm_data.lua").lcg

-- The hidden click model (fixed seed): w[f][v], latent u[f][v][1..4], a bias set below.
local K_LATENT = 4
local rnd = lcg(7)
local w, u = {}, {}
for f, c in ipairs(FIELDS) do
  w[f], u[f] = {}, {}
  for v = 1, c do
    w[f][v] = (rnd() * 2 - 1) * 1.2
    u[f][v] = {}
    for k = 1, K_LATENT do u[f][v][k] = (rnd() * 2 - 1) * 0.35 end
  end
end
local function hidden_logit(vals)
  local z = 0
  for f = 1, #FIELDS do z = z + w[f][vals[f]] end
  for f = 1, #FIELDS - 1 do
    for g = f + 1, #FIELDS do
      local a, b = u[f][vals[f]], u[g][vals[g]]
      for k = 1, K_LATENT do z = z + a[k] * b[k] end
    end
  end
  return z
end
local function sigmoid(z) return 1 / (1 + math.exp(-z)) end

-- Draws `rows` impressions (popular values more often, as in real logs); returns the field
-- values and the hidden logits.
local function impressions(rows, seed)
  local r = lcg(seed)
  local vals, logits = {}, {}
  for i = 1, rows do
    local v = {}
    for f, c in ipairs(FIELDS) do v[f] = 1 + math.floor(c * r() ^ 2) end
    vals[i], logits[i] = v, hidden_logit(v)
  end
  return vals, logits, r
end

-- The bias that makes the mean click probability 7% (bisection over the training rows).
local train_vals, train_logits, train_rnd = impressions(train_rows, 1)
local lo, hi = -20, 20
for _ = 1, 60 do
  local b, s = (lo + hi) / 2, 0
  for i = 1, train_rows do s = s + sigmoid(train_logits[i] + b) end
  if s / train_rows > 0.07 then hi = b else lo = b end
end
local bias = (lo + hi) / 2

-- Writes a LibSVM file of the impressions with -1/+1 click labels drawn from the hidden
-- model; returns the number of clicks and each row's true click probability.
local function write_file(path, vals, logits, r)
  local data, indices, indptr, labels, probs = {}, {}, {1}, {}, {}
  local clicks = 0
  for i = 1, #vals do
    for f = 1, #FIELDS do
      data[#data + 1], indices[#indices + 1] = 1, offset[f] + vals[i][f]
    end
    indptr[#indptr + 1] = #data + 1
    probs[i] = sigmoid(logits[i] + bias)
    local click = r() < probs[i]
    labels[i] = click and 1 or -1
    if click then clicks = clicks + 1 end
  end
  local X = keras.sparse.csr_matrix{data = data, indices = indices, indptr = indptr,
    shape = {#vals, n_features}}
  du.dump_svmlight_file(X, labels, path)
  return clicks, probs
end

local train_path, val_path = out .. "/train.svm.gz", out .. "/val.svm"
local train_clicks = write_file(train_path, train_vals, train_logits, train_rnd)
local val_vals, val_logits, val_rnd = impressions(val_rows, 2)
local val_clicks, val_probs = write_file(val_path, val_vals, val_logits, val_rnd)
print(string.format("data: %s (%d rows, %.1f%% clicks), %s (%d rows, %.1f%% clicks), %d features",
  train_path, train_rows, 100 * train_clicks / train_rows, val_path, val_rows,
  100 * val_clicks / val_rows, n_features))

-- ------------------------------------------------------------------ 2. reading it back
-- Training streams CSR batches from the gzip file (memory bounded by the batch); the
-- validation file is loaded whole. Both map LibSVM's -1 to 0.
local LABELS = {[-1] = 0}
local train = du.LibSVMIter{path = train_path, n_features = n_features, batch_size = 256,
  label_map = LABELS}
local Xv, yv = du.load_svmlight_file(val_path, {n_features = n_features, label_map = LABELS})

-- Class weights from the training file's counts (scikit-learn's "balanced": n / (2 n_c)),
-- so the rare clicks weigh as much as the impressions without one.
local n, pos = 0, 0
for _, y in train:batches() do
  n, pos = n + y.shape[1], pos + keras.backend.sum(y):item()
end
local class_weight = {[0] = n / (2 * (n - pos)), [1] = n / (2 * pos)}
print(string.format("class_weight: {[0] = %.3f, [1] = %.3f}", class_weight[0], class_weight[1]))

-- ------------------------------------------------------------------ 3. the model
-- wide: a logistic regression on the one-hot features (a row_sparse kernel: a step reads
-- and updates only the rows of the features its batch holds);
-- deep: the same features through a 16-wide embedding (the csr batch times a row_sparse
-- kernel sums the embeddings of each impression's field values), then an MLP.
keras.random.seed(42)
local x = L.Input{shape = {n_features}, sparse = true, name = "features"}
local wide = L.Dense{units = 1, sparse_weight = true, name = "wide"}(x)
local emb = L.Dense{units = 16, sparse_weight = true, use_bias = false, name = "embedding"}(x)
local h = L.Dense{units = 32, activation = "relu", name = "deep_1"}(emb)
h = L.Dense{units = 16, activation = "relu", name = "deep_2"}(h)
local deep = L.Dense{units = 1, name = "deep_out"}(h)
local click = L.Activation{"sigmoid", name = "click"}(L.Add{name = "wide_plus_deep"}{wide, deep})
local model = keras.Model{inputs = x, outputs = click, name = "wide_deep"}
model:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.001},
  loss = "binary_crossentropy", metrics = {"auc"}}
if not quick then model:summary() end

-- ------------------------------------------------------------------ 4. training
local stopper = keras.callbacks.EarlyStopping{monitor = "val_auc", mode = "max", patience = 2,
  restore_best_weights = true}
local hist = model:fit(train, nil, {epochs = max_epochs, verbose = quick and 0 or 2,
  class_weight = class_weight, validation_data = {Xv, yv}, callbacks = {stopper}})
train:close()
local epochs = #hist.history.loss
local best_epoch, best_auc = 1, -1
for e, a in ipairs(hist.history.val_auc) do
  if a > best_auc then best_epoch, best_auc = e, a end
end
print(string.format("trained %d epochs%s; best val_auc %.4f at epoch %d (weights restored)",
  epochs, stopper.stopped_epoch > 0 and " (stopped early)" or "", best_auc, best_epoch))

-- ------------------------------------------------------------------ 5. how good is it
local val_loss, m = model:evaluate(Xv, yv, {batch_size = 1024})
local p = model:predict(Xv, {batch_size = 1024})
local mean_p = keras.backend.mean(p):item()
-- The hidden model's own AUC: the best any model can do on these labels.
local function roc_auc(scores, labels) -- exact, ties counted half
  local idx = {}
  for i = 1, #scores do idx[i] = i end
  table.sort(idx, function(a, b) return scores[a] < scores[b] end)
  local rank_sum, npos, i = 0, 0, 1
  while i <= #idx do
    local j = i
    while j < #idx and scores[idx[j + 1]] == scores[idx[i]] do j = j + 1 end
    for k = i, j do
      if labels[idx[k]] == 1 then rank_sum, npos = rank_sum + (i + j) / 2, npos + 1 end
    end
    i = j + 1
  end
  local nneg = #idx - npos
  return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg)
end
local labels = yv:totable()
local ceiling = roc_auc(val_probs, labels)
print(string.format("validation: loss %.4f, AUC %.4f (the hidden model itself: %.4f)",
  val_loss, m.auc, ceiling))
print(string.format("mean predicted CTR %.3f vs %.3f observed (class weights raise the " ..
  "scores; AUC only ranks them)", mean_p, val_clicks / val_rows))

-- ------------------------------------------------------------------ 6. save, reload, serve
local model_path = out .. "/ctr_wide_deep.kl"
model:save(model_path)
local served = keras.models.load_model(model_path)
local p2 = served:predict(Xv, {batch_size = 1024})
local max_diff = 0
for i, row in ipairs(p2:totable()) do
  max_diff = math.max(max_diff, math.abs(row[1] - p:get(i, 1)))
end
print(string.format("saved %s; the reloaded model's predictions differ by at most %g",
  model_path, max_diff))

return {
  epochs = epochs, max_epochs = max_epochs, stopped_epoch = stopper.stopped_epoch,
  best_epoch = best_epoch, val_auc_history = hist.history.val_auc,
  val_loss = val_loss, val_auc = m.auc, ceiling_auc = ceiling,
  predictions = p, labels = labels, reloaded_predictions = p2, max_diff = max_diff,
  train_ctr = train_clicks / train_rows, val_ctr = val_clicks / val_rows,
  class_weight = class_weight, model_path = model_path,
}
