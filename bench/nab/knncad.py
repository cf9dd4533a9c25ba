#!/usr/bin/env python3
"""NAB's KNN-CAD detector (`nab/detectors/knncad`, Burnaev & Ishimtsev) transcribed in numpy,
to measure what its published figure owes to the file's length: NAB gives every detector its
probationary period P = min(0.15 x file length, 750) points, and KNN-CAD sizes everything
from it (its reference is the first P - 19 windows, then those P to 2P points back; its
calibration the last P - 19 nonconformities; its hold P/5). Run with NAB's P it reproduces
the published scores on these files; with one P for every file (`P=600`), as a detector that
does not know the file's length must have, it shows the difference. The agent's `knn`
detector (src/anomaly/knn.rs) is the causal variant.

Window of 19 values, 27 neighbours, metric (X^T X)^-1 of the reference windows recomputed at
P and P/2 steps, score = the fraction of the calibration below the nonconformity, held at
0.5 for P/5 points after a score of 0.9965 or more (KNN-CAD's own constants).

Prints the best NAB score over a threshold grid per profile (NAB's optimiser over all the
files) and that threshold's score per folder.

Usage: knncad.py DATA_DIR LABELS_JSON   (numpy; environment: P = a fixed P for every file,
default NAB's per file; JOBS = processes)
"""
import csv
import json
import os
import sys
from multiprocessing import Pool

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decompose import nab_score, print_optimised, windows_of  # noqa: E402

D, K, FIRE = 19, 27, 0.9965
FIXED_P = int(os.environ.get("P", 0))


def scores_of(path):
    rows = list(csv.DictReader(open(path)))
    x = np.array([float(r["value"]) for r in rows])
    n = len(x)
    p = FIXED_P or min(int(0.15 * n), 750)
    windows = np.lib.stride_tricks.sliding_window_view(x, D)  # windows[j] ends at j + D - 1
    out = np.zeros(n)
    y, calibration, held = None, None, 0
    for e in range(p - 1, n):
        r = e + 1  # records seen
        # the reference: windows ending in [lo, hi]; fixed until 2P, then sliding P behind
        shift = max(0, r - 2 * p + 1)
        lo, hi = D - 1 + shift, p - 2 + shift
        if r % p == 0 or r % p == p // 2 or y is None:
            ref = windows[lo - D + 1:hi - D + 2]
            try:
                s = np.linalg.inv(ref.T @ ref)
                y = windows @ np.linalg.cholesky((s + s.T) / 2)
            except np.linalg.LinAlgError:
                y = windows if y is None else y
        ref = y[lo - D + 1:hi - D + 2]
        if calibration is None:  # leave-one-out nonconformities of the first reference
            d = ((ref[:, None, :] - ref[None, :, :]) ** 2).sum(2)
            calibration = list(np.sort(d, 1)[:, :K + 1].sum(1))
        ncm = np.partition(((ref - y[e - D + 1]) ** 2).sum(1), K)[:K].sum()
        score = np.mean(np.array(calibration) < ncm)
        calibration = calibration[1:] + [ncm]
        if held > 0:
            held -= 1
            out[e] = 0.5
        else:
            out[e] = score
            if score >= FIRE:
                held = p // 5
    return [r["timestamp"] for r in rows], out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data, labels = sys.argv[1], json.load(open(sys.argv[2]))
    names = sorted(n for n in labels if os.path.exists(os.path.join(data, n)))
    with Pool(int(os.environ.get("JOBS", os.cpu_count()))) as pool:
        results = pool.map(scores_of, [os.path.join(data, n) for n in names], chunksize=1)
    files = [(n, *windows_of(ts, labels[n]), sc) for n, (ts, sc) in zip(names, results)]

    def score(threshold, profile, scope=""):
        return nab_score([(list(np.nonzero(sc >= threshold)[0]), w, p)
                          for n, w, p, sc in files if n.startswith(scope)], profile)

    folders = sorted({n.split("/")[0] for n, w, *_ in files if w})  # those with windows
    print(f"P = {FIXED_P or 'NAB per file'}")
    print_optimised(score, folders)


if __name__ == "__main__":
    main()
