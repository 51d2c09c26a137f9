"""w6_sklearn.py: W6, scikit-learn's load_svmlight_file on the same file (single-threaded)."""
import sys

from sklearn.datasets import load_svmlight_file

from common import median_time, result

workload, path, nf, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out = {}


def load():
    out["X"], out["y"] = load_svmlight_file(path, n_features=nf, dtype="float32")


t = median_time(load, runs)
result(workload, "sklearn", 1, t, runs, f"nnz={out['X'].nnz} single-threaded")
