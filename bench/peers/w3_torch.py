"""w3_torch.py: W3 in PyTorch: nn.Embedding(V, 64, sparse=True) -> mean -> Linear(64, 1), mse;
SparseAdam for the embedding, Adam for the Linear; batches of 256 x 20 ids; time per step
(median epoch time / STEPS). usage: w3_torch.py V STEPS RUNS [mem]"""
import math
import sys

import torch

from common import median_time, result, threads

V, steps, runs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
mem = len(sys.argv) > 4 and sys.argv[4] == "mem"
torch.set_num_threads(threads())
g = torch.Generator().manual_seed(7)
bs, L, D = 256, 20, 64
ids = torch.randint(0, V, (steps, bs, L), generator=g)
ys = torch.randint(0, 2, (steps, bs, 1), generator=g).float()
emb = torch.nn.Embedding(V, D, sparse=True)
torch.nn.init.uniform_(emb.weight, -0.05, 0.05)
lin = torch.nn.Linear(D, 1)
opt_s = torch.optim.SparseAdam(list(emb.parameters()), lr=0.001)
opt_d = torch.optim.Adam(list(lin.parameters()), lr=0.001)
lossv = [0.0]


def epoch():
    for s in range(steps):
        opt_s.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        loss = torch.mean((lin(emb(ids[s]).mean(dim=1)) - ys[s]) ** 2)
        loss.backward()
        opt_s.step()
        opt_d.step()
    lossv[0] = float(loss)


wl = f"W3-V1e{round(math.log10(V))}"
if mem:
    epoch()
else:
    t = median_time(epoch, runs)
    result(wl, "pytorch", threads(), t / steps, runs, f"per step; loss={lossv[0]:.4g} steps={steps}")
