"""w1_torch.py: W1 in PyTorch, its best setups: (a) torch.sparse.mm of the batch (COO, built
before timing) on a dense (COLS, 1) weight, (b) nn.EmbeddingBag(COLS, 1, mode="sum",
sparse=True) with per-sample weights (SGD without momentum, see below); SGD lr momentum 0.9, mse, one epoch in order.
Data: scipy.sparse.random at density 0.01, values uniform [0, 1), y = X . (1..COLS) / COLS."""
import sys
import time

import numpy as np
import scipy.sparse as sp
import torch

from common import median_time, result, threads

# usage: w1_torch.py NAME ROWS COLS RUNS BATCHES EPOCHS LR YSCALE [mem]  (as bench/lua/w1.lua)
name = sys.argv[1]
rows, cols, runs = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
batches = [int(b) for b in sys.argv[5].split(",")]
epochs, lr, yscale = int(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
mem = len(sys.argv) > 9 and sys.argv[9] == "mem"
torch.set_num_threads(threads())
torch.manual_seed(7)
X = sp.random(rows, cols, density=0.01, format="csr", dtype=np.float32, random_state=7)
y = (X @ np.arange(1, cols + 1, dtype=np.float32) / yscale).astype(np.float32)

for bs in batches:
    starts = range(0, rows, bs)
    # (a) sparse.mm: batches converted to torch COO before timing (the peer's best case)
    mm_batches = []
    for s in starts:
        xb = X[s:s + bs].tocoo()
        idx = torch.from_numpy(np.vstack([xb.row, xb.col]).astype(np.int64))
        mm_batches.append((torch.sparse_coo_tensor(idx, torch.from_numpy(xb.data), xb.shape).coalesce(),
                           torch.from_numpy(y[s:s + bs]).reshape(-1, 1)))
    W = torch.nn.Parameter(torch.randn(cols, 1) * 0.01)
    b = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([W, b], lr=lr, momentum=0.9)
    lossv = [0.0]

    def epoch_mm():
        for _ in range(epochs):
          for xb, yb in mm_batches:
              opt.zero_grad(set_to_none=True)
              loss = torch.mean((torch.sparse.mm(xb, W) + b - yb) ** 2)
              loss.backward()
              opt.step()
        lossv[0] = float(loss)

    # (b) EmbeddingBag(sparse=True) with per-sample weights (indices/offsets prebuilt)
    eb_batches = []
    for s in starts:
        xb = X[s:s + bs]
        eb_batches.append((torch.from_numpy(xb.indices.astype(np.int64)),
                           torch.from_numpy(xb.indptr[:-1].astype(np.int64)),
                           torch.from_numpy(xb.data), torch.from_numpy(y[s:s + bs]).reshape(-1, 1)))
    emb = torch.nn.EmbeddingBag(cols, 1, mode="sum", sparse=True)
    torch.nn.init.normal_(emb.weight, std=0.01)
    b2 = torch.nn.Parameter(torch.zeros(1))
    # momentum 0: torch's SGD keeps a sparse momentum buffer that grows every step (measured at
    # W1 batch 64: 100 steps 6.1 s and superlinear), so momentum is off for this setup
    opt2 = torch.optim.SGD([emb.weight, b2], lr=lr, momentum=0.0)

    def epoch_eb():
        for _ in range(epochs):
          for ids, offs, vals, yb in eb_batches:
              opt2.zero_grad(set_to_none=True)
              loss = torch.mean((emb(ids, offs, per_sample_weights=vals) + b2 - yb) ** 2)
              loss.backward()
              opt2.step()
        lossv[0] = float(loss)

    steps = epochs * len(mm_batches)
    wl = name.replace("%d", str(bs))
    if mem:
        epoch_mm()
        continue
    t = median_time(epoch_mm, runs)
    result(wl, "pytorch-sparse.mm", threads(), t, runs, f"loss={lossv[0]:.4g} steps={steps}")
    try:
        t = median_time(epoch_eb, runs)
        result(wl, "pytorch-EmbeddingBag-nomomentum", threads(), t, runs, f"loss={lossv[0]:.4g} steps={steps}")
    except RuntimeError as e:
        print("w1_torch: EmbeddingBag + SGD momentum failed: " + str(e).splitlines()[0], file=sys.stderr)
