#!/usr/bin/env python3
"""A prototype second detector for NAB, measured beside the agent (not in the agent): a
conformal nearest-neighbour score over lagged windows, with a one-day hold after each
firing, optionally OR-ed with the agent's own decisions.

For each point t (after enough history): the window w = the last D values; its
nonconformity = the mean distance to its K nearest windows among the T windows that end at
least D points earlier (distance: Euclidean, divided by the robust scale of the values those
windows span, so it is scale-free); its score = the fraction of the last C nonconformities
below it (a conformal p-value; 0 until 50 are known). A point fires when its score is at or
above the threshold and no firing happened in the last day of steps (the agent's
`anomaly.suppress`). The idea is KNN-CAD's (Burnaev & Ishimtsev, arXiv:1608.04585; 62.3 on
these files in NAB's results); this is our own simpler variant, causal, with no range or
file length known in advance.

Prints, per NAB profile, the best score over a threshold grid on all the files (the way NAB
optimises one threshold over its corpus) and that threshold's score per folder.

Usage: knn.py DATA_DIR LABELS_JSON [--or AGENT_RESULTS_DIR]   (numpy)
  --or: fire where this detector or the agent fired (OUT/results/agent of an
  `anomaly-eval` run at its default threshold 0.15), then apply the one-day hold to both.
Environment: D (19), K (27), T (300), C (3000), JOBS (the CPUs).
"""
import csv
import json
import os
import sys
from datetime import datetime
from multiprocessing import Pool

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decompose import nab_score, print_optimised, windows_of  # noqa: E402

D, K = int(os.environ.get("D", 19)), int(os.environ.get("K", 27))
T, C = int(os.environ.get("T", 300)), int(os.environ.get("C", 3000))
AGENT_THRESHOLD = 0.15


def scores_of(path):
    rows = list(csv.DictReader(open(path)))
    x = np.array([float(r["value"]) for r in rows])
    ts = [r["timestamp"] for r in rows]
    t0 = [datetime.fromisoformat(t.split(".")[0]) for t in ts[:200]]
    step = np.median([(b - a).total_seconds() for a, b in zip(t0, t0[1:])])
    day = int(round(86400 / step))
    windows = np.lib.stride_tricks.sliding_window_view(x, D)
    scores = np.zeros(len(x))
    calib = []
    for i in range(len(windows)):
        lo, hi = max(0, i - D - T), i - D
        if hi - lo < 2 * K:
            continue
        span = x[lo:hi + D - 1]
        s = 1.4826 * np.median(np.abs(span - np.median(span)))
        if s == 0:
            s = 1.2533 * np.mean(np.abs(span - span.mean())) or 1.0
        d = np.sqrt(((windows[lo:hi] - windows[i]) ** 2).sum(1)) / s
        ncm = np.partition(d, K)[:K].mean()
        if len(calib) >= 50:
            scores[i + D - 1] = np.mean(np.array(calib) < ncm)
        calib.append(ncm)
        if len(calib) > C:
            calib.pop(0)
    return ts, scores, day


def held(fire, hold):
    out, last = [], None
    for i in np.nonzero(fire)[0]:
        if last is None or i - last >= hold:
            out.append(int(i))
            last = i
    return out


def main():
    args = sys.argv[1:]
    agent_dir = None
    if "--or" in args:
        k = args.index("--or")
        agent_dir = args[k + 1]
        del args[k:k + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    data, labels = args[0], json.load(open(args[1]))
    names = sorted(n for n in labels if os.path.exists(os.path.join(data, n)))
    with Pool(int(os.environ.get("JOBS", os.cpu_count()))) as pool:
        results = pool.map(scores_of, [os.path.join(data, n) for n in names], chunksize=1)
    files = []
    for n, (ts, sc, day) in zip(names, results):
        windows, probation = windows_of(ts, labels[n])
        agent = np.zeros(len(sc), dtype=bool)
        if agent_dir:
            cat, f = n.split("/")
            rows = csv.DictReader(open(os.path.join(agent_dir, cat, f"agent_{f}")))
            agent = np.array([float(r["anomaly_score"]) >= AGENT_THRESHOLD for r in rows])
        files.append((n, windows, probation, sc, day, agent))

    def score(threshold, profile, scope=""):
        return nab_score([(held(agent | (sc >= threshold), day), windows, probation)
                          for n, windows, probation, sc, day, agent in files
                          if n.startswith(scope)], profile)

    folders = sorted({n.split("/")[0] for n, w, *_ in files if w})  # those with windows
    print_optimised(score, folders)


if __name__ == "__main__":
    main()
