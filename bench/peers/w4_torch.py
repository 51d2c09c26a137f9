"""w4_torch.py: W4 kernels in PyTorch: csr.dense (torch.sparse.mm, COO and CSR layouts, the
best reported) and csr^T.dense (PyTorch makes a dense V x K output)."""
import sys

import numpy as np
import torch

from common import median_time, read_csr_bin, result, threads

mode, workload, path, K, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads())
A, _ = read_csr_bin(path)
g = torch.Generator().manual_seed(7)
coo = A.tocoo()
idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
val = torch.from_numpy(coo.data)
At = torch.sparse_coo_tensor(idx, val, A.shape).coalesce()
Acsr = torch.sparse_csr_tensor(torch.from_numpy(A.indptr.astype(np.int64)), torch.from_numpy(A.indices.astype(np.int64)),
                               torch.from_numpy(A.data), A.shape)
best = None
if mode == "csr_dense":
    B = torch.rand(A.shape[1], K, generator=g) * 2 - 1
    cands = {"coo": lambda: torch.sparse.mm(At, B), "csr": lambda: torch.sparse.mm(Acsr, B)}
else:  # csrT_dense: the weight gradient X^T . G of a sparse Dense layer
    G = torch.rand(A.shape[0], K, generator=g) * 2 - 1
    AtT = At.t().coalesce()
    cands = {"coo": lambda: torch.sparse.mm(AtT, G),
             "coo-uncoalesced": lambda: torch.sparse.mm(At.t(), G)}
times = {}
for name, fn in cands.items():
    try:
        times[name] = median_time(fn, runs)
    except RuntimeError as e:  # a layout this torch build does not support
        print(f"w4_torch: {name} unsupported: {e}".splitlines()[0], file=sys.stderr)
name = min(times, key=times.get)
note = "best=" + name + " " + " ".join(f"{k}={v:.4g}" for k, v in times.items())
result(workload, "pytorch", threads(), times[name], runs, note)
