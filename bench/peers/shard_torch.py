"""shard_torch.py: the peer of bench/lua/shard.lua (SHARD, issue 16): PyTorch DDP (gloo) with a
replicated nn.Embedding(V, 64, sparse=True) -> mean over the 20 ids -> Linear(64, 1), mse,
SparseAdam (embedding) + Adam (Linear), lr 0.001, NP processes on this machine
(torch.multiprocessing.spawn, file:// rendezvous, torch.set_num_threads(1) by OMP_NUM_THREADS).
PyTorch has no row-sharded table in DDP: every process holds the whole table and SparseAdam's
two dense states (3 x V x 64 x 4 bytes), which is what this run measures next to ours.
batch_size is the global batch, as ours: rank r of NP trains on rows
[256 r / NP, 256 (r + 1) / NP) of each batch of 256 x 20 ids (torch.randint, seed 7) and DDP
averages the gradients (the embedding's sparse gradient by gloo's sparse allreduce, an
allgather of every rank's indices and values). Time per step = rank 0's median epoch / STEPS,
median of RUNS epochs after a warm-up epoch. Every process's peak RSS (VmHWM of
/proc/self/status) at the end, gathered on rank 0.
Lines (rank 0):
  RESULT SHARD-W3-V<v>-np<NP> pytorch-DDP-Embedding <threads> <seconds per step> <runs> <note>
  RSS SHARD-W3-V<v>-np<NP> pytorch-DDP-Embedding <NP> <rank> <VmHWM bytes> <floor bytes> <note>

usage: shard_torch.py NP V STEPS RUNS"""
import math
import os
import sys
import tempfile

import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from common import median_time, result, threads


def vname(v):
    e = int(math.floor(math.log10(v) + 1e-9))
    m = v / 10 ** e
    return f"{int(m)}e{e}" if m == int(m) else str(v)


def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def work(rank, n, V, steps, runs):
    bs, L, D = 256, 20, 64
    g = torch.Generator().manual_seed(7)  # the same ids on every rank; each takes its share
    ids = torch.randint(0, V, (steps, bs, L), generator=g)
    ys = torch.randint(0, 2, (steps, bs, 1), generator=g).float()
    lo, hi = (bs * rank) // n, (bs * (rank + 1)) // n
    ids, ys = ids[:, lo:hi].contiguous(), ys[:, lo:hi].contiguous()
    data = ids.numel() * 8 + ys.numel() * 4
    wl = f"SHARD-W3-V{vname(V)}-np{n}"

    class Emb(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, D, sparse=True)
            torch.nn.init.uniform_(self.emb.weight, -0.05, 0.05)
            self.lin = torch.nn.Linear(D, 1)

        def forward(self, x):
            return self.lin(self.emb(x).mean(dim=1))

    torch.manual_seed(7)
    model = DDP(Emb())
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
    peaks = [None] * n
    tdist.all_gather_object(peaks, hwm())
    if rank == 0:
        result(wl, "pytorch-DDP-Embedding", threads(), t / steps, runs,
               f"per step; gloo; replicated table; global batch {bs} ({hi - lo} a rank); "
               f"loss(rank 0)={lossv[0]:.4g} steps={steps}")
        floor = V * D * 4 * 3 + data + (D + 1) * 4 * 3
        for r, p in enumerate(peaks):
            print(f"RSS {wl} pytorch-DDP-Embedding {n} {r} {p} {floor} floor: {V} rows x {D} x 4 B x 3 "
                  f"(table, SparseAdam exp_avg, exp_avg_sq) + ids/y {data / 1048576:.1f} MiB", flush=True)


def worker(rank, n, init, V, steps, runs):
    torch.set_num_threads(threads())
    tdist.init_process_group("gloo", init_method=init, rank=rank, world_size=n)
    try:
        work(rank, n, V, steps, runs)
        tdist.barrier()
    finally:
        tdist.destroy_process_group()


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: shard_torch.py NP V STEPS RUNS")
    n, V, steps, runs = (int(a) for a in sys.argv[1:])
    fd, path = tempfile.mkstemp(prefix="shard_torch_rdv.")
    os.close(fd)
    os.remove(path)  # the file:// rendezvous wants a path that does not exist yet
    try:
        mp.spawn(worker, args=(n, "file://" + path, V, steps, runs), nprocs=n, join=True)
    finally:
        if os.path.exists(path):
            os.remove(path)
