"""w5_peers.py: W5 peers on the same LibSVM file: scikit-learn SGDClassifier(log_loss), one
epoch (max_iter=1, no shuffle), and liblinear-train -s 0 -B 1 (L2 logistic regression solved
to its default tolerance: a full solve, not one epoch). Both single-threaded. Log-loss on
the training data. usage: w5_peers.py FILE N_FEATURES RUNS"""
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.datasets import load_svmlight_file
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss

from common import median_time, result

path, nf, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
X, y = load_svmlight_file(path, n_features=nf, dtype=np.float32)
X = X.astype(np.float64)  # SGDClassifier works in float64 (it would convert inside fit)
box = {}


def fit_sgd():
    m = SGDClassifier(loss="log_loss", max_iter=1, tol=None, shuffle=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: one epoch on purpose
        m.fit(X, y)
    box["sgd"] = m


t = median_time(fit_sgd, runs, warmup=0)
ll = log_loss(y, box["sgd"].predict_proba(X)[:, 1])
result("W5-logreg", "sklearn-SGDClassifier", 1, t, runs, f"1 epoch; log-loss={ll:.4f}")
print(f"LOSS W5-logreg sklearn-SGDClassifier 1 {ll:.5f} one epoch, optimal lr schedule, alpha 1e-4")

with tempfile.TemporaryDirectory() as d:
    model = os.path.join(d, "model")
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(["liblinear-train", "-s", "0", "-B", "1", "-q", path, model], check=True)
        ts.append(time.perf_counter() - t0)
    pred = os.path.join(d, "pred")
    subprocess.run(["liblinear-predict", "-b", "1", path, model, pred], check=True,
                   stdout=subprocess.DEVNULL)
    with open(pred) as f:
        head = f.readline().split()  # "labels 1 0"
        col = head.index("1") - 1 if "1" in head else head.index("1.0") - 1
        p1 = np.array([float(line.split()[1 + col]) for line in f])
    ll = log_loss(y, p1)
    result("W5-logreg", "liblinear-s0", 1, float(np.median(ts)), runs,
           f"full solve (C=1, eps 0.01) incl. file parse; log-loss={ll:.4f}")
    print(f"LOSS W5-logreg liblinear-s0 1 {ll:.5f} full solve, C=1, includes parsing the file")
