"""common.py: shared helpers of the Python peers: gen's binary CSR, timing, result lines."""
import os
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import numpy as np
import scipy.sparse as sp


def threads():
    return int(os.environ.get("OMP_NUM_THREADS", "1"))


def read_csr_bin(path):
    """Reads bench/src/gen.c's binary CSR: (scipy csr_matrix float32, labels float32)."""
    with open(path, "rb") as f:
        rows, cols, nnz = np.fromfile(f, dtype=np.int64, count=3)
        indptr = np.fromfile(f, dtype=np.int64, count=rows + 1)
        indices = np.fromfile(f, dtype=np.int64, count=nnz)
        data = np.fromfile(f, dtype=np.float32, count=nnz)
        y = np.fromfile(f, dtype=np.float32, count=rows)
    return sp.csr_matrix((data, indices, indptr), shape=(rows, cols)), y


def median_time(fn, runs, warmup=1):
    """Median wall time of fn() over runs calls, after warmup calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def result(workload, impl, nthreads, med, runs, note=""):
    print(f"RESULT {workload} {impl} {nthreads} {med:.6g} {runs} {note}", flush=True)


def die(msg):
    print(f"peer: {msg}", file=sys.stderr)
    sys.exit(1)
