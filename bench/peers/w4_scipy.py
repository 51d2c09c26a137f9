"""w4_scipy.py: W4 rcv1-like csr.dense in scipy (A @ B, single-threaded)."""
import sys

import numpy as np

from common import median_time, read_csr_bin, result, threads

workload, path, K, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
A, _ = read_csr_bin(path)
A.indices = A.indices.astype(np.int32)  # scipy's own choice for this size
A.indptr = A.indptr.astype(np.int32)
B = (np.random.default_rng(7).random((A.shape[1], K), dtype=np.float32) * 2 - 1)
result(workload, "scipy", threads(), median_time(lambda: A @ B, runs), runs, "single-threaded")
