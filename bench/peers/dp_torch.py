"""dp_torch.py: the data-parallel workloads (bench/lua/dp.lua) in PyTorch DDP, gloo backend,
NP processes on this machine (torch.multiprocessing.spawn, init by a file:// rendezvous).
batch_size is the global batch, as ours: rank r of NP trains on rows
[b + len*r/NP, b + len*(r+1)/NP) of each batch and DDP averages the gradients, so each step
is the global batch's step. Time per step = median epoch time / steps (rank 0's clock), median
of RUNS epochs after a warm-up epoch. Only rank 0 prints.

W3: (a) nn.Embedding(V, 64, sparse=True) -> mean over the 20 ids -> Linear(64, 1), mse,
    SparseAdam (embedding) + Adam (Linear), lr 0.001; (b) the same with
    nn.EmbeddingBag(V, 64, mode="mean", sparse=True) (the fused lookup + mean). DDP
    exchanges the sparse embedding gradient with gloo's sparse allreduce (an allgather of
    every rank's indices and values) and the Linear's by a dense allreduce.
W1: as bench/peers/w1_torch.py: (a) torch.sparse.mm(batch COO, W) with W a dense (COLS, 1)
    parameter, SGD momentum 0.9 (DDP allreduces the dense gradient of W); (b)
    nn.EmbeddingBag(COLS, 1, mode="sum", sparse=True) with per-sample weights, SGD without
    momentum (see w1_torch.py). Batches are converted to torch tensors before the clock.

usage: dp_torch.py NP W3 V STEPS RUNS
       dp_torch.py NP W1 ROWS COLS RUNS BATCH[,BATCH...] LR YSCALE"""
import math
import os
import sys
import tempfile

import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from common import median_time, result, threads


def share(length, r, n):
    return (length * r) // n, (length * (r + 1)) // n


def w3(rank, n, args):
    V, steps, runs = int(args[0]), int(args[1]), int(args[2])
    bs, L, D = 256, 20, 64
    g = torch.Generator().manual_seed(7)  # the same ids on every rank; each takes its share
    ids = torch.randint(0, V, (steps, bs, L), generator=g)
    ys = torch.randint(0, 2, (steps, bs, 1), generator=g).float()
    lo, hi = share(bs, rank, n)
    ids, ys = ids[:, lo:hi].contiguous(), ys[:, lo:hi].contiguous()
    wl = f"DP-W3-V1e{round(math.log10(V))}-np{n}"

    class Emb(torch.nn.Module):
        def __init__(self, bag):
            super().__init__()
            self.bag = bag
            if bag:
                self.emb = torch.nn.EmbeddingBag(V, D, mode="mean", sparse=True)
            else:
                self.emb = torch.nn.Embedding(V, D, sparse=True)
            torch.nn.init.uniform_(self.emb.weight, -0.05, 0.05)
            self.lin = torch.nn.Linear(D, 1)

        def forward(self, x):
            h = self.emb(x) if self.bag else self.emb(x).mean(dim=1)
            return self.lin(h)

    for bag, impl in ((False, "pytorch-DDP-Embedding"), (True, "pytorch-DDP-EmbeddingBag")):
        torch.manual_seed(7)
        model = DDP(Emb(bag))
        opt_s = torch.optim.SparseAdam(list(model.module.emb.parameters()), lr=0.001)
        opt_d = torch.optim.Adam(list(model.module.lin.parameters()), lr=0.001)
        lossv = [0.0]

        def epoch():
            for s in range(steps):
                opt_s.zero_grad(set_to_none=True)
                opt_d.zero_grad(set_to_none=True)
                loss = torch.mean((model(ids[s]) - ys[s]) ** 2)
                loss.backward()
                opt_s.step()
                opt_d.step()
            lossv[0] = float(loss)

        tdist.barrier()
        t = median_time(epoch, runs)
        if rank == 0:
            result(wl, impl, threads(), t / steps, runs,
                   f"per step; gloo; global batch {bs} ({hi - lo} a rank); loss(rank 0)={lossv[0]:.4g} steps={steps}")


def w1(rank, n, args):
    import numpy as np
    import scipy.sparse as sp
    rows, cols, runs = int(args[0]), int(args[1]), int(args[2])
    batches = [int(b) for b in args[3].split(",")]
    lr, yscale = float(args[4]), float(args[5])
    X = sp.random(rows, cols, density=0.01, format="csr", dtype=np.float32, random_state=7)
    y = (X @ np.arange(1, cols + 1, dtype=np.float32) / yscale).astype(np.float32)
    for bs in batches:
        wl = f"DP-W1-b{bs}-np{n}"
        parts = []
        for s in range(0, rows, bs):
            lo, hi = share(min(bs, rows - s), rank, n)
            parts.append((s + lo, s + hi))
        mm_batches, eb_batches = [], []
        for a, b in parts:
            xb = X[a:b].tocoo()
            idx = torch.from_numpy(np.vstack([xb.row, xb.col]).astype(np.int64))
            yb = torch.from_numpy(y[a:b]).reshape(-1, 1)
            mm_batches.append((torch.sparse_coo_tensor(idx, torch.from_numpy(xb.data), xb.shape).coalesce(), yb))
            xc = X[a:b]
            eb_batches.append((torch.from_numpy(xc.indices.astype(np.int64)),
                               torch.from_numpy(xc.indptr[:-1].astype(np.int64)),
                               torch.from_numpy(xc.data), yb))

        class MM(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.W = torch.nn.Parameter(torch.randn(cols, 1) * 0.01)
                self.b = torch.nn.Parameter(torch.zeros(1))

            def forward(self, xb):
                return torch.sparse.mm(xb, self.W) + self.b

        class EB(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = torch.nn.EmbeddingBag(cols, 1, mode="sum", sparse=True)
                torch.nn.init.normal_(self.emb.weight, std=0.01)
                self.b = torch.nn.Parameter(torch.zeros(1))

            def forward(self, ids, offs, vals):
                return self.emb(ids, offs, per_sample_weights=vals) + self.b

        torch.manual_seed(7)
        mm = DDP(MM())
        opt = torch.optim.SGD(mm.parameters(), lr=lr, momentum=0.9)
        lossv = [0.0]

        def epoch_mm():
            for xb, yb in mm_batches:
                opt.zero_grad(set_to_none=True)
                loss = torch.mean((mm(xb) - yb) ** 2)
                loss.backward()
                opt.step()
            lossv[0] = float(loss)

        steps = len(parts)
        note = f"per step; gloo; global batch {bs} ({parts[0][1] - parts[0][0]} a rank); steps={steps}"
        tdist.barrier()
        t = median_time(epoch_mm, runs)
        if rank == 0:
            result(wl, "pytorch-DDP-sparse.mm", threads(), t / steps, runs, f"{note}; loss(rank 0)={lossv[0]:.4g}")
        eb = DDP(EB())
        opt2 = torch.optim.SGD(eb.parameters(), lr=lr, momentum=0.0)  # see w1_torch.py

        def epoch_eb():
            for ids, offs, vals, yb in eb_batches:
                opt2.zero_grad(set_to_none=True)
                loss = torch.mean((eb(ids, offs, vals) - yb) ** 2)
                loss.backward()
                opt2.step()
            lossv[0] = float(loss)

        tdist.barrier()
        t = median_time(epoch_eb, runs)
        if rank == 0:
            result(wl, "pytorch-DDP-EmbeddingBag-nomomentum", threads(), t / steps, runs,
                   f"{note}; loss(rank 0)={lossv[0]:.4g}")


def worker(rank, n, init, which, args):
    torch.set_num_threads(threads())
    tdist.init_process_group("gloo", init_method=init, rank=rank, world_size=n)
    try:
        (w3 if which == "W3" else w1)(rank, n, args)
        tdist.barrier()
    finally:
        tdist.destroy_process_group()


if __name__ == "__main__":
    n, which, rest = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    if which not in ("W3", "W1"):
        sys.exit("dp_torch.py: the workload must be W3 or W1")
    fd, path = tempfile.mkstemp(prefix="dp_torch_rdv.")
    os.close(fd)
    os.remove(path)  # the file:// rendezvous wants a path that does not exist yet
    try:
        mp.spawn(worker, args=(n, "file://" + path, which, rest), nprocs=n, join=True)
    finally:
        if os.path.exists(path):
            os.remove(path)
