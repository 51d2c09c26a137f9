-- examples/text_classifier.lua: a bag-of-words text classifier: Embedding (row_sparse
-- gradient) + GlobalAveragePooling1D + Dense(softmax), on synthetic "documents" whose class
-- decides which part of the vocabulary their words come from.
-- KERAS_LUA_EXAMPLE_QUICK=1 uses fewer documents and epochs.
local keras = require("keras")
local L = keras.layers

local quick = os.getenv("KERAS_LUA_EXAMPLE_QUICK") == "1"
local ndocs, epochs = quick and 600 or 3000, quick and 4 or 8
local vocab, len, classes = 1000, 20, 3

keras.random.seed(11)
-- class c draws 60% of its words from its own band of the vocabulary, the rest anywhere;
-- documents are padded with id 0 to the same length.
local u = keras.random.uniform({ndocs, len + 2}, {dtype = "float64"}):totable()
local docs, labels = {}, {}
local band = vocab // classes
for i = 1, ndocs do
  local c = (i % classes) + 1
  local n = 10 + math.floor(u[i][len + 1] * (len - 10)) -- 10..len-1 real words
  local row = {}
  for j = 1, len do
    if j > n then
      row[j] = 0
    else
      local r = u[i][j]
      if r < 0.6 then
        row[j] = (c - 1) * band + 1 + math.floor(r / 0.6 * band) % band
      else
        row[j] = 1 + math.floor((r - 0.6) / 0.4 * vocab) % vocab
      end
    end
  end
  docs[i], labels[i] = row, c
end
local x, y = keras.array(docs), keras.array(labels)

local model = keras.Sequential{
  L.Input{shape = {len}},
  L.Embedding{input_dim = vocab, output_dim = 16, input_length = len, sparse_grad = true},
  L.GlobalAveragePooling1D{},
  L.Dense{units = classes, activation = "softmax"},
}
model:compile{optimizer = keras.optimizers.Adam{learning_rate = 0.01},
  loss = "sparse_categorical_crossentropy", metrics = {"accuracy"}}
model:summary()
local h = model:fit(x, y, {batch_size = 32, epochs = epochs, verbose = 2, validation_split = 0.2})
local acc = h.history.val_accuracy[#h.history.val_accuracy]
print(string.format("validation accuracy: %.4f", acc))
return {val_accuracy = acc, loss = h.history.loss}
