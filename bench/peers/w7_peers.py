"""w7_peers.py: W7 (issue 18) peers on the same LibSVM files as bench/lua/w7.lua: logistic
regression on 1,000,000 training rows + 200,000 held-out rows, 2^18 columns, 39 nonzeros a
row. All single-threaded.

- scikit-learn SGDClassifier(loss="log_loss"), alpha in {1e-5, 1e-6, 1e-7}, 5 epochs each
  (partial_fit, one epoch a call, shuffle off, the default "optimal" learning rate), the
  held-out log-loss after each epoch (not timed). Its best held-out log-loss over the grid
  is L*; the W7 target is L* + 0.002 (written to TARGET_FILE for w7.lua). Rows:
  W7-epoch: the median time of one epoch (fit, max_iter=1, at the best alpha; RUNS runs);
  W7-to-target: the least training time (epochs summed, the best alpha's first epoch at or
  under L* + 0.002), over RUNS repeats of that alpha's epochs.
- LogisticRegression(solver="liblinear") and (solver="saga"), C = 1, default tolerances:
  full solves, timed once, with their held-out log-loss (W7-to-target rows: the time of a
  solve, whatever loss it reaches; the note says).
- liblinear-train -s 0 and -s 6 (C = 1, -B 1): full solves timed as processes, so they
  include liblinear parsing the ~0.8 GB file; held-out log-loss by liblinear-predict -b 1.
usage: w7_peers.py TRAIN.svm TEST.svm N_FEATURES RUNS TARGET_FILE [FLOOR]"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.datasets import load_svmlight_file
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import log_loss

from common import result

train, test, nf, runs, target_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
floor = sys.argv[6] if len(sys.argv) > 6 else None
warnings.simplefilter("ignore")
X, y = load_svmlight_file(train, n_features=nf, dtype=np.float64)
Xt, yt = load_svmlight_file(test, n_features=nf, dtype=np.float64)
print(f"w7_peers: loaded {X.shape} and {Xt.shape}", file=sys.stderr, flush=True)
if floor:
    print(f"LOSS W7 generating-model 1 {float(floor):.5f} held-out log-loss of the model that drew the labels (the floor)")
EPOCHS = 5
ALPHAS = [1e-5, 1e-6, 1e-7]


def held(m):
    return log_loss(yt, m.predict_proba(Xt)[:, 1])


def sgd_curve(alpha):
    """Per-epoch training times and held-out log-losses of EPOCHS partial_fit epochs."""
    m = SGDClassifier(loss="log_loss", alpha=alpha, shuffle=False, random_state=0)
    ts, ls = [], []
    for _ in range(EPOCHS):
        t0 = time.perf_counter()
        m.partial_fit(X, y, classes=np.array([0.0, 1.0]))
        ts.append(time.perf_counter() - t0)
        ls.append(held(m))
    return ts, ls


curves = {}
for a in ALPHAS:
    curves[a] = sgd_curve(a)
    print(f"w7_peers: SGD alpha={a:g} epochs {['%.3f' % t for t in curves[a][0]]} "
          f"held-out {['%.5f' % v for v in curves[a][1]]}", file=sys.stderr, flush=True)
best_a, best_l = min(((a, min(curves[a][1])) for a in ALPHAS), key=lambda p: p[1])
target = best_l + 0.002
with open(target_file, "w") as f:
    f.write(f"{target:.6f}\n")
print(f"LOSS W7 sklearn-SGDClassifier 1 {best_l:.5f} best held-out log-loss over alpha "
      f"1e-5..1e-7 x 5 epochs (alpha={best_a:g}, epoch {curves[best_a][1].index(best_l) + 1}); "
      f"W7 target {target:.5f}")

# time to the target: the least number of epochs of any alpha that reaches it, timed RUNS times
need = {}
for a in ALPHAS:
    for i, v in enumerate(curves[a][1]):
        if v <= target:
            need[a] = i + 1
            break
ta = min(need, key=lambda a: (need[a], a != best_a))
tts = []
for r in range(runs):
    ts, ls = sgd_curve(ta) if r > 0 else curves[ta]
    tts.append(sum(ts[:need[ta]]))
result("W7-to-target", "sklearn-SGDClassifier", 1, statistics.median(tts), runs,
       f"alpha={ta:g}, {need[ta]} epochs to held-out <= {target:.4f} (best {best_l:.4f} + 0.002)")


def one_epoch():
    m = SGDClassifier(loss="log_loss", alpha=best_a, max_iter=1, tol=None, shuffle=False, random_state=0)
    m.fit(X, y)
    return m


ets = []
for _ in range(runs):
    t0 = time.perf_counter()
    m = one_epoch()
    ets.append(time.perf_counter() - t0)
result("W7-epoch", "sklearn-SGDClassifier", 1, statistics.median(ets), runs,
       f"1 epoch, alpha={best_a:g}; held-out log-loss={held(m):.4f}")

for solver in ["liblinear", "saga"]:
    m = LogisticRegression(solver=solver, C=1.0)
    t0 = time.perf_counter()
    m.fit(X, y)
    t = time.perf_counter() - t0
    ll = held(m)
    result("W7-to-target", f"sklearn-LogisticRegression-{solver}", 1, t, 1,
           f"full solve (C=1, n_iter={int(np.max(m.n_iter_))}); held-out log-loss={ll:.4f}")
    print(f"LOSS W7 sklearn-LogisticRegression-{solver} 1 {ll:.5f} held-out, full solve, C=1, {t:.2f} s")

with tempfile.TemporaryDirectory() as d:
    for s in ["0", "6"]:
        model = os.path.join(d, "model" + s)
        t0 = time.perf_counter()
        subprocess.run(["liblinear-train", "-s", s, "-B", "1", "-q", train, model], check=True)
        t = time.perf_counter() - t0
        pred = os.path.join(d, "pred")
        subprocess.run(["liblinear-predict", "-b", "1", test, model, pred], check=True,
                       stdout=subprocess.DEVNULL)
        with open(pred) as f:
            head = f.readline().split()  # "labels 1 0"
            col = head.index("1") - 1 if "1" in head else head.index("1.0") - 1
            p1 = np.array([float(line.split()[1 + col]) for line in f])
        ll = log_loss(yt, p1)
        result("W7-to-target", f"liblinear-s{s}", 1, t, 1,
               f"full solve (C=1, -B 1) incl. parsing the file; held-out log-loss={ll:.4f}")
        print(f"LOSS W7 liblinear-s{s} 1 {ll:.5f} held-out, full solve, C=1, incl. parse, {t:.2f} s")
